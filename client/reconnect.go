package client

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/login"
	"github.com/pipebind/pipebind/mamsync"
	"github.com/pipebind/pipebind/sm"
	"github.com/pipebind/pipebind/wire"
)

// EventKind says what happened to a client's connection.
type EventKind uint8

const (
	// EventConnecting: a reconnection attempt starts (Event.Attempt counts
	// them from 1 since the connection was lost).
	EventConnecting EventKind = iota + 1
	// EventOnline: a new session is bound (a fresh bind: counters reset,
	// the archive is reconciled again).
	EventOnline
	// EventResumed: the stream management session was resumed; Event.Resent
	// stanzas the server had not received were sent again.
	EventResumed
	// EventOffline: the connection was lost; Event.Err says why. With
	// Config.Reconnect, EventConnecting follows.
	EventOffline
	// EventClosed: the client has stopped for good: Close was called
	// (Event.Err is ErrClosed), reconnecting gave up, or an authentication
	// failure stopped it (Event.Err says which).
	EventClosed
)

// String returns the event's name: "connecting", "online", "resumed",
// "offline" or "closed".
func (k EventKind) String() string {
	switch k {
	case EventConnecting:
		return "connecting"
	case EventOnline:
		return "online"
	case EventResumed:
		return "resumed"
	case EventOffline:
		return "offline"
	case EventClosed:
		return "closed"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// MarshalText implements encoding.TextMarshaler.
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Event is a change of a client's connection, given to Config.OnEvent.
type Event struct {
	Kind EventKind
	// Attempt numbers reconnection attempts since the connection was lost
	// (EventConnecting, and the EventOnline/EventResumed that ends them).
	Attempt int
	// Delay is the backoff waited before this attempt (EventConnecting).
	Delay time.Duration
	// Err is the cause of EventOffline and EventClosed, and the failure of
	// the previous attempt on EventConnecting.
	Err error
	// Info describes the new session (EventOnline, EventResumed).
	Info *Info
	// Resent counts the stanzas sent again after a resume (or, after a
	// failed resume, the unacknowledged messages sent on the new session).
	Resent int
}

// Backoff bounds the waits between reconnection attempts. The zero value
// means: first attempt after a random delay below Min (so that thousands of
// clients dropped together do not return together), then waits that double
// from Min up to Max, each with equal jitter (between half and all of it).
type Backoff struct {
	// Min is the base delay; zero means 250 ms.
	Min time.Duration
	// Max caps the delay; zero means 30 s.
	Max time.Duration
	// MaxAttempts stops reconnecting after that many failed attempts in a
	// row (the client then closes with the last error); zero means no limit.
	MaxAttempts int
}

func (b Backoff) min() time.Duration {
	if b.Min > 0 {
		return b.Min
	}
	return 250 * time.Millisecond
}

func (b Backoff) max() time.Duration {
	if b.Max > 0 {
		return max(b.Max, b.min())
	}
	return 30 * time.Second
}

// Delay returns the wait before attempt n (from 1).
func (b Backoff) Delay(n int) time.Duration {
	lo := b.min()
	if n <= 1 {
		return rand.N(lo)
	}
	d := b.max()
	if n-2 < 32 && lo<<(n-2) < d && lo<<(n-2) > 0 {
		d = lo << (n - 2)
	}
	return d/2 + rand.N(d/2+1)
}

// permanent reports a login failure that reconnecting would only repeat:
// the server refused the credentials, or the login would be insecure
// (unverified certificate with PLAIN, a downgrade below the pin, a bad
// certificate).
func permanent(err error) bool {
	if errors.Is(err, ErrAuth) || errors.Is(err, ErrInsecure) {
		return true
	}
	var le *login.Error
	if errors.As(err, &le) && le.Step == login.StepTLS && errors.Is(err, ErrTLS) {
		return true
	}
	return false
}

// Client is a logged-in XMPP client. With Config.Reconnect it stays
// connected: a dropped connection is resumed (XEP-0198) or replaced, and
// Config.OnEvent hears about it. A Client is safe for concurrent use.
type Client struct {
	cfg   Config
	log   zerolog.Logger
	db    *cache.DB
	ownDB bool
	sm    sm.Session

	cacheFault error         // a cache file fault Dial worked around
	openTime   time.Duration // opening the cache file

	ctx    context.Context // lives until Close
	cancel context.CancelFunc
	loop   sync.WaitGroup // linkEnded calls: armed (watch) or running

	mu     sync.Mutex
	cur    *link         // the current (or last) connection
	online chan struct{} // closed while cur is up
	closed bool
	err    error // why the client stopped, once done is closed
	done   chan struct{}
	once   sync.Once

	closeDB sync.Once
}

// Session returns the current connection's mellium session, usable with
// mellium's packages. Its Serve loop is already running: do not call
// Serve. After a reconnection (EventOnline, EventResumed) it is a new
// session; while offline it is the last one, and writes to it fail.
func (c *Client) Session() *xmpp.Session { return c.link().sess }

// Info returns how the current connection logged in.
func (c *Client) Info() Info { return c.link().info }

// Done is closed when the client has stopped for good: after Close, when
// the connection ends without Config.Reconnect, or when reconnecting gives
// up.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the client stopped: nil while it runs (reconnecting
// included), ErrClosed after Close, otherwise the cause.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Synced is closed when the reconciliation after the current connection's
// login has finished (immediately when sync is off).
func (c *Client) Synced() <-chan struct{} { return c.link().Synced() }

// SyncReport waits for the reconciliation after the current connection's
// login (bounded by ctx) and returns its report.
func (c *Client) SyncReport(ctx context.Context) (mamsync.Report, error) {
	return c.link().SyncReport(ctx)
}

// Unreads returns the unread state per peer; see link.Unreads.
func (c *Client) Unreads(ctx context.Context) ([]cache.PeerState, error) {
	return c.link().Unreads(ctx)
}

// MarkDisplayed records that the user has seen the message with archive id
// stanzaID from peer (and everything before it). Markers only move forward.
// When the marker moved, it is published as a XEP-0490 displayed marker so
// the account's other devices see it; a server without PEP keeps it local.
func (c *Client) MarkDisplayed(ctx context.Context, peer jid.JID, stanzaID string) error {
	l, err := c.waitOnline(ctx)
	if err != nil {
		return err
	}
	return l.MarkDisplayed(ctx, peer, stanzaID)
}

// Send writes a stanza (or any element) given as a token stream on the
// current connection. While reconnecting it waits (bounded by ctx) for the
// client to be online again. ctx is checked before the write starts; a
// write already under way is not interrupted by ctx (a TLS connection does
// not survive an interrupted write), only by Close.
//
// With stream management, a stanza Send has written is kept until the
// server acknowledges it: if the connection drops first, it is sent again
// when the session resumes, so it is delivered once. If the session cannot
// be resumed, unacknowledged messages are sent again on the new session
// (at least once; receivers can deduplicate on the message id).
func (c *Client) Send(ctx context.Context, r xml.TokenReader) error {
	l, err := c.waitOnline(ctx)
	if err != nil {
		return err
	}
	if err := l.Send(ctx, r); err != nil {
		return err
	}
	if c.sm.NeedRequest() {
		// One <r/> at a time asks the server to acknowledge what is in
		// flight, so the unacked queue drains.
		if err := l.Send(context.WithoutCancel(ctx), sm.Request()); err != nil {
			return nil // the stanza itself was written; the drop is handled by the loop
		}
	}
	return nil
}

// Close ends the stream politely and stops reconnecting; see link.Close for
// the wait. It is idempotent and safe to call concurrently.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	l := c.cur
	c.mu.Unlock()
	c.cancel()
	if l != nil {
		_ = l.Close()
	}
	c.loop.Wait()
	c.finish(ErrClosed)
	c.closeDB.Do(func() {
		if c.ownDB && c.db != nil {
			c.db.Close()
		}
	})
	return nil
}

func (c *Client) link() *link {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// waitOnline returns the current connection once it is up.
func (c *Client) waitOnline(ctx context.Context) (*link, error) {
	for {
		c.mu.Lock()
		l, online, done := c.cur, c.online, c.done
		c.mu.Unlock()
		select {
		case <-online:
			return l, nil
		default:
		}
		select {
		case <-online:
			// loop: the current link may have changed
		case <-done:
			if err := c.Err(); err != nil {
				return nil, err
			}
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (c *Client) emit(e Event) {
	if c.cfg.OnEvent != nil {
		c.cfg.OnEvent(e)
	}
}

// finish stops the client for good with err (the first cause wins).
func (c *Client) finish(err error) {
	c.once.Do(func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		c.cancel()
		c.emit(Event{Kind: EventClosed, Err: err})
		close(c.done)
	})
}

// setOnline makes l the current connection.
func (c *Client) setOnline(l *link) {
	c.mu.Lock()
	c.cur = l
	close(c.online)
	c.mu.Unlock()
}

func (c *Client) setOffline() {
	c.mu.Lock()
	c.online = make(chan struct{})
	c.mu.Unlock()
}

// watch arranges for linkEnded to run once l, the current connection, has
// ended. It uses context.AfterFunc on the link's context (cancelled when
// the session ends, or by the link's Close), so the goroutine that handles
// the end starts only then: an idle client costs one goroutine, the one
// reading its connection, not a second one waiting for it to end (a
// storm of idle bots holds thousands). Call it after the events that
// announce l (EventOnline, EventResumed), so that EventOffline follows
// them.
func (c *Client) watch(l *link) {
	c.loop.Add(1)
	context.AfterFunc(l.ctx, func() {
		defer c.loop.Done()
		<-l.Done() // the context is cancelled just before
		c.linkEnded(l)
	})
}

// isClosed reports whether Close has been called.
func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// linkEnded handles the end of the connection l: unless the client is being
// closed, it reconnects (Config.Reconnect) or stops the client.
func (c *Client) linkEnded(l *link) {
	cause := l.Err()
	if c.isClosed() {
		return // Close: it finishes
	}
	c.setOffline()
	resume := c.sm.Dropped(l.conn.StanzasIn())
	_ = l.Close() // its goroutines (sync) end before the next login
	c.log.Info().Err(cause).Bool("resumable", resume != nil).Msg("connection lost")
	c.emit(Event{Kind: EventOffline, Err: cause})
	if !c.cfg.Reconnect {
		c.finish(cause)
		return
	}
	c.reconnect(resume)
}

// reconnect dials until a connection is up, or the client stops.
func (c *Client) reconnect(resume *login.Resume) {
	var last error
	for attempt := 1; ; attempt++ {
		if max := c.cfg.Backoff.MaxAttempts; max > 0 && attempt > max {
			c.finish(fmt.Errorf("client: gave up reconnecting after %d attempts: %w", max, last))
			return
		}
		d := c.cfg.Backoff.Delay(attempt)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return
		}
		c.emit(Event{Kind: EventConnecting, Attempt: attempt, Delay: d, Err: last})
		l, resent, err := c.connect(c.ctx, resume)
		if err == nil {
			kind := EventOnline
			if l.info.Resumed {
				kind = EventResumed
			}
			info := l.info
			c.emit(Event{Kind: kind, Attempt: attempt, Info: &info, Resent: resent})
			c.watch(l)
			if c.isClosed() {
				// Close ran while this login was under way and may
				// have closed the link before it (c.cur then): close
				// this one too (its linkEnded returns at once).
				_ = l.Close()
			}
			return
		}
		if c.ctx.Err() != nil {
			return
		}
		last = err
		c.log.Info().Err(err).Int("attempt", attempt).Msg("reconnect failed")
		if permanent(err) {
			c.finish(err)
			return
		}
	}
}

// connect logs in once (resuming when resume is set), re-sends what the
// server did not receive, and makes the new connection current. It returns
// how many stanzas were sent again.
func (c *Client) connect(ctx context.Context, resume *login.Resume) (*link, int, error) {
	l, err := c.dialLink(ctx, resume)
	if err != nil {
		return nil, 0, err
	}
	resent, err := c.afterLogin(l, resume != nil)
	if err != nil {
		l.Close()
		return nil, 0, err
	}
	l.start()
	l.noteCacheFault(c.cacheFault)
	c.setOnline(l)
	return l, resent, nil
}

// afterLogin brings stream management up to date with the new connection
// before anything else is written on it: after a resume, the stanzas the
// server did not receive go out first, in order; after a fresh bind, the
// counters restart and unacknowledged messages are sent again (presence and
// IQs belong to the lost session).
func (c *Client) afterLogin(l *link, resumeTried bool) (int, error) {
	var again []sm.Stanza
	if l.info.Resumed {
		var err error
		if again, err = c.sm.Resumed(l.info.ResumedH); err != nil {
			return 0, err
		}
	} else {
		if resumeTried {
			for _, st := range c.sm.Pending() {
				if st.Kind == wire.KindMessage {
					again = append(again, st)
				}
			}
		}
		c.sm.Reset(l.info.SM, l.info.JID)
	}
	if err := c.sm.Resend(l.conn, again); err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	return len(again), nil
}
