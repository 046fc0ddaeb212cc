package client_test

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
)

// Tests of the callback contract (issue 13, point 5): events reach OnEvent
// in order on one dispatcher goroutine, never during Dial; Close is safe
// from every callback and bounded; a Handler's error is reported, not fatal.
// A hang is a failure with a message (within), not a test-binary timeout.

// hangAfter bounds every wait of these tests: far above what a healthy
// client needs on a loaded machine, far below the test binary's timeout.
const hangAfter = 15 * time.Second

// within fails the test unless ch is closed within hangAfter.
func within(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	timer := time.NewTimer(hangAfter)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
		t.Fatalf("%s: still waiting after %v", what, hangAfter)
	}
}

// closeIn calls c.Close on a goroutine and returns a channel closed when it
// has returned.
func closeIn(c *client.Client) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Close()
	}()
	return done
}

// closeFrom calls Close from a callback, once, on the client Dial returned.
// Callbacks never run before Dial returns, but the test's goroutine hands
// the client over only after that: a callback that needs it waits for it.
type closeFrom struct {
	set      chan struct{}
	c        *client.Client
	once     sync.Once
	returned chan struct{} // closed when that Close has returned
}

func newCloseFrom() *closeFrom {
	return &closeFrom{set: make(chan struct{}), returned: make(chan struct{})}
}

// dialed hands c over to the callbacks.
func (r *closeFrom) dialed(c *client.Client) {
	r.c = c
	close(r.set)
}

// handedOver reports whether dialed has been called, without waiting.
func (r *closeFrom) handedOver() bool {
	select {
	case <-r.set:
		return true
	default:
		return false
	}
}

// client waits (bounded) for the client; nil if it never comes.
func (r *closeFrom) client() *client.Client {
	select {
	case <-r.set:
		return r.c
	case <-time.After(hangAfter):
		return nil
	}
}

// close is called from a callback: the first call closes the client.
func (r *closeFrom) close() {
	c := r.client()
	r.once.Do(func() {
		if c != nil {
			c.Close()
		}
		close(r.returned)
	})
}

// check waits for Close, called from the callback named where, to return
// and for Done, then checks Err: want, or with want nil the cause of a drop
// that stopped the client before Close was called.
func (r *closeFrom) check(t *testing.T, where string, want error) {
	t.Helper()
	within(t, r.returned, "Close called from "+where)
	within(t, r.c.Done(), "Done after Close from "+where)
	switch err := r.c.Err(); {
	case want != nil && !errors.Is(err, want):
		t.Errorf("Err() = %v, want %v", err, want)
	case want == nil && (err == nil || errors.Is(err, client.ErrClosed)):
		t.Errorf("Err() = %v, want the cause of the drop, which stopped the client before Close", err)
	}
}

// cleanupClose closes c when the test ends, without waiting for a Close that
// hangs (the test has failed then, and says why).
func cleanupClose(t *testing.T, c *client.Client) {
	t.Cleanup(func() {
		select {
		case <-closeIn(c):
		case <-time.After(hangAfter):
			t.Errorf("Close in cleanup still running after %v", hangAfter)
		}
	})
}

// dialBob logs bob in, until the test ends.
func dialBob(t *testing.T, ctx context.Context, s *xmpptest.Server) *client.Client {
	t.Helper()
	bob, err := client.Dial(ctx, testConfig(t, s, "bob", nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bob.Close() })
	return bob
}

var quickBackoff = client.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}

