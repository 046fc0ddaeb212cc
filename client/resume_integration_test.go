package client_test

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/pipebind/pipebind/client"
)

// realCutConn is a TCP connection the test can break the way a network
// does: lose what the client writes, or what it would read, and then reset
// it (RST, no FIN).
type realCutConn struct {
	net.Conn // a *net.TCPConn
	// dropWrites: writes "succeed" but never reach the server.
	dropWrites atomic.Bool
	// dropReads: what arrives from now on is never seen by the client.
	dropReads atomic.Bool
	killed    chan struct{}
	killOnce  sync.Once
}

func (c *realCutConn) Write(p []byte) (int, error) {
	if c.dropWrites.Load() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *realCutConn) Read(p []byte) (int, error) {
	if !c.dropReads.Load() {
		n, err := c.Conn.Read(p)
		if !c.dropReads.Load() {
			return n, err
		}
		// Set while this read waited: what it got is lost too.
	}
	<-c.killed
	return 0, net.ErrClosed
}

// kill resets the connection: SO_LINGER 0 makes Close send an RST.
func (c *realCutConn) kill() error {
	var err error
	c.killOnce.Do(func() {
		if tc, ok := c.Conn.(*net.TCPConn); ok {
			err = tc.SetLinger(0)
		}
		if cerr := c.Conn.Close(); err == nil {
			err = cerr
		}
		close(c.killed)
	})
	return err
}

// realGateDialer is a Config.DialFunc: the first connection goes through,
// later ones wait until the test opens the gate.
type realGateDialer struct {
	gate  chan struct{}
	mu    sync.Mutex
	conns []*realCutConn
}

func (d *realGateDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	n := len(d.conns)
	d.mu.Unlock()
	if n > 0 {
		select {
		case <-d.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cc := &realCutConn{Conn: c, killed: make(chan struct{})}
	d.mu.Lock()
	d.conns = append(d.conns, cc)
	d.mu.Unlock()
	return cc, nil
}

func (d *realGateDialer) conn(i int) *realCutConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conns[i]
}

func (d *realGateDialer) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.conns)
}

// realNotifier lets waiters block until something changed.
type realNotifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// changed returns a channel closed at the next notify.
func (n *realNotifier) changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *realNotifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// realMsgs counts the chat messages with a body that a client receives,
// by message id.
type realMsgs struct {
	realNotifier
	mu  sync.Mutex
	ids map[string]int
}

func newRealMsgs() *realMsgs { return &realMsgs{ids: make(map[string]int)} }

func (m *realMsgs) HandleXMPP(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	if start.Name.Local != "message" {
		return nil
	}
	var msg struct {
		ID   string `xml:"id,attr"`
		Body string `xml:"body"`
	}
	if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r)).Decode(&msg); err != nil {
		return err
	}
	if msg.Body == "" || msg.ID == "" {
		return nil
	}
	m.mu.Lock()
	m.ids[msg.ID]++
	m.mu.Unlock()
	m.notify()
	return nil
}

func (m *realMsgs) count(id string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ids[id]
}

// realWait bounds each wait of the resume test, well below its overall
// deadline, so that a failure names the step that hung.
const realWait = 20 * time.Second

// waitFor waits (bounded by ctx and realWait) until message id has arrived
// at least once.
func (m *realMsgs) waitFor(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, realWait)
	defer cancel()
	for {
		ch := m.changed()
		if m.count(id) > 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("message %s never arrived: %w", id, ctx.Err())
		}
	}
}

// realEvents records a client's connection events in order.
type realEvents struct {
	realNotifier
	mu   sync.Mutex
	list []client.Event
}

func (e *realEvents) on(ev client.Event) {
	e.mu.Lock()
	e.list = append(e.list, ev)
	e.mu.Unlock()
	e.notify()
}

func (e *realEvents) all() []client.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]client.Event(nil), e.list...)
}

