package client_test

import (
	"context"
	"encoding/xml"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
)

// ctlConn lets a test lose what the client writes (as a dying network
// does) and then cut the connection.
type ctlConn struct {
	net.Conn
	black atomic.Bool
}

func (c *ctlConn) Write(p []byte) (int, error) {
	if c.black.Load() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

type ctlDialer struct {
	mu    sync.Mutex
	conns []*ctlConn
}

func (d *ctlDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cc := &ctlConn{Conn: c}
	d.mu.Lock()
	d.conns = append(d.conns, cc)
	d.mu.Unlock()
	return cc, nil
}

func (d *ctlDialer) last() *ctlConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conns[len(d.conns)-1]
}

// events collects a client's connection events.
type events chan client.Event

func (e events) on(ev client.Event) { e <- ev }

// wait returns the next event of kind, failing on a timeout or on an
// EventClosed that was not asked for.
func (e events) wait(t *testing.T, kind client.EventKind) client.Event {
	t.Helper()
	timer := time.NewTimer(15 * time.Second)
	defer timer.Stop()
	for {
		select {
		case ev := <-e:
			if ev.Kind == kind {
				return ev
			}
			if ev.Kind == client.EventClosed {
				t.Fatalf("client closed (%v) while waiting for %s", ev.Err, kind)
			}
		case <-timer.C:
			t.Fatalf("no %s event", kind)
		}
	}
}

// msgCounter counts the messages a client receives, by id.
type msgCounter struct {
	mu   sync.Mutex
	seen map[string]int
	ch   chan string
}

func newMsgCounter() *msgCounter {
	return &msgCounter{seen: map[string]int{}, ch: make(chan string, 100)}
}

func (m *msgCounter) HandleXMPP(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	if start.Name.Local != "message" {
		return nil
	}
	for _, a := range start.Attr {
		if a.Name.Local == "id" {
			m.mu.Lock()
			m.seen[a.Value]++
			m.mu.Unlock()
			m.ch <- a.Value
		}
	}
	return nil
}

func (m *msgCounter) count(id string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seen[id]
}

// waitFor waits until message id has arrived.
func (m *msgCounter) waitFor(t *testing.T, id string) {
	t.Helper()
	timer := time.NewTimer(15 * time.Second)
	defer timer.Stop()
	for m.count(id) == 0 {
		select {
		case <-m.ch:
		case <-timer.C:
			t.Fatalf("message %s never arrived", id)
		}
	}
}

var _ xmpp.Handler = (*msgCounter)(nil)

func sendMsg(ctx context.Context, c *client.Client, to, id, body string) error {
	msg := stanza.Message{To: jid.MustParse(to), ID: id, Type: stanza.ChatMessage}
	return c.Send(ctx, msg.Wrap(xmlstream.Wrap(xmlstream.Token(xml.CharData(body)), xml.StartElement{Name: xml.Name{Local: "body"}})))
}

// reconnectPair starts alice (reconnecting, on a controllable connection)
// and bob, both counting the messages they receive.
func reconnectPair(t *testing.T, ctx context.Context, s *xmpptest.Server, mod func(*client.Config)) (alice, bob *client.Client, aliceMsgs *msgCounter, ev events, d *ctlDialer, bobMsgs *msgCounter) {
	t.Helper()
	d = &ctlDialer{}
	ev = make(events, 64)
	aliceMsgs, bobMsgs = newMsgCounter(), newMsgCounter()
	acfg := testConfig(t, s, "alice", openCache(t))
	acfg.NoSync = true
	acfg.Reconnect = true
	acfg.Backoff = client.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	acfg.DialFunc = d.dial
	acfg.OnEvent = ev.on
	acfg.Handler = aliceMsgs
	if mod != nil {
		mod(&acfg)
	}
	alice, err := client.Dial(ctx, acfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alice.Close() })
	if !alice.Info().SM.Resumable {
		t.Fatalf("alice's session is not resumable: %+v", alice.Info().SM)
	}
	bcfg := testConfig(t, s, "bob", nil)
	bcfg.Handler = bobMsgs
	bob, err = client.Dial(ctx, bcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bob.Close() })
	return alice, bob, aliceMsgs, ev, d, bobMsgs
}