// TestCloseFromOnEvent: Close called from OnEvent returns, for each kind of
// event, with and without Reconnect; Done is then closed and Err says why
// the client stopped (the first cause wins).
func TestCloseFromOnEvent(t *testing.T) {
	for _, tc := range []struct {
		kind      client.EventKind
		reconnect bool
		noSM      bool // no resume: the reconnection binds afresh (EventOnline)
		authFails bool // the reconnection is refused: EventClosed with ErrAuth
		want      error
	}{
		{kind: client.EventOffline}, // want nil: the drop's cause
		{kind: client.EventClosed},
		{kind: client.EventOffline, reconnect: true, want: client.ErrClosed},
		{kind: client.EventConnecting, reconnect: true, want: client.ErrClosed},
		{kind: client.EventOnline, reconnect: true, noSM: true, want: client.ErrClosed},
		{kind: client.EventResumed, reconnect: true, want: client.ErrClosed},
		{kind: client.EventClosed, reconnect: true, authFails: true, want: client.ErrAuth},
	} {
		t.Run(fmt.Sprintf("%s reconnect=%t", tc.kind, tc.reconnect), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), hangAfter)
			defer cancel()
			s := newTestServer(t, xmpptest.Config{})
			cf := newCloseFrom()
			cfg := testConfig(t, s, "alice", nil)
			cfg.NoSync, cfg.NoSM, cfg.Reconnect, cfg.Backoff = true, tc.noSM, tc.reconnect, quickBackoff
			cfg.OnEvent = func(e client.Event) {
				// Before the hand-over: the base code's EventOnline in Dial.
				if e.Kind == tc.kind && cf.handedOver() {
					cf.close()
				}
			}
			c, err := client.Dial(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			cf.dialed(c)
			cleanupClose(t, c)
			if tc.authFails {
				s.AddUser("alice", "changed-elsewhere")
			}
			s.CutConnection(aliceServerConn(t, s, c.Info().JID.String()))
			cf.check(t, fmt.Sprintf("OnEvent(%s)", tc.kind), tc.want)
		})
	}
}

// TestCloseFromHandler: Close called from the Handler (on the connection's
// goroutine) returns, also after the Handler has written on the stream
// (it then holds the session's writer, which the polite goodbye needs).
func TestCloseFromHandler(t *testing.T) {
	for _, reconnect := range []bool{false, true} {
		for _, reply := range []bool{false, true} {
			t.Run(fmt.Sprintf("reconnect=%t reply=%t", reconnect, reply), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), hangAfter)
				defer cancel()
				s := newTestServer(t, xmpptest.Config{})
				cf := newCloseFrom()
				cfg := testConfig(t, s, "alice", nil)
				cfg.NoSync, cfg.Reconnect, cfg.Backoff = true, reconnect, quickBackoff
				cfg.Handler = xmpp.HandlerFunc(func(rw xmlstream.TokenReadEncoder, start *xml.StartElement) error {
					if start.Name.Local != "message" {
						return nil
					}
					if reply {
						msg := stanza.Message{To: jid.MustParse("bob@" + s.Domain()), Type: stanza.ChatMessage}
						if _, err := xmlstream.Copy(rw, msg.Wrap(nil)); err != nil {
							return err
						}
					}
					cf.close()
					return nil
				})
				alice, err := client.Dial(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				cf.dialed(alice)
				cleanupClose(t, alice)
				bob := dialBob(t, ctx, s)
				if err := sendMsg(ctx, bob, alice.Info().JID.String(), "m1", "close, please"); err != nil {
					t.Fatal(err)
				}
				cf.check(t, "the Handler", client.ErrClosed)
			})
		}
	}
}

// TestCloseFromOnMessage: Close called from OnMessage returns, whether the
// message came from the archive (the reconciliation's goroutines) or live
// (the connection's goroutine).
func TestCloseFromOnMessage(t *testing.T) {
	for _, live := range []bool{false, true} {
		t.Run(fmt.Sprintf("live=%t", live), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), hangAfter)
			defer cancel()
			s := newTestServer(t, xmpptest.Config{})
			if !live {
				for i := range 5 {
					s.InjectArchive("alice", "bob@"+s.Domain(), fmt.Sprint("archived ", i), true)
				}
			}
			cf := newCloseFrom()
			cfg := testConfig(t, s, "alice", openCache(t))
			cfg.OnMessage = func(cache.StoredMessage) { cf.close() }
			alice, err := client.Dial(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			cf.dialed(alice)
			cleanupClose(t, alice)
			if live {
				within(t, alice.Synced(), "the reconciliation")
				bob := dialBob(t, ctx, s)
				if err := sendMsg(ctx, bob, "alice@"+s.Domain(), "live1", "live"); err != nil {
					t.Fatal(err)
				}
			}
			cf.check(t, "OnMessage", client.ErrClosed)
		})
	}
}

