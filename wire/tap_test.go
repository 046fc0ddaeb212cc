package wire

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestInboundTap: complete top-level messages are offered to the hook
// before the decoder; those it takes never reach the decoder but count as
// handled; the rest, and every other element, decode as if there were no
// hook. And the hook never makes a read wait for bytes the decoder would
// not wait for: an <r/> with nothing after it is decoded at once.
func TestInboundTap(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	m := New(client, Options{})
	m.EndLogin() // counting, as after the login
	var offered []string
	m.SetInboundTap(func(raw []byte) bool {
		offered = append(offered, string(raw))
		return strings.Contains(string(raw), "take")
	})

	const first = `<message id='take1'><body>a</body></message><message id='keep'><body>b</body></message> <message id='take2'/><iq id='i'/><r xmlns='urn:xmpp:sm:3'/>`
	go func() {
		// Written in pieces, as TCP may deliver them.
		for _, part := range []string{first[:5], first[5:60], first[60:]} {
			if _, err := server.Write([]byte(part)); err != nil {
				return
			}
		}
	}()
	d := xml.NewDecoder(m)
	var seen []string
	deadline := time.Now().Add(5 * time.Second)
	_ = client.SetReadDeadline(deadline)
	for len(seen) < 3 {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("after %v: %v", seen, err)
		}
		if s, ok := tok.(xml.StartElement); ok {
			id := s.Name.Local
			for _, a := range s.Attr {
				if a.Name.Local == "id" {
					id += "#" + a.Value
				}
			}
			seen = append(seen, id)
			if err := d.Skip(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The <r/> was read without more data arriving (the pipe has none).
	if want := "message#keep iq#i r"; strings.Join(seen, " ") != want {
		t.Fatalf("decoder saw %q, want %q", strings.Join(seen, " "), want)
	}
	if len(offered) != 3 || !strings.HasPrefix(offered[0], "<message id='take1'>") || !strings.HasSuffix(offered[0], "</message>") {
		t.Fatalf("offered %q", offered)
	}
	// take1, keep, take2, iq: the <r/> is not a stanza.
	if got := m.StanzasIn(); got != 4 {
		t.Fatalf("handled %d, want 4", got)
	}
}

// TestInboundTapLimits: a message too large is refused with ErrTooLarge
// while it is captured, and a read error mid-message reaches the decoder
// after the bytes before it.
func TestInboundTapLimits(t *testing.T) {
	t.Run("too large", func(t *testing.T) {
		r := strings.NewReader("<message><body>" + strings.Repeat("x", DefaultMaxBytes) + "</body></message>")
		m := New(readConn{r}, Options{})
		m.EndLogin()
		m.SetInboundTap(func([]byte) bool { t.Fatal("offered"); return true })
		_, err := xml.NewDecoder(m).Token()
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("got %v, want ErrTooLarge", err)
		}
	})
	t.Run("cut", func(t *testing.T) {
		m := New(readConn{strings.NewReader("<message><bo")}, Options{})
		m.EndLogin()
		m.SetInboundTap(func([]byte) bool { t.Fatal("offered"); return true })
		d := xml.NewDecoder(m)
		tok, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := tok.(xml.StartElement); !ok || s.Name.Local != "message" {
			t.Fatalf("got %#v", tok)
		}
		if _, err := d.Token(); err == nil {
			t.Fatal("no error at the cut")
		}
	})
}

// readConn is a net.Conn that reads from r.
type readConn struct{ r io.Reader }

func (c readConn) Read(p []byte) (int, error)     { return c.r.Read(p) }
func (readConn) Write(p []byte) (int, error)      { return len(p), nil }
func (readConn) Close() error                     { return nil }
func (readConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (readConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (readConn) SetDeadline(time.Time) error      { return nil }
func (readConn) SetReadDeadline(time.Time) error  { return nil }
func (readConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzConn: whatever a server sends, the decoder reading through a Conn
// with a tap sees the same tokens as reading the bytes directly (but for
// white space between top-level elements, which the Conn drops), up to the
// first error; a tap that takes every message removes exactly the
// top-level messages.
func FuzzConn(f *testing.F) {
	f.Add([]byte(`<message id='a'><body>x</body></message> <iq/><message/>`))
	f.Add([]byte(`<message><![CDATA[</message>]]></message><r xmlns='urn:xmpp:sm:3'/>`))
	f.Add([]byte(`<messagex/><message:x/><x:message xmlns:x='jabber:client'/>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, take := range []bool{false, true} {
			c := New(readConn{bytes.NewReader(data)}, Options{})
			c.EndLogin()
			c.SetInboundTap(func([]byte) bool { return take })
			got, gerr := rawTokens(xml.NewDecoder(c))
			all, aerr := rawTokens(xml.NewDecoder(bytes.NewReader(data)))
			want := dropTopSpace(all, take)
			if gerr == io.EOF && aerr == io.EOF {
				if n := topStanzas(all); c.StanzasIn() != uint32(n) {
					t.Fatalf("take=%v: StanzasIn %d, %d top-level stanzas", take, c.StanzasIn(), n)
				}
			}
			n := min(len(got), len(want))
			if gerr == io.EOF {
				n = len(want)
			}
			if len(got) < n {
				t.Fatalf("take=%v: the Conn gave %d tokens before %v, directly %d", take, len(got), gerr, len(want))
			}
			for i := 0; i < n; i++ {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("take=%v: token %d: %#v through the Conn, %#v directly", take, i, got[i], want[i])
				}
			}
		}
	})
}

// topStanzas counts the top-level message, presence and iq elements that
// end in toks, with the stream model of dropTopSpace.
func topStanzas(toks []xml.Token) int {
	n, depth := 0, 0
	var name string
	for _, tok := range toks {
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && t.Name.Local == "stream" {
				continue
			}
			if depth == 0 {
				name = t.Name.Local
			}
			depth++
		case xml.EndElement:
			if depth == 0 {
				continue
			}
			if depth--; depth == 0 && (name == "message" || name == "presence" || name == "iq") {
				n++
			}
		}
	}
	return n
}

func rawTokens(d *xml.Decoder) ([]xml.Token, error) {
	var toks []xml.Token
	for {
		tok, err := d.RawToken()
		if err != nil {
			return toks, err
		}
		toks = append(toks, xml.CopyToken(tok))
	}
}

// dropTopSpace removes white space between top-level elements and, with
// messages, every top-level element named message (with any prefix). A
// start tag named stream at the top opens the stream (its children are at
// the top) and an end tag at the top closes it, as the Lexer has it.
func dropTopSpace(toks []xml.Token, messages bool) []xml.Token {
	var out []xml.Token
	depth, skipping := 0, false
	for _, tok := range toks {
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && t.Name.Local == "stream" {
				break // the stream header: its children are at the top
			}
			if depth == 0 && messages && t.Name.Local == "message" {
				skipping = true
			}
			depth++
		case xml.EndElement:
			if depth == 0 {
				break // the stream's end
			}
			depth--
			if depth == 0 && skipping {
				skipping = false
				continue
			}
		case xml.CharData:
			if depth == 0 && len(bytes.TrimLeft(t, " \t\r\n")) == 0 {
				continue
			}
		}
		if !skipping {
			out = append(out, tok)
		}
	}
	return out
}
