package mamsync

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// streamTokens returns the tokens encoding/xml gives for raw as a
// top-level element of a client stream (the session's view), or an error.
func streamTokens(raw []byte) ([]xml.Token, error) {
	const head = `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`
	d := xml.NewDecoder(io.MultiReader(strings.NewReader(head), bytes.NewReader(raw), strings.NewReader("</stream:stream>")))
	if _, err := d.Token(); err != nil {
		return nil, err
	}
	var toks []xml.Token
	for depth := 0; ; {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		tok = xml.CopyToken(tok)
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			if depth == 0 {
				return nil, errors.New("no element")
			}
			depth--
		}
		toks = append(toks, tok)
		if depth == 0 {
			if _, ok := tok.(xml.EndElement); ok {
				// Whatever follows must be the stream's end.
				next, err := d.Token()
				if err != nil {
					return nil, err
				}
				if e, ok := next.(xml.EndElement); !ok || e.Name.Local != "stream" {
					return nil, fmt.Errorf("%T after the element", next)
				}
				return toks, nil
			}
		}
	}
}

// fastAll returns every token of the fast tokenizer, or errDecline.
func fastAll(raw []byte) ([]xml.Token, error) {
	t := newFastTokens(raw)
	if t == nil {
		return nil, errDecline
	}
	var toks []xml.Token
	for {
		tok, err := t.Token()
		if err == io.EOF {
			return toks, nil
		}
		if err != nil {
			return nil, err
		}
		toks = append(toks, xml.CopyToken(tok))
	}
}

func normTokens(toks []xml.Token) []xml.Token {
	for i, tok := range toks {
		if s, ok := tok.(xml.StartElement); ok && len(s.Attr) == 0 {
			s.Attr = nil
			toks[i] = s
		}
	}
	return toks
}

// checkFast: what the fast tokenizer reads, encoding/xml reads the same,
// token by token.
func checkFast(t *testing.T, raw []byte) (accepted bool) {
	t.Helper()
	got, err := fastAll(raw)
	if errors.Is(err, errDecline) {
		return false
	}
	if err != nil {
		t.Fatalf("%q: fast tokenizer error %v (want tokens or errDecline)", raw, err)
	}
	want, err := streamTokens(raw)
	if err != nil {
		t.Fatalf("%q: fast tokenizer accepted what encoding/xml rejects: %v", raw, err)
	}
	if !reflect.DeepEqual(normTokens(got), normTokens(want)) {
		t.Fatalf("%q:\nfast     %#v\nencoding %#v", raw, got, want)
	}
	return true
}

// TestFastTokensAcceptServerForms: the shapes Prosody, ejabberd and
// xmpptest send for MAM results take the fast path and read as
// encoding/xml reads them; what is outside the subset is declined.
func TestFastTokensAcceptServerForms(t *testing.T) {
	accept := []string{
		corpus[1], corpus[2], corpus[6], corpus[12],
		// xmpptest's form (double quotes, the bench's messages).
		`<message xmlns="jabber:client" to="alice@localhost/r"><result xmlns="urn:xmpp:mam:2" queryid="q1" id="AbC-12"><forwarded xmlns="urn:xmpp:forward:0"><delay xmlns="urn:xmpp:delay" stamp="2025-01-01T00:00:00.000000Z"/><message xmlns="jabber:client" from="bob@localhost/res" to="alice@localhost" type="chat" id="msg-1"><body>hi &amp; ünïcödé 🎉</body></message></forwarded></result></message>`,
		// ejabberd: xml:lang, attributes spread over lines.
		"<message xml:lang='en'\n to='alice@example.org/r' xmlns='jabber:client'><result xmlns='urn:xmpp:mam:2' queryid='q' id='1717236000000001'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' xml:lang='en' from='bob@example.org/pc' to='alice@example.org' type='chat'><store xmlns='urn:xmpp:hints'/><body>x</body></message><delay xmlns='urn:xmpp:delay' from='example.org' stamp='2024-06-01T10:00:00.000001Z'/></forwarded></result></message>",
		`<message/>`,
		`<a:message xmlns:a='jabber:client' a:x='1' b = "2"><a:b></a:b ></a:message>`,
	}
	for _, raw := range accept {
		if !checkFast(t, []byte(raw)) {
			t.Errorf("declined %q", raw)
		}
	}
	decline := []string{
		corpus[0], // &#39;
		corpus[3], // CDATA
		"<message>\r\n</message>",
		`<message><!-- c --></message>`,
		`<message><?pi?></message>`,
		`<message><x:y/></message>`,       // undeclared prefix
		`<message><stream:y/></message>`,  // the stream's prefix
		`<message><a></b></message>`,      // mismatched
		`<message a='<'/>`,                // '<' in a value
		`<message a=b/>`,                  // unquoted
		`<message>&nbsp;</message>`,       // unknown entity
		`<message><a/></message><b/>`,     // trailing element
		`<message><a/>`,                   // unterminated
		`<méssage/>`,                      // non-ASCII name
		"<message>\xff</message>",         // invalid UTF-8
		"<message>\xef\xbf\xbe</message>", // U+FFFE
		`<message a='1'b='2'/>`,           // no space between attributes
	}
	for _, raw := range decline {
		if checkFast(t, []byte(raw)) {
			t.Errorf("accepted %q", raw)
		}
	}
}