// TestCloseConcurrent: Close called from many goroutines at once returns in
// each of them without waiting for the application's callbacks (here an
// OnEvent that holds EventClosed until the test lets it go, and then calls
// Close once more itself); Done is closed once that callback has returned.
func TestCloseConcurrent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangAfter)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	release := make(chan struct{})
	gotClosed := make(chan struct{})
	cf := newCloseFrom()
	cfg := testConfig(t, s, "alice", nil)
	cfg.NoSync, cfg.Reconnect = true, true
	cfg.OnEvent = func(e client.Event) {
		if e.Kind != client.EventClosed {
			return
		}
		close(gotClosed)
		<-release
		cf.close()
	}
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cf.dialed(c)
	const n = 16
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			c.Close()
		})
	}
	allReturned := make(chan struct{})
	go func() {
		wg.Wait()
		close(allReturned)
	}()
	close(start)
	within(t, allReturned, fmt.Sprintf("%d concurrent Close calls while OnEvent(closed) runs", n))
	close(release) // (a failure above leaves the client behind: goleak says so)
	within(t, gotClosed, "EventClosed")
	cf.check(t, "OnEvent(closed)", client.ErrClosed) // Done once it has returned
	within(t, closeIn(c), "Close after Done")
}

// TestDialCallbackOrder: OnEvent is not called during Dial (the first
// connection is Dial's result, not an event), and the events that follow
// come in order: offline, connecting, resumed, then closed, the last.
func TestDialCallbackOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangAfter)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	var dialed atomic.Bool
	type seen struct {
		kind        client.EventKind
		afterReturn bool
	}
	ch := make(chan seen, 16)
	cfg := testConfig(t, s, "alice", nil)
	cfg.NoSync, cfg.Reconnect, cfg.Backoff = true, true, quickBackoff
	cfg.OnEvent = func(e client.Event) { ch <- seen{e.Kind, dialed.Load()} }
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	dialed.Store(true)
	cleanupClose(t, c)
	s.CutConnection(aliceServerConn(t, s, c.Info().JID.String()))
	var got []client.EventKind
	next := func() client.EventKind {
		t.Helper()
		select {
		case e := <-ch:
			if !e.afterReturn {
				t.Errorf("OnEvent(%s) was called before Dial returned", e.kind)
			}
			got = append(got, e.kind)
			return e.kind
		case <-time.After(hangAfter):
			t.Fatalf("no event after %v; so far %v", hangAfter, got)
			return 0
		}
	}
	for next() != client.EventResumed {
	}
	within(t, closeIn(c), "Close")
	within(t, c.Done(), "Done")
	next() // delivered before Done was closed
	want := []client.EventKind{client.EventOffline, client.EventConnecting, client.EventResumed, client.EventClosed}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events %v, want %v", got, want)
	}
	select {
	case e := <-ch:
		t.Errorf("OnEvent(%s) after EventClosed", e.kind)
	default:
	}
}