// aliceServerConn returns the server's log of alice's live connection.
func aliceServerConn(t *testing.T, s *xmpptest.Server, full string) *xmpptest.ConnLog {
	t.Helper()
	for _, l := range s.Conns() {
		if l.BoundJID() == full {
			select {
			case <-l.Done():
			default:
				return l
			}
		}
	}
	t.Fatalf("no live server connection bound to %s", full)
	return nil
}

// TestResumeAfterDrop: a message alice sends just as her connection dies
// (it never reaches the server) and a message bob sends her while she is
// offline are each delivered exactly once after the session resumes.
func TestResumeAfterDrop(t *testing.T) {
	t.Run("spec", func(t *testing.T) { testResumeAfterDrop(t, false) })
	// Prosody 13 sends features after a resumed <success/>, which
	// XEP-0198 forbids: the session must survive them.
	t.Run("features after resume", func(t *testing.T) { testResumeAfterDrop(t, true) })
}

func testResumeAfterDrop(t *testing.T, features bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{SMResumeFeatures: features})
	alice, bob, aliceMsgs, ev, d, bobMsgs := reconnectPair(t, ctx, s, nil)
	full := alice.Info().JID.String()
	srvConn := aliceServerConn(t, s, full)

	// A message that gets through, acknowledged or not.
	if err := sendMsg(ctx, alice, "bob@localhost", "a0", "before"); err != nil {
		t.Fatal(err)
	}
	bobMsgs.waitFor(t, "a0")

	// The network dies: what alice writes now is lost, then the
	// connection breaks.
	c := d.last()
	c.black.Store(true)
	if err := sendMsg(ctx, alice, "bob@localhost", "a1", "in flight"); err != nil {
		t.Fatal(err)
	}
	c.Conn.Close()
	<-srvConn.Done() // the server has detached the session
	ev.wait(t, client.EventOffline)

	// bob writes while alice is away: the server holds it for the session.
	if err := sendMsg(ctx, bob, full, "b1", "while you were away"); err != nil {
		t.Fatal(err)
	}
	if err := pingServer(ctx, bob, s.Domain()); err != nil {
		t.Fatal(err)
	}

	got := ev.wait(t, client.EventResumed)
	if got.Info == nil || !got.Info.Resumed || got.Resent != 1 {
		t.Fatalf("resumed event: %+v; want a resumed session with 1 stanza re-sent", got)
	}
	if alice.Info().JID.String() != full {
		t.Errorf("resumed as %s, want the same full JID %s", alice.Info().JID, full)
	}
	bobMsgs.waitFor(t, "a1")
	aliceMsgs.waitFor(t, "b1")
	// Everything alice sent after the resume was processed in order; the
	// server saw each stanza once.
	if err := pingServer(ctx, alice, s.Domain()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a0", "a1"} {
		if n := s.HandledCount(id); n != 1 {
			t.Errorf("server handled %s %d times, want 1", id, n)
		}
		if n := bobMsgs.count(id); n != 1 {
			t.Errorf("bob received %s %d times, want 1", id, n)
		}
	}
	if n := aliceMsgs.count("b1"); n != 1 {
		t.Errorf("alice received b1 %d times, want 1", n)
	}
	if st := s.Logins("alice"); st.Resumed != 1 {
		t.Errorf("server stats: %+v", st)
	}
}

