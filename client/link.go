package client

import (
	"context"
	"encoding/xml"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/stanza"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/login"
	"github.com/pipebind/pipebind/mamsync"
	"github.com/pipebind/pipebind/sm"
	"github.com/pipebind/pipebind/wire"
)

// link is one connection of a Client: a logged-in session, served on a
// goroutine that start launches and stop ends, with the reconciliation
// that follows its login.
type link struct {
	sess *xmpp.Session
	conn *wire.Conn // the stream layer under sess
	info Info
	log  zerolog.Logger
	db   *cache.DB // the message cache, nil without one
	cfg  *Config   // the Client's, read only
	sm   *sm.Session

	closeTimeout time.Duration

	started   atomic.Bool
	done      chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	err       error
	closed    bool
	served    bool        // the serve goroutine has ended
	onEnd     func()      // started on a goroutine once the session has ended
	dead      error       // why a liveness check closed the connection
	live      *liveness   // nil without checks
	kill      *time.Timer // closes the connection CloseTimeout after stop

	// ctx lives until Close; background work (sync) stops with it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     *sync.WaitGroup // the Client's: every goroutine of its links
	ev     *dispatcher     // the Client's: its callbacks
	syncer *mamsync.Syncer
	// ahead is what the login wrote behind its authentication and the
	// server accepted (nil when none); stale the ids of what rode with an
	// attempt the server refused.
	ahead     *ahead
	aheadQ    *mamsync.AheadQuery
	mdsAnswer chan []byte
	stale     map[string]bool
	// dialStart is when the login began; ready how long until the store
	// was level (zero until then).
	dialStart time.Time
	ready     time.Duration
	syncDone  chan struct{}
	syncRep   mamsync.Report
	syncErr   error
}