// TestSlowOnEventDoesNotStall: an OnEvent that blocks holds up neither the
// reconnect loop nor the connection's read loop: the client resumes and
// receives messages while the application still sits on EventOffline.
func TestSlowOnEventDoesNotStall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangAfter)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	release := make(chan struct{})
	msgs := newMsgCounter()
	cfg := testConfig(t, s, "alice", nil)
	cfg.NoSync, cfg.Reconnect, cfg.Backoff, cfg.Handler = true, true, quickBackoff, msgs
	cfg.OnEvent = func(e client.Event) {
		if e.Kind == client.EventOffline {
			<-release
		}
	}
	alice, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cleanupClose(t, alice)
	bob := dialBob(t, ctx, s)
	first := aliceServerConn(t, s, alice.Info().JID.String())
	s.CutConnection(first)
	<-first.Done()
	// The server holds what bob sends until alice's session is resumed.
	if err := sendMsg(ctx, bob, alice.Info().JID.String(), "while-blocked", "hello"); err != nil {
		t.Fatal(err)
	}
	msgs.waitFor(t, "while-blocked")
	close(release)
	within(t, closeIn(alice), "Close")
	within(t, alice.Done(), "Done")
}

// TestHandlerError: an error the Handler returns is reported to OnEvent as
// EventError and the session goes on; an error reading the stream (here a
// stanza that is not well-formed) ends the connection as any read error
// does, and is not reported as a Handler error.
func TestHandlerError(t *testing.T) {
	errApp := errors.New("the application could not handle this one")
	t.Run("application error", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), hangAfter)
		defer cancel()
		s := newTestServer(t, xmpptest.Config{})
		ev := make(events, 16)
		msgs := newMsgCounter()
		cfg := testConfig(t, s, "alice", nil)
		cfg.NoSync, cfg.OnEvent = true, ev.on
		cfg.Handler = xmpp.HandlerFunc(func(rw xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			for _, a := range start.Attr {
				if a.Name.Local == "id" && a.Value == "bad" {
					return errApp
				}
			}
			return msgs.HandleXMPP(rw, start)
		})
		alice, err := client.Dial(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer alice.Close()
		bob := dialBob(t, ctx, s)
		to := alice.Info().JID.String()
		if err := sendMsg(ctx, bob, to, "bad", "refused"); err != nil {
			t.Fatal(err)
		}
		if got := ev.wait(t, client.EventError); !errors.Is(got.Err, errApp) {
			t.Fatalf("EventError carries %v, want the Handler's error", got.Err)
		}
		if err := sendMsg(ctx, bob, to, "good", "accepted"); err != nil {
			t.Fatal(err)
		}
		msgs.waitFor(t, "good")
		select {
		case <-alice.Done():
			t.Fatalf("the client stopped: %v", alice.Err())
		default:
		}
		if err := pingServer(ctx, alice, s.Domain()); err != nil {
			t.Fatalf("the session did not go on: %v", err)
		}
	})
	t.Run("read error", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), hangAfter)
		defer cancel()
		s := newTestServer(t, xmpptest.Config{})
		ev := make(events, 16)
		cfg := testConfig(t, s, "alice", nil)
		cfg.NoSync, cfg.OnEvent = true, ev.on
		cfg.Handler = xmpp.HandlerFunc(func(rw xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			for {
				if _, err := rw.Token(); err == io.EOF {
					return nil
				} else if err != nil {
					return err // the stream's error, as is
				}
			}
		})
		alice, err := client.Dial(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer alice.Close()
		sc := aliceServerConn(t, s, alice.Info().JID.String())
		if !s.WriteRaw(sc, "<message xmlns='jabber:client' id='broken'><body>not well-formed</bdy></message>") {
			t.Fatal("the server connection has ended")
		}
		// Everything OnEvent hears, up to EventClosed.
		var got []client.Event
		for len(got) == 0 || got[len(got)-1].Kind != client.EventClosed {
			select {
			case e := <-ev:
				got = append(got, e)
			case <-time.After(hangAfter):
				t.Fatalf("no EventClosed after %v; events %v", hangAfter, got)
			}
		}
		within(t, alice.Done(), "Done")
		if len(got) != 2 || got[0].Kind != client.EventOffline {
			t.Fatalf("events %v, want offline then closed (a read error is not a Handler error)", got)
		}
		var syntax *xml.SyntaxError
		if !errors.As(got[0].Err, &syntax) {
			t.Errorf("offline because of %v, want the XML syntax error", got[0].Err)
		}
	})
}
