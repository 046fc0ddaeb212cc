package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"mellium.im/xmpp/stream"

	"github.com/pipebind/pipebind/login"
	"github.com/pipebind/pipebind/sm"
	"github.com/pipebind/pipebind/wire"
)

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

// watch arranges for linkEnded to run once l, the current connection, has
// ended. The link starts the goroutine that handles the end only then
// (link.onEnded): an idle client costs one goroutine, the one reading its
// connection, not a second one waiting for it to end (a storm of idle
// bots holds thousands), nor the allocations of a context.AfterFunc. Call
// it after the events that announce l (EventOnline, EventResumed), so that
// EventOffline follows them.
func (c *Client) watch(l *link) {
	c.loop.Add(1)
	l.onEnded(func() {
		defer c.loop.Done()
		<-l.Done()
		c.linkEnded(l)
	})
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
	offline := Event{Kind: EventOffline, Err: cause}
	if errors.Is(cause, stream.Conflict) && !c.cfg.ReconnectOnConflict {
		// Another client has this resource: never fight it for ever.
		c.finish(fmt.Errorf("%w: %w", ErrConflict, cause), offline)
		return
	}
	if !c.cfg.Reconnect {
		// The drop stops the client: its cause is Err's even when OnEvent
		// calls Close on hearing of it.
		c.finish(cause, offline)
		return
	}
	c.ev.push(offline)
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
		c.ev.push(Event{Kind: EventConnecting, Attempt: attempt, Delay: d, Err: last})
		l, resent, err := c.connect(c.ctx, resume)
		if err == nil {
			kind := EventOnline
			if l.info.Resumed {
				kind = EventResumed
			}
			info := l.info
			c.ev.push(Event{Kind: kind, Attempt: attempt, Info: &info, Resent: resent})
			c.watch(l)
			if c.isClosed() {
				// Close ran while this login was under way and may
				// have closed the link before it (c.cur then): close
				// this one too (its linkEnded returns at once).
				l.stop()
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
	l.start(&c.wg, &c.ev)
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
		if l.ahead != nil {
			// Written in the login's write, after <enable/>: stanzas of
			// this session the server will acknowledge.
			for _, st := range l.ahead.stanzas {
				c.sm.Record(st.Raw, st.Kind)
			}
		}
	}
	if err := c.sm.Resend(l.conn, again); err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	return len(again), nil
}
