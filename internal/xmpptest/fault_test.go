package xmpptest

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// faultFirst injects f into the first connection only.
func faultFirst(f Fault) func(int) Fault {
	return func(n int) Fault {
		if n == 0 {
			return f
		}
		return Fault{}
	}
}

// readAllRaw reads the TLS stream to its end.
func readAllRaw(t *testing.T, c *client) ([]byte, error) {
	t.Helper()
	b, err := io.ReadAll(c.br)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil // TCP closed without close_notify: crypto/tls may say either
	}
	return b, err
}

const serverHeaderPrefix = "<?xml version='1.0'?><stream:stream"

func TestFaultCloseAfter(t *testing.T) {
	s := newTestServer(t, Config{Fault: faultFirst(Fault{CloseAfter: 10})})
	c := dialTLS(t, s)
	c.write(streamHeader("alice@localhost") + sasl2Plain("alice", "secret", "x"))
	got, err := readAllRaw(t, c)
	if err != nil || string(got) != serverHeaderPrefix[:10] {
		t.Fatalf("read %q, %v; want %q then EOF", got, err, serverHeaderPrefix[:10])
	}
	l := s.Conns()[0]
	waitDone(t, l)
	if !errors.Is(l.Err(), errFaultClosed) {
		t.Errorf("Err = %v", l.Err())
	}
	// The next connection has no fault.
	c2, j := login(t, s, "alice", "secret", "y")
	if !strings.HasPrefix(j, "alice@localhost/") {
		t.Errorf("second login: %q", j)
	}
	c2.close()
}