// wait returns the first event of kind (bounded by ctx and realWait).
func (e *realEvents) wait(ctx context.Context, kind client.EventKind) (client.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, realWait)
	defer cancel()
	for {
		ch := e.changed()
		for _, ev := range e.all() {
			if ev.Kind == kind {
				return ev, nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return client.Event{}, fmt.Errorf("no %s event (saw %v): %w", kind, kinds(e.all()), ctx.Err())
		}
	}
}

func kinds(evs []client.Event) []string {
	var out []string
	for _, ev := range evs {
		s := ev.Kind.String()
		if ev.Err != nil {
			s += fmt.Sprintf("(%v)", ev.Err)
		}
		out = append(out, s)
	}
	return out
}

func sameKinds(evs []client.Event, want []client.EventKind) bool {
	if len(evs) != len(want) {
		return false
	}
	for i, ev := range evs {
		if ev.Kind != want[i] {
			return false
		}
	}
	return true
}

func realChat(id string, to jid.JID, body string) xml.TokenReader {
	msg := stanza.Message{ID: id, To: to, Type: stanza.ChatMessage}
	return msg.Wrap(xmlstream.Wrap(xmlstream.Token(xml.CharData(body)), xml.StartElement{Name: xml.Name{Local: "body"}}))
}

// TestIntegrationResume kills alice's TCP connection (RST) with a message
// to bob in flight, against Prosody 13 and ejabberd 24.12. bob writes to
// alice while she is offline. alice must resume the XEP-0198 session inline
// in the SASL2 login, with her FAST token in one round trip (EventOffline,
// then EventResumed), and each message
// must arrive exactly once:
//   - lost: the message never reached the server (the network ate it); the
//     resumed h does not cover it and alice sends it again;
//   - unacked: the server received and delivered it but its <a/> never
//     reached alice; the resumed h covers it and it is not sent again.
//
// Duplicates are ruled out without waiting: after the counts, each side
// sends a fence message on the same stream; the server delivers in order, so
// a duplicate would have arrived before the fence.
func TestIntegrationResume(t *testing.T) {
	for _, peer := range realPeers {
		t.Run(peer.name, func(t *testing.T) {
			p := peer.start(t)
			for _, mode := range []string{"lost", "unacked"} {
				t.Run(mode, func(t *testing.T) {
					testResume(t, p, mode)
				})
			}
		})
	}
}

