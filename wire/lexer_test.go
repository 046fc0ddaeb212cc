package wire

import (
	"bytes"
	"encoding/xml"
	"io"
	"testing"
)

// xmlCount counts top-level message/presence/iq elements with encoding/xml:
// the reference the lexer must agree with on well-formed input.
func xmlCount(data []byte) (int, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	depth, n := 0, 0
	var top bool
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && t.Name.Local == "stream" {
				continue // the stream header: its children are at the top
			}
			if depth == 0 {
				top = t.Name.Local == "message" || t.Name.Local == "presence" || t.Name.Local == "iq"
			}
			depth++
		case xml.EndElement:
			if depth == 0 {
				continue // </stream:stream>
			}
			depth--
			if depth == 0 && top {
				n++
				top = false
			}
		}
	}
}

// lexCount counts the stanzas the Lexer sees end, and whether it refused
// the input.
func lexCount(data []byte) (n int, refused bool) {
	var l Lexer
	for _, b := range data {
		switch k := l.Feed(b); {
		case k == KindError:
			return n, true
		case k.Stanza():
			n++
		}
	}
	return n, false
}

func TestLexer(t *testing.T) {
	for _, in := range []string{
		`<message to='a@b'><body>hi</body></message>`,
		`<iq type='result' id='x'/>`,
		`<presence/><r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='1'/>`,
		`<message a='x/>y' b="q'>/"><body>1 &lt; 2 &gt; 0 / </body><x/></message>`,
		`<!-- <message/> --><message><![CDATA[ </message> <iq/> ]]></message>`,
		`<?pi <iq/> ?><iq type='get' id='1'><query xmlns='jabber:iq:roster'><item jid='x'/></query></iq>`,
		`<message><message><message/></message></message>`,
		"<message\n\tto='x'\n/>  <presence type = 'unavailable' />",
		`<!-- a - b -><iq/> --><iq/>`,
		`<message><![CDATA[ a ]]] ]]></message>`,
		`<client:message xmlns:client='jabber:client'/>`,
	} {
		want, err := xmlCount([]byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got, refused := lexCount([]byte(in)); refused || got != want {
			t.Errorf("%q: lexer counted %d, encoding/xml %d", in, got, want)
		}
	}
}

func FuzzLexer(f *testing.F) {
	f.Add([]byte(`<message a='x/>y'><body>hi</body></message><iq/>`))
	f.Add([]byte(`<!-- <message/> --><message><![CDATA[ </message> ]]></message><presence/>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, refused := lexCount(data) // never panics
		want, err := xmlCount(data)
		if err != nil || refused {
			// The lexer refuses what a stream never carries and
			// encoding/xml may accept: a DTD, text between top-level
			// elements.
			return
		}
		if got != want {
			t.Fatalf("lexer counted %d, encoding/xml %d", got, want)
		}
	})
}
