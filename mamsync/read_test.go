package mamsync

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

// readAll runs ReadMessage over a decoder of raw, as the client runs it over
// the session's tokens: the start element first, then the rest.
func readAll(account jid.JID, raw []byte) (out []byte, in Incoming, perr, err error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, Incoming{}, nil, err
		}
		if start, ok := tok.(xml.StartElement); ok {
			return readMessage(account, start, d)
		}
		if _, ok := tok.(xml.EndElement); ok {
			return nil, Incoming{}, nil, errors.New("end element first")
		}
	}
}

// sameEntry compares two parses, Raw aside; Time only when the message
// had a stamp (otherwise it is "now").
func sameEntry(a, b Incoming) bool {
	ma, mb := a.Message, b.Message
	ma.Raw, mb.Raw = nil, nil
	if ma.Time.Sub(mb.Time).Abs() < time.Minute && (time.Since(ma.Time) < time.Minute) {
		ma.Time, mb.Time = time.Time{}, time.Time{}
	}
	a.Message, b.Message = ma, mb
	return reflect.DeepEqual(a, b)
}

// corpus are messages as servers send them (the XEP examples, xmpptest,
// Prosody and ejabberd shapes) and a few odd ones.
var corpus = []string{
	`<message xmlns='jabber:client' id='aeb213' to='alice@example.org/chamber'><result xmlns='urn:xmpp:mam:2' queryid='f27' id='28482-98726-73623'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25Z'/><message xmlns='jabber:client' to='alice@example.org/balcony' from='romeo@montague.lit/orchard' type='chat'><body>Call me but love, and I&apos;ll be new baptiz&#39;d; Henceforth I never will be Romeo.</body></message></forwarded></result></message>`,
	`<message to='alice@example.org/r' xmlns='jabber:client'><result xmlns='urn:xmpp:mam:2' queryid='pb01' id='0a1b2c3d4e5f607182'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2025-01-01T00:00:00.123456Z'/><message xmlns='jabber:client' from='bob@example.org' to='alice@example.org' type='chat' id='msg-1'><body>message 1</body></message></forwarded></result></message>`,
	// Prosody: from the bare JID, origin-id and stanza-id inside.
	`<message xmlns='jabber:client' from='alice@example.org' to='alice@example.org/r'><result xmlns='urn:xmpp:mam:2' queryid='q' id='MKs3'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2024-06-01T10:00:00Z'/><message xmlns='jabber:client' from='alice@example.org/phone' to='bob@example.org' type='chat' id='x'><body>&lt;b&gt; &amp; "q"</body><origin-id xmlns='urn:xmpp:sid:0' id='o-1'/><stanza-id xmlns='urn:xmpp:sid:0' id='MKs3' by='alice@example.org'/></message></forwarded></result></message>`,
	// ejabberd: numeric ids, xml:lang, a <store/> hint, CDATA in the body.
	`<message xmlns='jabber:client' xml:lang='en' to='alice@example.org/r'><result xmlns='urn:xmpp:mam:2' queryid='q' id='1717236000000001'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' xml:lang='en' from='bob@example.org/pc' to='alice@example.org' type='chat'><store xmlns='urn:xmpp:hints'/><body><![CDATA[a <cdata> body]]></body></message><delay xmlns='urn:xmpp:delay' from='example.org' stamp='2024-06-01T10:00:00.000001Z'/></forwarded></result></message>`,
	`<message xmlns='jabber:client' from='bob@example.org/pc' to='alice@example.org' type='chat'><body>yo
two lines	tab</body><stanza-id xmlns='urn:xmpp:sid:0' id='s9' by='alice@example.org'/><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>`,
	`<message xmlns='jabber:client' from='bob@example.org/pc'><body>yo</body><stanza-id xmlns='urn:xmpp:sid:0' id='s9' by='bob@example.org'/></message>`,
	`<message xmlns='jabber:client' from='alice@example.org' to='alice@example.org/r'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='bob@example.org/x' to='alice@example.org/other'><body>c</body><stanza-id xmlns='urn:xmpp:sid:0' id='c1' by='alice@example.org'/></message></forwarded></received></message>`,
	`<message xmlns='jabber:client' from='alice@example.org' to='alice@example.org/r'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='alice@example.org/other' to='bob@example.org'><body>s</body><stanza-id xmlns='urn:xmpp:sid:0' id='c2' by='alice@example.org'/></message></forwarded></sent></message>`,
	`<message xmlns='jabber:client' from='mallory@evil.example'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='bob@example.org/x'><body>c</body><stanza-id xmlns='urn:xmpp:sid:0' id='c1' by='alice@example.org'/></message></forwarded></received></message>`,
	`<message xmlns='jabber:client'><result xmlns='urn:xmpp:mam:2' id='x'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='yesterday'/><message xmlns='jabber:client' from='b@c'/></forwarded></result></message>`,
	`<message xmlns='jabber:client'><result xmlns='urn:xmpp:mam:2' id='x'/></message>`,
	`<message xmlns='jabber:client' from='bob@example.org/pc'><body>plain, not archived</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
	`<message xmlns='jabber:client' from='bob@example.org/pc' type='chat'><x:body xmlns:x='jabber:client'>prefixed</x:body><sid:stanza-id xmlns:sid='urn:xmpp:sid:0' id='p1' by='alice@example.org'/></message>`,
	`<message xmlns='jabber:client' from='bob@example.org'><stanza-id xmlns='urn:xmpp:sid:0' id='s1' by='example.org'/><stanza-id xmlns='urn:xmpp:sid:0' id='s2' by='alice@example.org'/><delay xmlns='urn:xmpp:delay' stamp='2020-02-02T02:02:02+01:00'/></message>`,
	`<message xmlns='jabber:client' from='not a jid@@'><stanza-id xmlns='urn:xmpp:sid:0' id='s1' by='alice@example.org'/></message>`,
	`<iq xmlns='jabber:client' type='result'/>`,
}

// TestReadMessageMatchesParse: the token path (what the client runs) and
// Parse (bytes) agree on every message, and the serialization ReadMessage
// returns parses back to the same entry: what is stored as Raw and replayed
// to the application is the message.
func TestReadMessageMatchesParse(t *testing.T) {
	for i, raw := range corpus {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			want, werr := Parse(alice, []byte(raw))
			out, got, perr, err := readAll(alice, []byte(raw))
			if err != nil {
				t.Fatalf("ReadMessage: %v", err)
			}
			if (werr == nil) != (perr == nil) || errors.Is(werr, ErrNotArchived) != errors.Is(perr, ErrNotArchived) {
				t.Fatalf("Parse err %v, ReadMessage err %v", werr, perr)
			}
			if werr == nil && !sameEntry(want, got) {
				t.Fatalf("Parse %+v\nReadMessage %+v", want, got)
			}
			if werr == nil && !bytes.Equal(got.Message.Raw, out) {
				t.Fatal("Raw is not the serialization")
			}
			again, aerr := Parse(alice, out)
			if (aerr == nil) != (perr == nil) || (aerr == nil && !sameEntry(again, got)) {
				t.Fatalf("serialization %s parses to %+v, %v", out, again, aerr)
			}
			if err := sameTokens([]byte(raw), out); err != nil {
				t.Fatalf("serialization %s: %v", out, err)
			}
		})
	}
}

// TestReadMessageMatchesUnmarshal compares the token parser with the
// xml.Unmarshal parser it replaced (refParse, kept in this file) on the
// corpus: same classification, same entries.
func TestReadMessageMatchesUnmarshal(t *testing.T) {
	for i, raw := range corpus {
		want, werr := refParse(alice, []byte(raw))
		got, gerr := Parse(alice, []byte(raw))
		if (werr == nil) != (gerr == nil) || errors.Is(werr, ErrNotArchived) != errors.Is(gerr, ErrNotArchived) {
			t.Errorf("%d: Unmarshal err %v, tokens err %v", i, werr, gerr)
			continue
		}
		if werr == nil && !sameEntry(want, got) {
			t.Errorf("%d: Unmarshal %+v\ntokens %+v", i, want, got)
		}
	}
}

func TestReadMessageLimits(t *testing.T) {
	big := strings.Repeat("x", maxBodyLen+1)
	for name, raw := range map[string]string{
		"body": `<message xmlns='jabber:client' from='bob@example.org'><body>` + big + `</body><stanza-id xmlns='urn:xmpp:sid:0' id='s' by='alice@example.org'/></message>`,
		"id":   `<message xmlns='jabber:client'><result xmlns='urn:xmpp:mam:2' id='` + strings.Repeat("i", maxIDLen+1) + `'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='b@c'/></forwarded></result></message>`,
		"raw":  `<message xmlns='jabber:client' from='bob@example.org'><body>b</body><x xmlns='urn:pad'>` + big + big + `</x><stanza-id xmlns='urn:xmpp:sid:0' id='s' by='alice@example.org'/></message>`,
	} {
		out, _, perr, err := readAll(alice, []byte(raw))
		if err != nil || perr == nil || errors.Is(perr, ErrNotArchived) {
			t.Errorf("%s: err %v, perr %v; want a parse error", name, err, perr)
		}
		// The message is read to its end all the same: the caller passes it
		// on whole.
		if err := sameTokens([]byte(raw), out); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A stream that ends inside the message is a read error.
	d := xml.NewDecoder(strings.NewReader(`<message xmlns='jabber:client'><body>cut`))
	tok, _ := d.Token()
	if _, _, _, err := readMessage(alice, tok.(xml.StartElement), d); err == nil {
		t.Error("truncated stream: no error")
	}
}

func TestRawWriter(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`<message xmlns='jabber:client' to='a@b'><body>x &amp; y &lt; z</body></message>`,
			`<message xmlns='jabber:client' to='a@b'><body>x &amp; y &lt; z</body></message>`},
		{`<m xmlns='jabber:client'><e xmlns='urn:x' a='&apos;&quot;&#xA;&#x9;&#xD;'/><f xmlns=''/></m>`,
			`<m xmlns='jabber:client'><e xmlns='urn:x' a='&apos;&quot;&#xA;&#x9;&#xD;'/><f xmlns=''/></m>`},
		{`<m xmlns='jabber:client' xmlns:p='urn:p' p:q='1' xml:lang='en'><p:e/></m>`,
			`<m xmlns='jabber:client' xmlns:a1='urn:p' a1:q='1' xml:lang='en'><e xmlns='urn:p'/></m>`},
		// A prefixed name whose local part is no name on its own keeps a
		// prefix; one bound to no namespace cannot be written (lossy).
		{`<A:0 xmlns:A='urn:a'><A:1/></A:0>`, `<e:0 xmlns:e='urn:a'><e:1 xmlns:e='urn:a'/></e:0>`},
		{"<m xmlns='jabber:client'><!-- c --><?pi x?>t&#xD;\r\n</m>", "<m xmlns='jabber:client'>t&#xD;\n</m>"},
	} {
		d := xml.NewDecoder(strings.NewReader(tc.in))
		var w rawWriter
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			w.token(tok)
		}
		if string(w.b) != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.in, w.b, tc.want)
		}
	}
}

// sameTokens checks that b decodes to the same elements, attributes (the
// decoder's namespace declarations aside) and text as a. Comments,
// processing instructions and directives are not compared.
func sameTokens(a, b []byte) error {
	ta, err := tokens(a)
	if err != nil {
		return fmt.Errorf("original: %w", err)
	}
	tb, err := tokens(b)
	if err != nil {
		return fmt.Errorf("serialization: %w", err)
	}
	if !reflect.DeepEqual(ta, tb) {
		return fmt.Errorf("tokens differ:\n%q\n%q", ta, tb)
	}
	return nil
}

// tokens returns a normalized token list of the first element in raw:
// adjacent text merged, xmlns attributes dropped, attributes sorted.
func tokens(raw []byte) ([]string, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	var out []string
	depth := 0
	text := ""
	flush := func() {
		if text != "" {
			out = append(out, "T"+text)
			text = ""
		}
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			flush()
			var attrs []string
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
					continue
				}
				attrs = append(attrs, a.Name.Space+"|"+a.Name.Local+"="+a.Value)
			}
			slices.Sort(attrs)
			out = append(out, "S"+t.Name.Space+"|"+t.Name.Local+" "+strings.Join(attrs, " "))
			depth++
		case xml.EndElement:
			flush()
			out = append(out, "E"+t.Name.Space+"|"+t.Name.Local)
			depth--
			if depth == 0 {
				return out, nil
			}
		case xml.CharData:
			if depth > 0 {
				text += string(t)
			}
		}
	}
}

// FuzzReadMessage: for any input, ReadMessage never panics; what it returns
// serialized decodes to the same elements, attributes and text as the
// input; Parse of the input and of the serialization agree with it.
func FuzzReadMessage(f *testing.F) {
	for _, c := range corpus {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > maxRawLen {
			return
		}
		out, in, perr, err := readAll(alice, raw)
		if err != nil {
			return
		}
		if err := sameTokens(raw, out); err != nil && perr == nil {
			t.Fatalf("%q: %v", out, err)
		}
		want, werr := Parse(alice, raw)
		if (werr == nil) != (perr == nil) || (werr == nil && !sameEntry(want, in)) {
			t.Fatalf("Parse %+v %v; ReadMessage %+v %v", want, werr, in, perr)
		}
		again, aerr := Parse(alice, out)
		if (aerr == nil) != (perr == nil) || (aerr == nil && !sameEntry(again, in)) {
			t.Fatalf("serialization %q: %+v %v; want %+v %v", out, again, aerr, in, perr)
		}
		if perr == nil && (in.Message.StanzaID == "" || len(in.Message.StanzaID) > maxIDLen) {
			t.Fatalf("accepted a message without a valid archive id: %+v", in)
		}
	})
}

// refParse is the xml.Unmarshal parser that ReadMessage replaced, kept as
// the reference for TestReadMessageMatchesUnmarshal.
func refParse(account jid.JID, raw []byte) (Incoming, error) {
	type wireDelay struct {
		Stamp string `xml:"stamp,attr"`
	}
	type sid struct {
		ID string `xml:"id,attr"`
		By string `xml:"by,attr"`
	}
	type Inner struct {
		XMLName  xml.Name
		From     string     `xml:"from,attr"`
		To       string     `xml:"to,attr"`
		Body     *string    `xml:"body"`
		Delay    *wireDelay `xml:"urn:xmpp:delay delay"`
		StanzaID []sid      `xml:"urn:xmpp:sid:0 stanza-id"`
		OriginID *sid       `xml:"urn:xmpp:sid:0 origin-id"`
	}
	type fwd struct {
		Delay   *wireDelay `xml:"urn:xmpp:delay delay"`
		Message *Inner     `xml:"jabber:client message"`
	}
	var w struct {
		XMLName xml.Name
		Inner
		Result *struct {
			QueryID   string `xml:"queryid,attr"`
			ID        string `xml:"id,attr"`
			Forwarded *fwd   `xml:"urn:xmpp:forward:0 forwarded"`
		} `xml:"urn:xmpp:mam:2 result"`
		Received *struct {
			Forwarded *fwd `xml:"urn:xmpp:forward:0 forwarded"`
		} `xml:"urn:xmpp:carbons:2 received"`
		Sent *struct {
			Forwarded *fwd `xml:"urn:xmpp:forward:0 forwarded"`
		} `xml:"urn:xmpp:carbons:2 sent"`
	}
	if err := xml.Unmarshal(raw, &w); err != nil {
		return Incoming{}, err
	}
	if w.XMLName.Local != "message" {
		return Incoming{}, errors.New("not a message")
	}
	conv := func(in *Inner) *msgFields {
		f := &msgFields{from: in.From, to: in.To}
		if in.Body != nil {
			f.hasBody, f.body = true, []byte(*in.Body)
		}
		if in.Delay != nil {
			f.delay = &in.Delay.Stamp
		}
		for _, s := range in.StanzaID {
			f.stanzaIDs = append(f.stanzaIDs, wireSID(s))
		}
		if in.OriginID != nil {
			f.originID = &in.OriginID.ID
		}
		return f
	}
	convFw := func(fw *fwd) *forwarded {
		if fw == nil {
			return nil
		}
		out := &forwarded{}
		if fw.Delay != nil {
			out.delay = &fw.Delay.Stamp
		}
		if fw.Message != nil {
			out.msg = conv(fw.Message)
		}
		return out
	}
	var outer outerParts
	if w.Result != nil {
		outer.result = &mamResult{queryID: w.Result.QueryID, id: w.Result.ID, fw: convFw(w.Result.Forwarded)}
	}
	switch {
	case w.Received != nil:
		outer.carbon, outer.carbonFw = true, convFw(w.Received.Forwarded)
	case w.Sent != nil:
		outer.carbon, outer.carbonFw = true, convFw(w.Sent.Forwarded)
	}
	return classify(account.Bare(), conv(&w.Inner), &outer, nil)
}

// benchResult is a MAM result as xmpptest sends it.
const benchResult = `<message to='alice@example.org/pipebind.x1y2z3'><result xmlns='urn:xmpp:mam:2' queryid='pb0123456789abcdef' id='0a1b2c3d4e5f607182'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2025-11-25T14:39:20.123456Z'/><message xmlns='jabber:client' from='bob@example.org' to='alice@example.org' type='chat' id='msg-0a1b2c3d4e5f607182'><body>message 12345</body></message></forwarded></result></message>`

// tokenStream replays the tokens of one element, as mellium hands a stanza
// to a handler (the start element apart).
type tokenStream struct {
	toks []xml.Token
	i    int
}

func (s *tokenStream) Token() (xml.Token, error) {
	if s.i == len(s.toks) {
		return nil, io.EOF
	}
	s.i++
	return s.toks[s.i-1], nil
}

func benchTokens(b *testing.B) (xml.StartElement, []xml.Token) {
	d := xml.NewDecoder(strings.NewReader(benchResult))
	d.DefaultSpace = nsClient
	var toks []xml.Token
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		toks = append(toks, xml.CopyToken(tok))
	}
	return toks[0].(xml.StartElement), toks[1:]
}

// BenchmarkReadMessage is the client's cost per MAM result beyond
// decoding the stream: one pass over the tokens.
func BenchmarkReadMessage(b *testing.B) {
	start, toks := benchTokens(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, perr, err := readMessage(alice, start, &tokenStream{toks: toks}); err != nil || perr != nil {
			b.Fatal(err, perr)
		}
	}
}

// BenchmarkEncodeUnmarshal is what ReadMessage replaced: encoding the
// tokens with an xml.Encoder, then xml.Unmarshal of the bytes.
func BenchmarkEncodeUnmarshal(b *testing.B) {
	start, toks := benchTokens(b)
	b.ReportAllocs()
	for b.Loop() {
		var raw bytes.Buffer
		e := xml.NewEncoder(&raw)
		if err := e.EncodeToken(start); err != nil {
			b.Fatal(err)
		}
		r := &tokenStream{toks: toks}
		for {
			tok, err := r.Token()
			if err == io.EOF {
				break
			}
			if err := e.EncodeToken(tok); err != nil {
				b.Fatal(err)
			}
		}
		if err := e.Flush(); err != nil {
			b.Fatal(err)
		}
		if _, err := refParse(alice, raw.Bytes()); err != nil {
			b.Fatal(err)
		}
	}
}
