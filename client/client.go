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
	"mellium.im/xmpp/jid"
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

// Client is a logged-in XMPP client. With Config.Reconnect it stays
// connected: a dropped connection is resumed (XEP-0198) or replaced, and
// Config.OnEvent hears about it. A Client is safe for concurrent use, and
// its callbacks (Config.OnEvent, Handler, OnMessage, OnSyncProgress) may
// call any of its methods, Close included.
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
	wg     sync.WaitGroup // the links' goroutines (serve, sync, goodbye)
	ev     dispatcher     // OnEvent's queue; Done

	mu     sync.Mutex
	cur    *link         // the current (or last) connection
	online chan struct{} // closed while cur is up
	closed bool
	err    error         // why the client stopped, once ended is closed
	ended  chan struct{} // closed when the client stops for good
	once   sync.Once

	closeDB sync.Once
}

// Session returns the current connection's mellium session, for mellium's
// packages that take one (roster, disco, ping, ...) and for request/response
// exchanges such as its SendIQ, whose answer mellium routes back to the
// caller. To send a stanza, use Send: writing on the session directly does
// not wait while the client reconnects (on the session of a lost
// connection the write fails), and does not ask the server to acknowledge
// what was written (XEP-0198 <r/>), which then waits in the queue of
// unacknowledged stanzas until a later Send asks.
//
// Its Serve loop is already running: do not call Serve. After a
// reconnection (EventOnline, EventResumed) it is a new session: call
// Session again rather than keep it.
func (c *Client) Session() *xmpp.Session { return c.link().sess }

// Info returns how the current connection logged in.
func (c *Client) Info() Info { return c.link().info }

// Done is closed when the client has stopped for good (after Close, when
// the connection ends without Config.Reconnect, or when reconnecting gives
// up) and everything has ended: every goroutine of the client and every
// application callback have returned, the cache file Dial opened is
// closed, and OnEvent has returned from EventClosed, the last event.
func (c *Client) Done() <-chan struct{} { return c.ev.done }

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
// current connection: it is the way to send (see Session for what it is
// still for). While reconnecting it waits (bounded by ctx) for the client
// to be online again; once the client has stopped it returns Err. ctx is checked before the write starts; a
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

// Close stops the client: it stops reconnecting, ends the stream politely
// (</stream:stream>, then up to Config.CloseTimeout for the server's) and
// closes the connection. From then on Err returns ErrClosed (unless the
// client had already stopped), Send fails, and no Handler, OnMessage or
// OnSyncProgress call starts; OnEvent receives the events queued before,
// then EventClosed.
//
// Close never waits for an application callback, so it may be called from
// any of them (OnEvent, Handler, OnMessage, OnSyncProgress). If none of
// Handler, OnMessage and OnSyncProgress is running, Close returns once the
// connection is closed, the client's goroutines have ended (all but the
// one delivering events to OnEvent) and the cache file Dial opened is
// closed. If one is running (perhaps the one calling Close), Close returns
// as soon as it has started the shutdown: the connection is closed within
// Config.CloseTimeout, and the goroutines end once the running callbacks
// have returned. Either way, Done is closed when everything has ended.
//
// Close is idempotent and safe to call concurrently; it returns nil. It
// must not be called from the hooks a login calls (Config.PasswordFunc,
// DialFunc, Resolver, Trace): Close waits for the reconnection they run in.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	l := c.cur
	c.mu.Unlock()
	c.cancel()
	if l != nil {
		l.stop()
	}
	c.finish(ErrClosed)
	if c.ev.busy() {
		return nil
	}
	c.loop.Wait()
	c.wg.Wait()
	c.closeCache()
	return nil
}

// closeCache closes the cache file Dial opened, once nothing uses it.
func (c *Client) closeCache() {
	c.closeDB.Do(func() {
		if c.ownDB && c.db != nil {
			c.db.Close()
		}
	})
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
		l, online, ended := c.cur, c.online, c.ended
		c.mu.Unlock()
		select {
		case <-ended:
			return nil, c.Err() // set before ended is closed
		default:
		}
		select {
		case <-online:
			return l, nil
		default:
		}
		select {
		case <-online:
			// loop: the current link may have changed
		case <-ended:
			// loop: returns the error
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// finish stops the client for good with err (the first cause wins): Err
// returns err, the events in last are queued, the dispatcher delivers
// EventClosed once the client's goroutines have ended, then closes Done.
func (c *Client) finish(err error, last ...Event) {
	c.once.Do(func() {
		c.mu.Lock()
		c.err = err
		close(c.ended)
		c.mu.Unlock()
		c.cancel()
		c.ev.stop(func() Event {
			c.loop.Wait()
			c.wg.Wait()
			c.closeCache()
			return Event{Kind: EventClosed, Err: err}
		}, last...)
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

// isClosed reports whether Close has been called.
func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

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
	kill      *time.Timer // closes the connection CloseTimeout after stop

	// ctx lives until Close; background work (sync) stops with it.
	ctx      context.Context
	cancel   context.CancelFunc
	wg       *sync.WaitGroup // the Client's: every goroutine of its links
	ev       *dispatcher     // the Client's: its callbacks
	syncer   *mamsync.Syncer
	syncDone chan struct{}
	syncRep  mamsync.Report
	syncErr  error
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
			OnMessage:  guard(ev, cfg.OnMessage),
			OnProgress: guard(ev, cfg.OnSyncProgress),
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
	var h xmpp.Handler = xmpp.HandlerFunc(func(xmlstream.TokenReadEncoder, *xml.StartElement) error { return nil })
	if cfg.Handler != nil {
		h = appHandler{d: ev, next: cfg.Handler}
	}
	sh := c.sm.Handler(c.conn, h, c.log)
	wg.Add(1)
	go func() {
		defer wg.Done()
		// An idle session waits for its first input here rather than under
		// the decoder, in a small frame, so that its goroutine's stack
		// shrinks (see wire.Conn.WaitInput).
		c.conn.WaitInput()
		c.serve(sh)
	}()
	c.startSync(c.db)
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
	return c.sess.Send(context.WithoutCancel(ctx), r)
}
