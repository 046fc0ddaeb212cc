package login

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

const (
	tlsServerHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='example.org' version='1.0'>"
	tlsFeatures     = "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>"
	tlsProceed      = "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
)

// tlsTurn is one turn of a scripted STARTTLS server: it waits until the
// client has written want (counted from the start), then writes send.
type tlsTurn struct{ want, send string }

// startTLSServer plays turns on the server end of a pipe and returns the
// client end and a function that returns the client's writes, one string
// per Write call (net.Pipe hands each Write to one Read).
func startTLSServer(t *testing.T, turns ...tlsTurn) (net.Conn, func() []string) {
	t.Helper()
	cc, sc := net.Pipe()
	done := make(chan []string, 1)
	go func() {
		var writes []string
		defer func() { sc.Close(); done <- writes }()
		buf := make([]byte, 64<<10)
		for _, turn := range turns {
			for !strings.Contains(strings.Join(writes, ""), turn.want) {
				n, err := sc.Read(buf)
				if err != nil {
					return
				}
				writes = append(writes, string(buf[:n]))
			}
			if _, err := sc.Write([]byte(turn.send)); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { cc.Close() })
	return cc, func() []string {
		cc.Close()
		select {
		case w := <-done:
			return w
		case <-time.After(5 * time.Second):
			t.Fatal("the scripted server did not end")
			return nil
		}
	}
}

var tlsJID = jid.MustParse("alice@example.org/phone")

const clientHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='example.org' from='alice@example.org'>"

// TestStartTLS: the features first (two round trips), or <starttls/>
// pipelined with the header when the cache says it is offered (one): the
// client's writes are exactly those, with the bare JID in from=.
func TestStartTLS(t *testing.T) {
	for _, tc := range []struct {
		name      string
		pipelined bool
		turns     []tlsTurn
		writes    []string
		rt        int
	}{
		{"features first", false,
			[]tlsTurn{{"'>", tlsServerHeader + tlsFeatures}, {"<starttls", tlsProceed}},
			[]string{clientHeader, startTLSRequest}, 2},
		{"pipelined", true,
			[]tlsTurn{{"<starttls", tlsServerHeader + tlsFeatures + tlsProceed}},
			[]string{clientHeader + startTLSRequest}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, writes := startTLSServer(t, tc.turns...)
			res, err := StartTLS(context.Background(), conn, tlsJID, tc.pipelined)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Offered || res.RoundTrips != tc.rt {
				t.Errorf("result %+v, want offered in %d round trips", res, tc.rt)
			}
			if got := writes(); strings.Join(got, "|") != strings.Join(tc.writes, "|") {
				t.Errorf("client wrote %q\nwant %q", got, tc.writes)
			}
		})
	}
}

// TestStartTLSFailures: each way a server can fail STARTTLS is a *Error at
// StepStartTLS with the right kind, and the stream never goes on in plain
// text.
func TestStartTLSFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answer  string
		kind    error
		offered bool
	}{
		{"not offered", tlsServerHeader + "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>", ErrTLS, false},
		{"refused", tlsServerHeader + tlsFeatures + "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", ErrTLS, true},
		{"stream error", tlsServerHeader + "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>", ErrRefused, false},
		{"no header", "<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>", ErrProtocol, false},
		{"unexpected element", tlsServerHeader + "<message xmlns='jabber:client'/>", ErrProtocol, false},
		{"bad features", tlsServerHeader + "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'></stream:features>", ErrProtocol, false},
		{"garbage", "<<<not xml", ErrProtocol, false},
		{"huge features", tlsServerHeader + "<stream:features>" + strings.Repeat("<x/>", MaxLoginBytes/4) + "</stream:features>", ErrTooLarge, false},
		{"cut inside an element", tlsServerHeader + "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'", ErrConnection, false},
		{"closed", "", ErrConnection, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, _ := startTLSServer(t, tlsTurn{"<starttls", tc.answer})
			res, err := StartTLS(context.Background(), conn, tlsJID, true)
			var le *Error
			if !errors.As(err, &le) || le.Step != StepStartTLS || !errors.Is(err, tc.kind) || le.Domain != "example.org" {
				t.Fatalf("err = %v, want a *Error at step starttls matching %v", err, tc.kind)
			}
			if res.Offered != tc.offered || res.RoundTrips != 1 {
				t.Errorf("result %+v, want offered %v after 1 round trip", res, tc.offered)
			}
		})
	}
}

// TestStartTLSContext: a server that never answers costs the context, and
// the error matches it.
func TestStartTLSContext(t *testing.T) {
	conn, _ := startTLSServer(t, tlsTurn{"<starttls", ""}, tlsTurn{"never", ""})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := StartTLS(ctx, conn, tlsJID, true)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: err = %v, want ErrTimeout and DeadlineExceeded", err)
	}

	conn, _ = startTLSServer(t, tlsTurn{"<starttls", ""}, tlsTurn{"never", ""})
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err = StartTLS(ctx, conn, tlsJID, true)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Errorf("cancel: err = %v, want context.Canceled only", err)
	}
}

// answerConn is a net.Conn whose server answers with a fixed byte string
// and swallows what the client writes.
type answerConn struct {
	net.Conn // nil: only the methods below are called
	r        *strings.Reader
}

func (c *answerConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *answerConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *answerConn) SetDeadline(time.Time) error      { return nil }
func (c *answerConn) SetReadDeadline(time.Time) error  { return nil }
func (c *answerConn) SetWriteDeadline(time.Time) error { return nil }
func (c *answerConn) Close() error                     { return nil }

// FuzzStartTLS: whatever the server answers before TLS, StartTLS returns a
// *Error at StepStartTLS or a proceed, and never panics.
func FuzzStartTLS(f *testing.F) {
	f.Add(tlsServerHeader+tlsFeatures+tlsProceed, true)
	f.Add(tlsServerHeader+tlsFeatures+tlsProceed, false)
	f.Add(tlsServerHeader+"<stream:features/>", true)
	f.Add(tlsServerHeader+"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", false)
	f.Add(tlsServerHeader+"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>", true)
	f.Fuzz(func(t *testing.T, answer string, pipelined bool) {
		res, err := StartTLS(context.Background(), &answerConn{r: strings.NewReader(answer)}, tlsJID, pipelined)
		if err != nil {
			var le *Error
			if !errors.As(err, &le) || le.Step != StepStartTLS || le.Kind == nil {
				t.Fatalf("err = %#v, want a *Error at step starttls with a kind", err)
			}
			return
		}
		if res.RoundTrips < 1 || res.RoundTrips > 2 {
			t.Fatalf("%d round trips", res.RoundTrips)
		}
	})
}
