package client_test

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// eventsTo returns an OnEvent that sends every event to a channel.
func eventsTo(n int) (chan client.Event, func(client.Event)) {
	ch := make(chan client.Event, n)
	return ch, func(e client.Event) {
		select {
		case ch <- e:
		default:
		}
	}
}

// waitEvent waits for an event of kind, failing after d.
func waitEvent(t *testing.T, ch chan client.Event, kind client.EventKind, d time.Duration) client.Event {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case e := <-ch:
			if e.Kind == kind {
				return e
			}
		case <-timer.C:
			t.Fatalf("no %v event within %v", kind, d)
		}
	}
}

// TestDeadLinkFound (issue 14): a server that stops answering without
// closing the connection is found within KeepAlive.Idle+Timeout of its last
// byte, by an <r/> with stream management and by a ping without; the drop
// is typed (ErrDeadLink, ErrTimeout, ErrConnection, safe to retry), and with
// Reconnect the client is back without the application doing anything.
func TestDeadLinkFound(t *testing.T) {
	const idle, timeout = 300 * time.Millisecond, 300 * time.Millisecond
	for _, noSM := range []bool{false, true} {
		name := "sm"
		if noSM {
			name = "ping"
		}
		t.Run(name, func(t *testing.T) {
			s := newTestServer(t, xmpptest.Config{})
			events, onEvent := eventsTo(64)
			cfg := testConfig(t, s, "alice", openCache(t))
			cfg.NoSM, cfg.NoSync = noSM, true
			cfg.KeepAlive = client.KeepAlive{Idle: idle, Timeout: timeout}
			cfg.Reconnect, cfg.Backoff = true, client.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}
			cfg.OnEvent = onEvent
			c, err := client.Dial(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if !s.StallConnection(lastConn(t, s)) {
				t.Fatal("no connection to stall")
			}
			stalled := time.Now()
			off := waitEvent(t, events, client.EventOffline, 10*(idle+timeout))
			found := time.Since(stalled)
			if !errors.Is(off.Err, client.ErrDeadLink) || !errors.Is(off.Err, client.ErrTimeout) ||
				!errors.Is(off.Err, client.ErrConnection) || !client.SafeToRetry(off.Err) {
				t.Fatalf("offline with %v, want a dead link (timeout, connection, safe to retry)", off.Err)
			}
			// Found within Idle+Timeout of the last byte (the stall came
			// after it), with slack for a loaded machine.
			if found > idle+timeout+time.Second {
				t.Errorf("the dead link was found %v after the stall, want within %v", found, idle+timeout)
			}
			back := client.EventOnline
			if !noSM {
				back = client.EventResumed
			}
			waitEvent(t, events, back, 10*time.Second)
			t.Logf("dead link found after %v; back: %v", found.Round(time.Millisecond), back)
		})
	}
}

// TestLivenessQuietLink: on an idle link whose server answers, the client
// probes after each silence and stays online.
func TestLivenessQuietLink(t *testing.T) {
	s := newTestServer(t, xmpptest.Config{})
	events, onEvent := eventsTo(16)
	probes := make(chan struct{}, 16)
	cfg := testConfig(t, s, "alice", nil)
	cfg.NoSync = true
	cfg.KeepAlive = client.KeepAlive{Idle: 100 * time.Millisecond, Timeout: 2 * time.Second}
	cfg.OnEvent = onEvent
	cfg.WireTrace = func(in bool, el []byte) {
		if !in && strings.HasPrefix(string(el), "<r ") {
			probes <- struct{}{}
		}
	}
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		select {
		case <-probes:
		case e := <-events:
			t.Fatalf("event %v (%v) on a live link", e.Kind, e.Err)
		case <-time.After(10 * time.Second):
			t.Fatalf("probe %d not sent", i)
		}
	}
	select {
	case e := <-events:
		t.Fatalf("event %v (%v) on a live link", e.Kind, e.Err)
	default:
	}
}

// TestServerPingAnswered: the client answers the server's XEP-0199 ping
// with a result, also when the application has no Handler.
func TestServerPingAnswered(t *testing.T) {
	s := newTestServer(t, xmpptest.Config{})
	cfg := testConfig(t, s, "alice", nil)
	cfg.NoSync = true
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.PingClient(ctx, c.Info().JID.String()); err != nil {
		t.Fatalf("ping: %v", err)
	}
}

