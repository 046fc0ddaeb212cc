package login

import (
	"encoding/xml"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestInboundHook: complete top-level messages are offered to the hook
// before the decoder; those it takes never reach the decoder but count as
// handled; the rest, and every other element, decode as if there were no
// hook. And the hook never makes a read wait for bytes the decoder would
// not wait for: an <r/> with nothing after it is decoded at once.
func TestInboundHook(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	m := newMeterConn(client, nil)
	m.flights() // scanning, as after the login
	var offered []string
	hook := func(raw []byte) bool {
		offered = append(offered, string(raw))
		return strings.Contains(string(raw), "take")
	}
	m.inHook.Store(&hook)

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
	if got := m.handled.Load(); got != 4 {
		t.Fatalf("handled %d, want 4", got)
	}
}

// TestInboundHookLimits: a message too large is refused with ErrTooLarge
// while it is captured, and a read error mid-message reaches the decoder
// after the bytes before it.
func TestInboundHookLimits(t *testing.T) {
	t.Run("too large", func(t *testing.T) {
		r := strings.NewReader("<message><body>" + strings.Repeat("x", MaxStanzaBytes) + "</body></message>")
		m := newMeterConn(readConn{r}, nil)
		m.flights()
		hook := func([]byte) bool { t.Fatal("offered"); return true }
		m.inHook.Store(&hook)
		_, err := xml.NewDecoder(m).Token()
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("got %v, want ErrTooLarge", err)
		}
	})
	t.Run("cut", func(t *testing.T) {
		m := newMeterConn(readConn{strings.NewReader("<message><bo")}, nil)
		m.flights()
		hook := func([]byte) bool { t.Fatal("offered"); return true }
		m.inHook.Store(&hook)
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