// TestResumeFailedFreshSession: when the server no longer has the session,
// the same login binds a fresh one (no extra round trip), the counters
// restart, and the message lost with the connection is sent again.
func TestResumeFailedFreshSession(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	alice, _, _, ev, d, bobMsgs := reconnectPair(t, ctx, s, nil)
	srvConn := aliceServerConn(t, s, alice.Info().JID.String())

	c := d.last()
	c.black.Store(true)
	if err := sendMsg(ctx, alice, "bob@localhost", "lost", "in flight"); err != nil {
		t.Fatal(err)
	}
	c.Conn.Close()
	<-srvConn.Done()
	if n := s.ExpireSMSessions("alice"); n != 1 {
		t.Fatalf("expired %d sessions, want 1", n)
	}
	got := ev.wait(t, client.EventOnline)
	if got.Info == nil || got.Info.Resumed || got.Info.ResumeFailed != "item-not-found" || got.Resent != 1 {
		t.Fatalf("event %+v; want a fresh session after item-not-found with the message re-sent", got)
	}
	if got.Info.RoundTrips != 1 {
		t.Errorf("%d round trips for the failed resume and the fresh bind, want 1", got.Info.RoundTrips)
	}
	bobMsgs.waitFor(t, "lost")
	if !alice.Info().SM.Enabled || !alice.Info().SM.Resumable {
		t.Fatalf("the fresh session has no resumable stream management: %+v", alice.Info().SM)
	}
	// The fresh session's counters start at zero: an ack round trip works.
	if err := sendMsg(ctx, alice, "bob@localhost", "after", "fresh"); err != nil {
		t.Fatal(err)
	}
	bobMsgs.waitFor(t, "after")
	if err := pingServer(ctx, alice, s.Domain()); err != nil {
		t.Fatal(err)
	}
	if info, ok := s.SMSession(alice.Info().JID.String()); !ok || info.InboundH < 2 {
		t.Fatalf("server SM state of the fresh session: %+v, %v", info, ok)
	}
}

// TestReconnectStopsOnAuthFailure: credentials the server now refuses stop
// the loop after one attempt, with ErrAuth, instead of hammering it.
func TestReconnectStopsOnAuthFailure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	alice, _, _, ev, _, _ := reconnectPair(t, ctx, s, func(c *client.Config) { c.NoFAST = true })
	srvConn := aliceServerConn(t, s, alice.Info().JID.String())
	s.AddUser("alice", "changed-elsewhere")
	conns := len(s.Conns())
	s.CutConnection(srvConn)
	ev.wait(t, client.EventOffline)
	closed := ev.wait(t, client.EventClosed)
	if !errors.Is(closed.Err, client.ErrAuth) {
		t.Fatalf("closed with %v, want ErrAuth", closed.Err)
	}
	select {
	case <-alice.Done():
	case <-ctx.Done():
		t.Fatal("Done not closed")
	}
	if !errors.Is(alice.Err(), client.ErrAuth) {
		t.Fatalf("Err() = %v, want ErrAuth", alice.Err())
	}
	if n := len(s.Conns()) - conns; n != 1 {
		t.Fatalf("%d reconnection attempts, want 1", n)
	}
	if err := sendMsg(ctx, alice, "bob@localhost", "x", "y"); !errors.Is(err, client.ErrAuth) {
		t.Fatalf("Send after the client stopped = %v, want its cause", err)
	}
}

// TestCloseWhileReconnecting: Close ends the loop at once, even while the
// server is unreachable.
func TestCloseWhileReconnecting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	alice, _, _, ev, _, _ := reconnectPair(t, ctx, s, func(c *client.Config) {
		c.Backoff = client.Backoff{Min: 20 * time.Millisecond, Max: 40 * time.Millisecond}
	})
	s.Close() // every later attempt fails to connect
	ev.wait(t, client.EventOffline)
	first := ev.wait(t, client.EventConnecting)
	if first.Attempt != 1 {
		t.Fatalf("first attempt numbered %d", first.Attempt)
	}
	next := ev.wait(t, client.EventConnecting) // a failed attempt, then another
	if next.Err == nil || !errors.Is(next.Err, client.ErrConnection) {
		t.Fatalf("attempt %d reports the previous failure as %v, want ErrConnection", next.Attempt, next.Err)
	}
	done := make(chan struct{})
	go func() { alice.Close(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("Close did not return while reconnecting")
	}
	if !errors.Is(alice.Err(), client.ErrClosed) {
		t.Fatalf("Err() = %v, want ErrClosed", alice.Err())
	}
	ev.wait(t, client.EventClosed)
	sctx, scancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer scancel()
	if err := sendMsg(sctx, alice, "bob@localhost", "x", "y"); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
}