func testResume(t *testing.T, p realPeer, mode string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := func(user string) client.Config {
		return client.Config{
			JID: jid.MustParse(user + "@" + p.domain), Password: p.password(user),
			Addr: p.addr, TLS: client.TLSDirect, TLSConfig: p.tls,
		}
	}
	bobMsgs, aliceMsgs := newRealMsgs(), newRealMsgs()
	bcfg := base("bob")
	bcfg.Handler = bobMsgs
	bob, err := client.Dial(ctx, bcfg)
	if err != nil {
		t.Fatalf("bob: %v", err)
	}
	defer bob.Close()

	ev := &realEvents{}
	d := &realGateDialer{gate: make(chan struct{})}
	gateOpen := false
	defer func() {
		if !gateOpen {
			close(d.gate)
		}
	}()
	acfg := base("alice")
	acfg.CachePath = filepath.Join(t.TempDir(), "cache.db")
	acfg.Reconnect = true
	acfg.Backoff = client.Backoff{Min: 20 * time.Millisecond, Max: time.Second, MaxAttempts: 10}
	acfg.OnEvent = ev.on
	acfg.DialFunc = d.dial
	acfg.Handler = aliceMsgs
	acfg.Logger = realLogger(t)
	alice, err := client.Dial(ctx, acfg)
	if err != nil {
		t.Fatalf("alice: %v", err)
	}
	defer alice.Close()
	first := alice.Info()
	if !first.SM.Enabled || !first.SM.Resumable || first.SM.ID == "" {
		t.Fatalf("alice's SM: %+v; want enabled and resumable", first.SM)
	}
	select {
	case <-alice.Synced(): // nothing of alice's is in flight any more
	case <-ctx.Done():
		t.Fatal("alice's archive sync did not finish")
	}
	if err := pingServer(ctx, alice, p.domain); err != nil {
		t.Fatal(err)
	}

	conn := d.conn(0)
	tag := mode + "-" + first.JID.Resourcepart() // message ids unique per session
	inFlight := "a-in-flight-" + tag
	wantResent := 0
	switch mode {
	case "lost":
		conn.dropWrites.Store(true)
		wantResent = 1
	case "unacked":
		conn.dropReads.Store(true)
	}
	if err := alice.Send(ctx, realChat(inFlight, bob.Info().JID, "in flight at the kill")); err != nil {
		t.Fatalf("alice's Send before the kill: %v", err)
	}
	if mode == "unacked" {
		// Delivered by the server; its ack never reaches alice.
		if err := bobMsgs.waitFor(ctx, inFlight); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := ev.wait(ctx, client.EventOffline); err != nil {
		t.Fatal(err)
	}

	// While alice is offline (her reconnection waits at the gate), bob
	// writes to her session; the server queues it for the resumption.
	whileOff := "b-while-offline-" + tag
	if err := bob.Send(ctx, realChat(whileOff, first.JID, "sent while alice was offline")); err != nil {
		t.Fatal(err)
	}
	if err := pingServer(ctx, bob, p.domain); err != nil {
		t.Fatal(err)
	}
	close(d.gate)
	gateOpen = true

	resumed, err := ev.wait(ctx, client.EventResumed)
	if err != nil {
		t.Fatal(err)
	}
	wantKinds := []client.EventKind{client.EventOffline, client.EventConnecting, client.EventResumed}
	if got := ev.all(); !sameKinds(got, wantKinds) {
		t.Errorf("events %v; want offline, connecting, resumed", kinds(got))
	}
	info := resumed.Info
	if info == nil || !info.Resumed || !info.JID.Equal(first.JID) {
		t.Fatalf("resumed event: %+v; want a resumed session of %s", info, first.JID)
	}
	t.Logf("resumed %s: mechanism %s (FAST %v), %d round trips, h %d, re-sent %d",
		info.JID, info.Mechanism, info.FAST, info.RoundTrips, info.ResumedH, resumed.Resent)
	if info.RoundTrips != 1 || !info.FAST {
		// The cache holds the token the first login obtained: FAST and
		// <resume/> go in one pipelined <authenticate>.
		t.Errorf("resuming login: %d round trips, FAST %v; want 1 with the token", info.RoundTrips, info.FAST)
	}
	if resumed.Resent != wantResent {
		t.Errorf("re-sent %d stanzas after the resume; want %d", resumed.Resent, wantResent)
	}
	if a := alice.Info(); !a.Resumed {
		t.Errorf("alice.Info() after the resume: Resumed false")
	}

	if err := bobMsgs.waitFor(ctx, inFlight); err != nil {
		t.Fatal(err)
	}
	if err := aliceMsgs.waitFor(ctx, whileOff); err != nil {
		t.Fatal(err)
	}
	// Fences: any duplicate would precede them on the same stream.
	fenceA, fenceB := "a-fence-"+tag, "b-fence-"+tag
	if err := alice.Send(ctx, realChat(fenceA, bob.Info().JID, "fence")); err != nil {
		t.Fatal(err)
	}
	if err := bob.Send(ctx, realChat(fenceB, first.JID, "fence")); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(bobMsgs.waitFor(ctx, fenceA), aliceMsgs.waitFor(ctx, fenceB)); err != nil {
		t.Fatal(err)
	}
	if n := bobMsgs.count(inFlight); n != 1 {
		t.Errorf("bob received alice's in-flight message %d times; want exactly once", n)
	}
	if n := aliceMsgs.count(whileOff); n != 1 {
		t.Errorf("alice received bob's message %d times; want exactly once", n)
	}
	if err := pingServer(ctx, alice, p.domain); err != nil {
		t.Errorf("alice's resumed session: %v", err)
	}
	if got := ev.all(); !sameKinds(got, wantKinds) || d.count() != 2 {
		t.Errorf("after the resume: events %v, %d connections; want no further drop", kinds(got), d.count())
	}
}

var _ xmpp.Handler = (*realMsgs)(nil)
