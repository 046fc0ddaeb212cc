package client

import (
	"context"
	"encoding/xml"
	"errors"
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

// ErrClosed is returned by Err after Close.
var ErrClosed = errors.New("client: closed")

// Sentinel errors of a failed Dial, for errors.Is; they are login's.
var (
	ErrAuth       = login.ErrAuth
	ErrRefused    = login.ErrRefused
	ErrProtocol   = login.ErrProtocol
	ErrTLS        = login.ErrTLS
	ErrTimeout    = login.ErrTimeout
	ErrConnection = login.ErrConnection
	ErrInsecure   = login.ErrInsecure
)

// Info describes how a client logged in.
type Info struct {
	login.Result
	// Addr is the address connected to.
	Addr string
	// DirectTLS reports Direct TLS (XEP-0368); false means STARTTLS.
	DirectTLS bool
	// TLSVersion is the negotiated TLS version, e.g. "TLS 1.3".
	TLSVersion string
	// StartTLSRoundTrips counts the round trips before TLS (STARTTLS only).
	StartTLSRoundTrips int
	// ScramKeysCached reports that SCRAM used cached keys (no PBKDF2).
	ScramKeysCached bool
	// Attempts counts the login's attempts, each on a new connection: 1,
	// plus one when the first attempt failed because the server refused
	// the pipelined login (stream error policy-violation or
	// unsupported-stanza-type) or the cached features were stale, plus one
	// (once) when the server refused the cached FAST token and closed the
	// stream before the password could follow. So at most 3: a refused
	// pipelining or a stale cache, then a refused token.
	Attempts int
	// CacheFault, when not nil, is the *CacheError of a faulty cache file
	// that this login worked around (moved aside, used read-only, or done
	// without); see cachefault.go.
	CacheFault error `json:"-"`
	// Timings of the login's phases.
	Timings Timings
}

// Timings are the durations of the login's phases.
type Timings struct {
	// Cache: opening (on a Client's first login) and reading the cache
	// (features, installation id, FAST token, mechanism pin). The reads run
	// on a goroutine alongside Lookup, Connect and TLS, so Cache may
	// overlap them: only CacheWait, the part the login spent waiting for
	// the cache (with the file's opening), is on its critical path.
	Cache     time.Duration
	CacheWait time.Duration
	Lookup    time.Duration // SRV lookup
	Connect   time.Duration // TCP connect
	StartTLS  time.Duration // STARTTLS exchange (zero with Direct TLS)
	TLS       time.Duration // TLS handshake
	Login     time.Duration // from the first byte after TLS to bound
	Total     time.Duration // the whole Dial
}

// link is one connection of a Client: a logged-in session, served on a
// goroutine that start launches and Close stops, with the reconciliation
// that follows its login.
type link struct {
	sess *xmpp.Session
	conn *wire.Conn // the stream layer under sess
	info Info
	log  zerolog.Logger
	db   *cache.DB // the message cache, nil without one
	cfg  Config
	sm   *sm.Session

	closeTimeout time.Duration

	started   atomic.Bool
	done      chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	err       error
	closed    bool

	// ctx lives until Close; background work (sync) stops with it.
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	syncer   *mamsync.Syncer
	syncDone chan struct{}
	syncRep  mamsync.Report
	syncErr  error
}

func newLink(cfg Config, st *login.Stream, info Info, db *cache.DB, sess *sm.Session, log zerolog.Logger) *link {
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
		syncDone:     make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// start sends the initial presence, starts serving the session and runs
// the reconciliation. Nothing may be written on the session before.
func (c *link) start() {
	c.started.Store(true)
	cfg, sess, info := c.cfg, c.sess, c.info
	// A resumed session still has its presence.
	presence := info.Resumed
	if !cfg.NoPresence && !info.Resumed {
		// Before the archive is asked where it stands: every message
		// archived after that answer is then routed to this session.
		presence = sess.Send(c.ctx, stanza.Presence{}.Wrap(nil)) == nil
	}
	if c.db != nil && !cfg.NoSync {
		conn := c.conn
		c.syncer = mamsync.New(mamsync.Config{
			Account:    info.JID.Bare(),
			Store:      c.db,
			PageSize:   cfg.SyncPageSize,
			OnMessage:  cfg.OnMessage,
			OnProgress: cfg.OnSyncProgress,
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
	}
	h := cfg.Handler
	if h == nil {
		h = xmpp.HandlerFunc(func(xmlstream.TokenReadEncoder, *xml.StartElement) error { return nil })
	}
	go c.serve(c.sm.Handler(c.conn, h, c.log))
	c.startSync(cfg, c.db)
}

func (c *link) serve(h xmpp.Handler) {
	err := c.sess.Serve(h)
	c.mu.Lock()
	if c.closed {
		err = ErrClosed
	} else if err == nil {
		err = errors.New("client: the server closed the stream")
	}
	c.err = err
	c.mu.Unlock()
	// Background work (sync) that waits on the session must not outlive it.
	c.cancel()
	c.conn.Close()
	if err != ErrClosed {
		c.log.Debug().Err(err).Msg("session ended")
	}
	close(c.done)
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

// Close ends the stream politely, waits up to Config.CloseTimeout for the
// server to end its own, then closes the connection and waits for the serve
// goroutine. It is idempotent and safe to call concurrently; a link that
// was never started is just closed.
func (c *link) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.cancel()
		if !c.started.Load() {
			c.conn.Close()
			return
		}
		// mellium's SetCloseDeadline races with Serve; a deadline on the
		// connection bounds the wait for the server's </stream:stream> the
		// same way.
		_ = c.conn.SetDeadline(time.Now().Add(c.closeTimeout))
		_ = c.sess.Close()
		timer := time.NewTimer(c.closeTimeout)
		select {
		case <-c.done:
		case <-timer.C:
			c.conn.Close()
			<-c.done
		}
		timer.Stop()
		c.wg.Wait()
	})
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
	return c.sess.Send(context.WithoutCancel(ctx), r)
}