func FuzzFastTokens(f *testing.F) {
	for _, c := range corpus {
		f.Add([]byte(c))
	}
	f.Add([]byte(`<a:message xmlns:a='jabber:client' a:x='1' b = "2"><a:b></a:b ></a:message>`))
	f.Add([]byte(`<message xmlns='' x:y='1' xmlns:x='u'><b xmlns:x=''/></message>`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 1<<16 {
			return
		}
		checkFast(t, raw)
	})
}

// TestHandleRawFastMatchesDecoder: a message HandleRaw reads with the fast
// tokenizer is read exactly as encoding/xml reads it (same entry, same Raw,
// same verdict), and a MAM result is consumed and collected.
func TestHandleRawFastMatchesDecoder(t *testing.T) {
	for i, raw := range append(append([]string{}, corpus...),
		`<message xmlns="jabber:client" to="alice@example.org/r"><result xmlns="urn:xmpp:mam:2" queryid="q1" id="AbC-12"><forwarded xmlns="urn:xmpp:forward:0"><delay xmlns="urn:xmpp:delay" stamp="2025-01-01T00:00:00.000000Z"/><message xmlns="jabber:client" from="bob@example.org/res" to="alice@example.org" type="chat" id="msg-1"><body>hi &amp; ünïcödé</body><origin-id xmlns="urn:xmpp:sid:0" id="o"/></message></forwarded></result></message>`) {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			read := func(fast bool) (Incoming, error, error) {
				if fast {
					ft := newFastTokens([]byte(raw))
					if ft == nil {
						return Incoming{}, nil, errors.New("declined")
					}
					return readTop(alice, ft)
				}
				d := xml.NewDecoder(strings.NewReader(raw))
				d.DefaultSpace = nsClient
				return readTop(alice, d)
			}
			fastIn, fastPerr, fastErr := read(true)
			slowIn, slowPerr, slowErr := read(false)
			if fastErr != nil {
				return // declined: HandleRaw reads it with encoding/xml
			}
			if d := fastIn.Message.Time.Sub(slowIn.Message.Time).Abs(); d < time.Second {
				// A live message without a delay is stamped when read.
				fastIn.Message.Time = slowIn.Message.Time
			}
			if slowErr != nil || (fastPerr == nil) != (slowPerr == nil) || !reflect.DeepEqual(fastIn, slowIn) {
				t.Fatalf("fast %+v %v\nencoding/xml %+v %v %v", fastIn, fastPerr, slowIn, slowPerr, slowErr)
			}
			if fastPerr != nil || fastIn.Kind != KindResult {
				return
			}
			s := New(Config{Account: alice})
			c := newCollector(10, 0, "")
			s.mu.Lock()
			s.queries[fastIn.QueryID] = c
			s.mu.Unlock()
			if !s.HandleRaw([]byte(raw)) || !reflect.DeepEqual(c.msgs, []Message{fastIn.Message}) {
				t.Fatalf("HandleRaw did not consume and collect the result: %+v", c.msgs)
			}
		})
	}
}