// TestSlowServerNotDead: a server that works through a burst of stanzas
// more slowly than KeepAlive allows for silence (ejabberd 24.12 with its
// Mnesia archive, on a loaded machine) is not a dead link: the client asks
// for acknowledgements along the burst (sm.RequestEvery), and the server's
// answers as it gets through the backlog keep the link alive. (With one
// <r/> at the head of the burst, the server said nothing until the end and
// the client dropped a healthy connection.)
func TestSlowServerNotDead(t *testing.T) {
	const burst, cost = 200, 5 * time.Millisecond // a second of server work
	s := newTestServer(t, xmpptest.Config{StanzaCost: cost})
	c, events := dialKeepAlive(t, s, 250*time.Millisecond, 250*time.Millisecond)
	for i := range burst {
		if err := sendChat(c, "bob@localhost", fmt.Sprintf("message %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	flushQuietly(t, c, events)
}

// dialKeepAlive logs alice in to s with liveness checks after idle,
// answered within timeout; the client's events go to the channel.
func dialKeepAlive(t *testing.T, s *xmpptest.Server, idle, timeout time.Duration) (*client.Client, chan client.Event) {
	t.Helper()
	events, onEvent := eventsTo(64)
	cfg := testConfig(t, s, "alice", nil)
	cfg.KeepAlive = client.KeepAlive{Idle: idle, Timeout: timeout}
	cfg.OnEvent = onEvent
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, events
}

// flushQuietly asserts that the server acknowledges all c has sent and
// that the connection had no event meanwhile (no drop, no reconnection).
func flushQuietly(t *testing.T, c *client.Client, events chan client.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	select {
	case e := <-events:
		t.Fatalf("event %v (%v) while the server was slow but live", e.Kind, e.Err)
	default:
	}
}

// TestBusyServerNotDead: a server that reads nothing for longer than the
// liveness bound (its receive window closed, as ejabberd's is while its
// archive writes a burst) but keeps writing is alive: neither the liveness
// check nor the kernel may fail the connection under it (TCP_USER_TIMEOUT
// set to the bound counts a closed window against it, although the server
// acknowledges every window probe).
func TestBusyServerNotDead(t *testing.T) {
	// The pause is twice the bound; the bound leaves room for the server's
	// work on 16 stanzas between two acks once it reads again (tens of ms
	// each under the race detector on a loaded machine).
	const idle, timeout, pause = time.Second, time.Second, 4 * time.Second
	s := newTestServer(t, xmpptest.Config{})
	c, events := dialKeepAlive(t, s, idle, timeout)
	if !s.PauseReading(lastConn(t, s), pause) {
		t.Fatal("no connection to pause")
	}
	// More than the socket buffers hold: the writes wait for the window.
	body := strings.Repeat("x", 8<<10)
	for i := range 400 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := c.Send(ctx, chatMessage("bob@localhost", fmt.Sprint(i, body)))
		cancel()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	flushQuietly(t, c, events)
}

// TestSendDropTyped: a Send whose write the connection's end cuts short
// says it is a drop (ErrConnection), as the session's end does, not the
// socket's bare error.
func TestSendDropTyped(t *testing.T) {
	s := newTestServer(t, xmpptest.Config{})
	c, err := client.Dial(context.Background(), testConfig(t, s, "alice", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := lastConn(t, s)
	if !s.PauseReading(conn, time.Minute) {
		t.Fatal("no connection to pause")
	}
	// The server reads nothing: after a few MB the writes wait, and the
	// connection is cut under them.
	body := strings.Repeat("x", 32<<10)
	errs := make(chan error, 1)
	sent := make(chan int, 1000)
	go func() {
		for i := range 1000 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err := c.Send(ctx, chatMessage("bob@localhost", fmt.Sprint(i, body)))
			cancel()
			if err != nil {
				errs <- err
				return
			}
			sent <- i
		}
		errs <- nil
	}()
	for i := range sent {
		if i == 100 {
			break
		}
	}
	s.CutConnection(conn)
	err = <-errs
	if !errors.Is(err, client.ErrConnection) {
		t.Fatalf("Send when the connection is cut: %v (%T), want ErrConnection", err, err)
	}
}

// TestRequestEndsWithConnection: a request waiting for its answer when the
// connection dies returns then, with an *UnansweredError that says why
// (here a dead link) and is not safe to retry blindly; it does not wait
// for its context (mellium's SendIQ alone would).
func TestRequestEndsWithConnection(t *testing.T) {
	const idle, timeout = 200 * time.Millisecond, 200 * time.Millisecond
	for _, req := range []string{"Flush", "SendIQ"} {
		t.Run(req, func(t *testing.T) {
			s := newTestServer(t, xmpptest.Config{})
			c, _ := dialKeepAlive(t, s, idle, timeout)
			if !s.StallConnection(lastConn(t, s)) {
				t.Fatal("no connection to stall")
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := time.Now()
			var err error
			if req == "Flush" {
				err = c.Flush(ctx)
			} else {
				var resp io.Closer
				resp, err = c.SendIQ(ctx, stanza.IQ{Type: stanza.GetIQ, To: jid.MustParse("localhost")}.Wrap(
					xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "urn:xmpp:ping", Local: "ping"}})))
				if err == nil {
					resp.Close()
				}
			}
			var ue *client.UnansweredError
			if !errors.As(err, &ue) || !errors.Is(err, client.ErrDeadLink) || !errors.Is(err, client.ErrConnection) || client.SafeToRetry(err) {
				t.Fatalf("%s on a link that died: %v, want an *UnansweredError for a dead link, not safe to retry", req, err)
			}
			if ctx.Err() != nil {
				t.Fatalf("%s returned at its context's deadline (%v), not when the link died", req, time.Since(start))
			}
		})
	}
}

// TestSendIQTimeout: SendIQ is bounded by Config.RequestTimeout, with an
// error matching ErrTimeout and context.DeadlineExceeded.
func TestSendIQTimeout(t *testing.T) {
	s := newTestServer(t, xmpptest.Config{})
	cfg := testConfig(t, s, "alice", nil)
	cfg.RequestTimeout = 200 * time.Millisecond
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The server stops answering; the liveness check (20 s by default)
	// does not come into it.
	if !s.StallConnection(lastConn(t, s)) {
		t.Fatal("no connection to stall")
	}
	_, err = c.SendIQ(context.Background(), stanza.IQ{Type: stanza.GetIQ, To: jid.MustParse("localhost")}.Wrap(
		xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "urn:xmpp:ping", Local: "ping"}})))
	if !errors.Is(err, client.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SendIQ unanswered past RequestTimeout: %v, want ErrTimeout", err)
	}
}