// The limit counts bytes after TLS: with STARTTLS, not the plaintext
// header, features and <proceed/>.
func TestFaultCloseAfterStartTLS(t *testing.T) {
	s := newTestServer(t, Config{Fault: faultFirst(Fault{CloseAfter: 25})})
	nc, err := net.DialTimeout("tcp", s.StartTLSAddr(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, nc)
	c.write(streamHeader("alice@localhost") + "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	c.header()
	c.expect(nsStream, "features")
	c.expect(nsTLS, "proceed")
	tc := tls.Client(nc, s.TLSConfig())
	c = newClient(t, tc)
	c.write(streamHeader("alice@localhost"))
	got, err := readAllRaw(t, c)
	if err != nil || string(got) != serverHeaderPrefix[:25] {
		t.Fatalf("read %q, %v; want %q then EOF", got, err, serverHeaderPrefix[:25])
	}
}

// A limit inside a later element: the client gets the header and part of
// the features. SetConfig applies Fault to later connections.
func TestFaultCloseAfterFeatures(t *testing.T) {
	s := newTestServer(t, Config{})
	s.SetConfig(func(cfg *Config) {
		cfg.Fault = func(int) Fault { return Fault{CloseAfter: 300} }
	})
	c := dialTLS(t, s)
	c.write(streamHeader("alice@localhost"))
	got, err := readAllRaw(t, c)
	if err != nil || len(got) != 300 || !strings.HasPrefix(string(got), serverHeaderPrefix) ||
		!strings.Contains(string(got), "<stream:features") {
		t.Fatalf("read %d bytes %q, %v", len(got), got, err)
	}
}

func TestFaultStallAfter(t *testing.T) {
	s := newTestServer(t, Config{Fault: faultFirst(Fault{StallAfter: 10})})
	c := dialTLS(t, s)
	c.write(streamHeader("alice@localhost") + sasl2Plain("alice", "secret", "x"))
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(c.br, buf, 10)
	if err != nil || string(buf[:n]) != serverHeaderPrefix[:10] {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.br.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after the stall: %q, %v; want a deadline error", buf[:n], err)
	}
	// Still open: the server reads and discards.
	l := s.Conns()[0]
	c.write("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>" + strings.Repeat(" ", 100000))
	select {
	case <-l.Done():
		t.Fatalf("connection ended: %v", l.Err())
	case <-time.After(100 * time.Millisecond):
	}
	_ = c.nc.Close()
	waitDone(t, l)
	if !errors.Is(l.Err(), errFaultStalled) {
		t.Errorf("Err = %v", l.Err())
	}
}

// Server.Close ends a stalled connection.
func TestFaultStallClose(t *testing.T) {
	s := NewServer(Config{Users: testUsers, Fault: func(int) Fault { return Fault{StallAfter: 1} }})
	c := dialTLS(t, s)
	c.write(streamHeader("alice@localhost"))
	b, err := c.br.ReadByte()
	if err != nil || b != '<' {
		t.Fatalf("read %q, %v", b, err)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(testTimeout):
		t.Fatal("Close hangs on a stalled connection")
	}
}

func TestFaultGarbage(t *testing.T) {
	const garbage = "\x00garbage<<"
	s := newTestServer(t, Config{Fault: faultFirst(Fault{Garbage: garbage})})
	c := dialTLS(t, s)
	c.write(streamHeader("alice@localhost"))
	c.header()
	buf := make([]byte, len(garbage))
	if _, err := io.ReadFull(c.br, buf); err != nil || string(buf) != garbage {
		t.Fatalf("read %q, %v", buf, err)
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.br.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("features after the garbage: %q, %v", buf[:n], err)
	}
	if ev, ok := s.Conns()[0].Sent("features"); ok {
		t.Errorf("features sent: %+v", ev)
	}
}

func TestFaultStreamError(t *testing.T) {
	s := newTestServer(t, Config{Fault: faultFirst(Fault{StreamError: "system-shutdown"})})
	c := dialTLS(t, s)
	c.write(streamHeader("alice@localhost") + sasl2Plain("alice", "secret", "x"))
	c.header()
	c.expect(nsStream, "features")
	e := c.expect(nsStream, "error")
	if len(e.Children) != 1 || e.child(nsStreamError, "system-shutdown") == nil {
		t.Errorf("stream error: %s", e.String())
	}
	if el, ok := c.tryNext(); ok {
		t.Errorf("after the error: %s", el.String())
	}
	waitDone(t, s.Conns()[0])
	if _, ok := s.Conns()[0].Sent("success"); ok {
		t.Error("authenticated anyway")
	}
}

// TestFaultCloseAfterSASL2Failure: after a SASL2 <failure> the stream ends
// and nothing else is answered on it.
func TestFaultCloseAfterSASL2Failure(t *testing.T) {
	s := newTestServer(t, Config{Fault: faultFirst(Fault{CloseAfterSASL2Failure: true})})
	c := dialTLS(t, s)
	c.write(streamHeader("alice@localhost") + sasl2Plain("alice", "wrong", "x"))
	c.header()
	c.expect(nsStream, "features")
	c.expect(nsSASL2, "failure")
	if el, ok := c.tryNext(); ok {
		t.Errorf("after the failure: %s", el.String())
	}
	waitDone(t, s.Conns()[0])

	// The next connection has no fault: a failure leaves the stream open.
	c = dialTLS(t, s)
	c.write(streamHeader("alice@localhost") + sasl2Plain("alice", "wrong", "x"))
	c.header()
	c.expect(nsStream, "features")
	c.expect(nsSASL2, "failure")
	c.write(sasl2Plain("alice", "secret", "x"))
	c.expect(nsSASL2, "success")
	c.expect(nsStream, "features")
	c.close()
}

func TestFaultRefusePipelined(t *testing.T) {
	s := newTestServer(t, Config{Fault: func(int) Fault { return Fault{RefusePipelined: true} }})

	// Pipelined: refused.
	c := dialTLS(t, s)
	c.write(streamHeader("alice@localhost") + sasl2Plain("alice", "secret", "x"))
	c.header()
	e := c.expect(nsStream, "error")
	if e.child(nsStreamError, "policy-violation") == nil {
		t.Errorf("stream error: %s", e.String())
	}
	if el, ok := c.tryNext(); ok {
		t.Errorf("after the error: %s", el.String())
	}

	// Step by step, SASL2: fine.
	c = dialTLS(t, s)
	c.write(streamHeader("alice@localhost"))
	c.header()
	c.expect(nsStream, "features")
	c.write(sasl2Plain("alice", "secret", "x"))
	c.expect(nsSASL2, "success")
	c.expect(nsStream, "features")
	c.close()

	// Step by step, classic with a restart: fine; a restart header with a
	// pipelined <iq/> behind it is refused.
	for _, pipelineBind := range []bool{false, true} {
		c = dialTLS(t, s)
		c.write(streamHeader("alice@localhost"))
		c.header()
		c.expect(nsStream, "features")
		c.write("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + b64("\x00alice\x00secret") + "</auth>")
		c.expect(nsSASL, "success")
		c.restart()
		bind := "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
		if pipelineBind {
			c.write(streamHeader("alice@localhost") + bind)
			c.header()
			if e := c.expect(nsStream, "error"); e.child(nsStreamError, "policy-violation") == nil {
				t.Errorf("stream error: %s", e.String())
			}
			continue
		}
		c.write(streamHeader("alice@localhost"))
		c.header()
		c.expect(nsStream, "features")
		c.write(bind)
		if iq := c.expect(nsClient, "iq"); iq.attr("type") != "result" {
			t.Errorf("bind: %s", iq.String())
		}
		c.close()
	}
}

func TestFaultExtraFeatures(t *testing.T) {
	s := newTestServer(t, Config{Fault: func(int) Fault { return Fault{ExtraFeatures: true} }})
	// SASL2: after the features that follow <success/>.
	c := dialTLS(t, s)
	c.write(streamHeader("alice@localhost") + sasl2Plain("alice", "secret", "x"))
	c.header()
	c.expect(nsStream, "features")
	c.expect(nsSASL2, "success")
	if f := c.expect(nsStream, "features"); len(f.Children) == 0 {
		t.Errorf("real features: %s", f.String())
	}
	if f := c.expect(nsStream, "features"); len(f.Children) != 0 || f.Text != "" {
		t.Errorf("extra features: %s", f.String())
	}
	c.close()

	// Classic: after the features of the restarted stream.
	c = dialTLS(t, s)
	c.write(streamHeader("alice@localhost") +
		"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + b64("\x00alice\x00secret") + "</auth>" +
		streamHeader("alice@localhost"))
	c.header()
	c.expect(nsStream, "features")
	c.expect(nsSASL, "success")
	c.restart()
	c.header()
	if f := c.expect(nsStream, "features"); f.child(nsBind, "bind") == nil {
		t.Errorf("real features: %s", f.String())
	}
	if f := c.expect(nsStream, "features"); len(f.Children) != 0 {
		t.Errorf("extra features: %s", f.String())
	}
	c.close()
}

func TestFaultUnexpectedElement(t *testing.T) {
	const x = "<message from='localhost' id='odd'><body>surprise</body></message>"
	s := newTestServer(t, Config{Fault: func(int) Fault { return Fault{UnexpectedElement: x} }})
	for _, classic := range []bool{false, true} {
		c := dialTLS(t, s)
		if classic {
			c.write(streamHeader("alice@localhost") +
				"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + b64("\x00alice\x00secret") + "</auth>")
		} else {
			c.write(streamHeader("alice@localhost") + sasl2Plain("alice", "secret", "x"))
		}
		c.header()
		c.expect(nsStream, "features")
		if m := c.expect(nsClient, "message"); m.attr("id") != "odd" {
			t.Errorf("unexpected element: %s", m.String())
		}
		if classic {
			c.expect(nsSASL, "success")
		} else {
			c.expect(nsSASL2, "success")
			c.expect(nsStream, "features")
			c.close()
		}
	}
}

// Fault is called with the accept index.
func TestFaultIndex(t *testing.T) {
	var mu sync.Mutex
	var seen []int
	s := newTestServer(t, Config{Fault: func(n int) Fault {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, n)
		return Fault{}
	}})
	for range 3 {
		c, _ := login(t, s, "alice", "secret", "x")
		c.close()
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, []int{0, 1, 2}) {
		t.Errorf("indices %v", seen)
	}
}