// TestNoReconnectByDefault: without Config.Reconnect a drop ends the client.
func TestNoReconnectByDefault(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	alice, _, _, ev, _, _ := reconnectPair(t, ctx, s, func(c *client.Config) { c.Reconnect = false })
	conns := len(s.Conns())
	s.CutConnection(aliceServerConn(t, s, alice.Info().JID.String()))
	ev.wait(t, client.EventOffline)
	ev.wait(t, client.EventClosed)
	<-alice.Done()
	if alice.Err() == nil || errors.Is(alice.Err(), client.ErrClosed) {
		t.Fatalf("Err() = %v, want the cause of the drop", alice.Err())
	}
	if n := len(s.Conns()) - conns; n != 0 {
		t.Fatalf("%d reconnection attempts without Reconnect", n)
	}
}

func TestBackoffDelays(t *testing.T) {
	b := client.Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for range 200 {
		if d := b.Delay(1); d < 0 || d >= b.Min {
			t.Fatalf("Delay(1) = %v, want in [0, %v)", d, b.Min)
		}
		for n, base := range map[int]time.Duration{2: 100 * time.Millisecond, 3: 200 * time.Millisecond, 4: 400 * time.Millisecond, 5: 800 * time.Millisecond, 6: time.Second, 60: time.Second} {
			if d := b.Delay(n); d < base/2 || d > base {
				t.Fatalf("Delay(%d) = %v, want in [%v, %v]", n, d, base/2, base)
			}
		}
	}
	var zero client.Backoff
	if d := zero.Delay(100); d < 15*time.Second || d > 30*time.Second {
		t.Fatalf("zero Backoff Delay(100) = %v, want within the 30 s cap", d)
	}
}

// runningClientCode returns the stacks of the goroutines running pipebind
// code (client, login, mamsync) that a test did not start itself.
func runningClientCode() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "pipebind/pipebind/client.") || strings.Contains(g, "pipebind/pipebind/login.") || strings.Contains(g, "pipebind/pipebind/mamsync.") {
			if !strings.Contains(g, "client_test.") || strings.Contains(g, "created by github.com/pipebind/pipebind/client.") {
				out = append(out, g)
			}
		}
	}
	return out
}

// idleClientCode returns runningClientCode once at most one more goroutine
// than before runs client code, or after a bounded while: goroutines that
// have done their work (the one that reconnected, the one that delivered
// the events, those of a client closed before) are given that while to
// return.
func idleClientCode(before int) []string {
	got := runningClientCode()
	for deadline := time.Now().Add(5 * time.Second); len(got)-before > 1 && time.Now().Before(deadline); got = runningClientCode() {
		runtime.Gosched()
	}
	return got
}

// TestIdleClientOneGoroutine: an idle client (no sync) holds exactly one
// goroutine, the one reading its connection, with or without Reconnect;
// the end of the connection is handled on a goroutine started only then.
// A storm of idle bots holds thousands of clients, each goroutine at least
// a few KiB of stack.
func TestIdleClientOneGoroutine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	before := len(runningClientCode())
	for _, reconnect := range []bool{false, true} {
		ev := make(events, 16)
		cfg := testConfig(t, s, "alice", nil)
		cfg.NoSync, cfg.Reconnect, cfg.OnEvent = true, reconnect, ev.on
		cfg.Backoff = client.Backoff{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond}
		c, err := client.Dial(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := idleClientCode(before); len(got)-before != 1 {
			t.Errorf("Reconnect %t: %d client goroutines while idle, want 1:\n%s", reconnect, len(got)-before, strings.Join(got, "\n\n"))
		}
		// The end of the connection is still handled.
		s.CutConnection(aliceServerConn(t, s, c.Info().JID.String()))
		ev.wait(t, client.EventOffline)
		if reconnect {
			// Back up (resumed: stream management is on), and idle again
			// with one goroutine.
			ev.wait(t, client.EventResumed)
			if got := idleClientCode(before); len(got)-before != 1 {
				t.Errorf("after the reconnection: %d client goroutines while idle, want 1:\n%s", len(got)-before, strings.Join(got, "\n\n"))
			}
			c.Close()
		} else {
			<-c.Done()
			if c.Err() == nil || errors.Is(c.Err(), client.ErrClosed) {
				t.Errorf("Err() = %v, want the cause of the drop", c.Err())
			}
			c.Close()
		}
		ev.wait(t, client.EventClosed)
	}
}