func newLink(cfg *Config, st *login.Stream, info Info, db *cache.DB, sess *sm.Session, log zerolog.Logger) *link {
	c := &link{
		sess:         st.Session,
		conn:         st.Conn,
		info:         info,
		log:          log,
		cfg:          cfg,
		sm:           sess,
		db:           db,
		closeTimeout: cfg.closeTimeout(),
		done:         make(chan struct{}),
		mdsAnswer:    make(chan []byte, 1),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// start sends the initial presence, starts serving the session and runs
// the reconciliation. Nothing may be written on the session before. Its
// goroutines are counted in wg; the application's callbacks run through ev.
func (c *link) start(wg *sync.WaitGroup, ev *dispatcher) {
	c.wg, c.ev = wg, ev
	c.started.Store(true)
	cfg, sess, info := c.cfg, c.sess, c.info
	// A resumed session still has its presence.
	presence := info.Resumed || c.ahead != nil && c.ahead.presence
	if !cfg.NoPresence && !presence {
		// Before the archive is asked where it stands: every message
		// archived after that answer is then routed to this session.
		presence = sess.Send(c.ctx, stanza.Presence{}.Wrap(nil)) == nil
	}
	if c.db != nil && !cfg.NoSync {
		conn := c.conn
		c.syncer = mamsync.New(mamsync.Config{
			Account:  info.JID.Bare(),
			Store:    c.db,
			PageSize: cfg.SyncPageSize,
			// A page the server does not answer fails the sync
			// (ErrTimeout); liveness finds the link meanwhile.
			QueryTimeout: cfg.requestTimeout(),
			OnMessage:    guard(ev, cfg.OnMessage, true), // stored: announced even if Close comes
			OnProgress:   guard(ev, cfg.OnSyncProgress, false),
			SentMessages: func() uint32 {
				_, m := conn.StanzasOut()
				return m
			},
			LiveComplete: presence || info.Draft != nil,
			Logger:       cfg.Logger,
		})
		// Every top-level message is shown to the syncer as it comes off
		// the wire, before the session decodes it: MAM results (the bulk of
		// a catch-up) end there; everything else reaches the handler,
		// decoded once.
		c.conn.SetInboundTap(c.syncer.HandleRaw)
		if c.ahead != nil {
			// The first page was asked in the login's write: its results
			// follow on the stream.
			c.aheadQ = c.syncer.Adopt(c.ahead.mam)
		}
	}
	var h xmpp.Handler = xmpp.HandlerFunc(func(xmlstream.TokenReadEncoder, *xml.StartElement) error { return nil })
	if cfg.Handler != nil {
		h = appHandler{d: ev, next: cfg.Handler}
	}
	c.live = newLiveness(c)
	sh := c.sm.Handler(c.conn, pingHandler{next: aheadHandler{c: c, next: h}}, c.log)
	wg.Add(1)
	go func() {
		defer wg.Done()
		// An idle session waits for its first input here rather than under
		// the decoder, in a small frame, so that its goroutine's stack
		// shrinks (see wire.Conn.WaitInput).
		c.conn.WaitInput()
		c.serve(sh)
	}()
	c.live.start()
	c.startSync(c.db)
}

func (c *link) serve(h xmpp.Handler) {
	err := c.sess.Serve(h)
	c.live.stop()
	c.mu.Lock()
	err = c.endCauseLocked(err)
	c.err = err
	c.served = true
	kill := c.kill
	c.mu.Unlock()
	if kill != nil && kill.Stop() {
		c.wg.Done() // the timer's share: it will not run
	}
	// Background work (sync) that waits on the session must not outlive it.
	c.cancel()
	c.conn.Close()
	if err != ErrClosed {
		c.log.Debug().Err(err).Msg("session ended")
	}
	close(c.done)
	c.mu.Lock()
	f := c.onEnd
	c.mu.Unlock()
	if f != nil {
		go f()
	}
}

// onEnded starts f on a goroutine of its own once the session has ended
// (at once if it has). Call it once, after start.
func (c *link) onEnded(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.served {
		go f()
		return
	}
	c.onEnd = f
}

// Done is closed when the session has ended (Close, server, or network).
func (c *link) Done() <-chan struct{} { return c.done }

// Err returns why the session ended: nil while it runs, ErrClosed after
// Close, otherwise the cause.
func (c *link) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// stop starts ending the connection and returns: it sends
// </stream:stream>, lets the server end its own stream within
// Config.CloseTimeout, then closes the connection. It is idempotent and
// safe to call concurrently, from any goroutine; a link that was never
// started is just closed.
func (c *link) stop() {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.closed = true
		c.cancel()
		if !c.started.Load() || c.served {
			c.conn.Close()
			return
		}
		// mellium's SetCloseDeadline races with Serve; a deadline on the
		// connection bounds the wait for the server's </stream:stream> the
		// same way, and any write under way.
		_ = c.conn.SetDeadline(time.Now().Add(c.closeTimeout))
		// The goodbye needs the session's writer, which a Handler that
		// has written holds until it returns (and it may be the one
		// calling Close): it gets a goroutine of its own.
		c.wg.Add(2)
		go func() {
			defer c.wg.Done()
			_ = c.sess.Close()
		}()
		// The deadline does not reach a serve goroutine that is inside a
		// Handler: the connection is closed when the time is up anyway.
		c.kill = time.AfterFunc(c.closeTimeout, func() {
			defer c.wg.Done()
			c.conn.Close()
		})
	})
}

// Close stops the link and waits for its goroutines (those of the Client's
// other links too, which have ended before a link is replaced).
func (c *link) Close() error {
	c.stop()
	if c.started.Load() {
		<-c.done
		c.wg.Wait()
	}
	return nil
}

// Send writes a stanza (or any element) given as a token stream. ctx is
// checked before the write starts; a write already under way is not
// interrupted by ctx (a TLS connection does not survive an interrupted
// write), only by Close.
func (c *link) Send(ctx context.Context, r xml.TokenReader) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.sess.Send(context.WithoutCancel(ctx), r); err != nil {
		// A write the link's end cut short says why it ended.
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.endCauseLocked(err)
	}
	return nil
}

// endCauseLocked is why the link ended, given err, the failure of its
// session's read or of a write: ErrClosed after Close, the liveness
// check's *DropError when it closed the connection, else err classified by
// sessionEnd (a lost connection is a *DropError). c.mu is held.
func (c *link) endCauseLocked(err error) error {
	switch {
	case c.closed:
		return ErrClosed
	case c.dead != nil:
		return c.dead
	}
	return sessionEnd(err)
}

// infoNow is the link's Info with what was learned since the login (the
// time to ready).
func (c *link) infoNow() Info {
	c.mu.Lock()
	defer c.mu.Unlock()
	info := c.info
	info.Timings.Ready = c.ready
	return info
}
