package client

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/login"
	"github.com/pipebind/pipebind/mamsync"
	"github.com/pipebind/pipebind/sm"
)

// ErrInstanceInUse is Dial's error when Config.Instance names an instance
// of the account that another client sharing the cache file uses (in this
// process, or in another one that runs). It is cache.ErrInstanceInUse.
var ErrInstanceInUse = cache.ErrInstanceInUse

// ErrConflict reports that the server ended the session because another
// client bound the same resource (a conflict stream error, RFC 6120
// §4.9.3.3): logging in again would throw that client out in turn, and the
// two would fight for ever. Unless Config.ReconnectOnConflict, the client
// stops with an error matching it.
var ErrConflict = errors.New("client: another client took over this session's resource")

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
	// FastOpen reports TCP Fast Open on the connection: whether the SYN
	// carried data and the server accepted it (see Config.NoFastOpen).
	FastOpen FastOpen
	// KeyShare describes the TLS key exchange: the key shares the
	// ClientHello carried and why, and the group negotiated.
	KeyShare KeyShare
	// StartTLSRoundTrips counts the round trips before TLS (STARTTLS only).
	StartTLSRoundTrips int
	// ScramKeysCached reports that SCRAM used cached keys (no PBKDF2).
	ScramKeysCached bool
	// Instance is the client's instance of the account in the cache
	// (Config.Instance, or the one it took); "" is the default one.
	Instance string
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
//
// With TCP Fast Open (Info.FastOpen.Requested) and a cookie for the
// server (from an earlier connection), connect returns before any packet
// has left: the SYN leaves with the ClientHello (or, with STARTTLS, the
// stream header). Connect is then only the socket's setup, and the TCP
// handshake's round trip is in TLS (or StartTLS), whether or not the
// server accepted the data. Without a cookie connect sends the SYN (asking
// for one) and waits, as usual. Connect+StartTLS+TLS is the time to a
// secured connection either way.
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
	// Ready is from the start of the login (Dial's, or a reconnection's)
	// to ready: logged in, the message store level with the archive and
	// the unread counts known (see Client.Synced); zero until then. Without
	// a cache or with NoSync it is Total.
	Ready time.Duration
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
	inst    *cache.Instance // this client's instance of the account in the cache
}

// Session returns the current connection's mellium session, for mellium's
// packages that take one (roster, disco, ping, ...). For a request and its
// answer, use SendIQ: mellium's SendIQ on the session waits until its
// context ends even once the connection is gone. To send a stanza, use Send: writing on the session directly does
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
func (c *Client) Info() Info { return c.link().infoNow() }

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
// client had already stopped), Send fails, and no Handler or
// OnSyncProgress call starts, nor OnMessage but for messages already
// stored (see Config.OnMessage); OnEvent receives the events queued
// before, then EventClosed.
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

// closeCache gives up the client's instance and closes the cache file Dial
// opened, once nothing uses them.
func (c *Client) closeCache() {
	c.closeDB.Do(func() {
		if c.inst != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := c.inst.Release(ctx); err != nil {
				c.log.Warn().Err(err).Msg("could not release this client's instance in the cache")
			}
			cancel()
		}
		if c.ownDB && c.db != nil {
			c.db.Close()
		}
	})
}

// claimInstance claims this client's instance of the account in the cache
// (Config.Instance, or the first free one): its user-agent id, and with it
// its resource and its FAST token, are its own, so that clients sharing the
// cache never bind the same resource. A cache that cannot record the claim
// (read-only) costs a warning: the login goes on as the installation. It
// runs once, in the first login's cache read (an instanceFunc), alongside
// the connect; c.inst is read after that read has ended.
func (c *Client) claimInstance(ctx context.Context) (*cache.Instance, error) {
	acct := c.cfg.JID.Bare().String()
	var err error
	if c.cfg.Instance != "" {
		c.inst, err = c.db.ClaimInstance(ctx, acct, c.cfg.Instance)
	} else {
		c.inst, err = c.db.ClaimAnyInstance(ctx, acct)
	}
	switch {
	case errors.Is(err, ErrInstanceInUse):
		return nil, fmt.Errorf("client: %w", err)
	case err != nil:
		c.log.Warn().Err(err).Msg("could not claim an instance in the cache; logging in as the installation")
	}
	return c.inst, nil
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
