package client

import (
	"context"
	"encoding/xml"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/login"
	"github.com/pipebind/pipebind/mamsync"
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
	// Attempts is 1, or 2 when a stale cache cost one retry.
	Attempts int
	// Timings of the login's phases.
	Timings Timings
}

// Timings are the durations of the login's phases.
type Timings struct {
	Cache    time.Duration // opening and reading the feature cache
	Lookup   time.Duration // SRV lookup
	Connect  time.Duration // TCP connect
	StartTLS time.Duration // STARTTLS exchange (zero with Direct TLS)
	TLS      time.Duration // TLS handshake
	Login    time.Duration // from the first byte after TLS to bound
	Total    time.Duration // the whole Dial
}

// Client is a logged-in XMPP client. Its session is served on a goroutine
// that Dial starts and Close stops. A Client is safe for concurrent use.
type Client struct {
	sess  *xmpp.Session
	conn  net.Conn
	info  Info
	log   zerolog.Logger
	ownDB *cache.DB
	db    *cache.DB // the message cache, nil without one

	closeTimeout time.Duration

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

func newClient(cfg Config, sess *xmpp.Session, conn net.Conn, info Info, db *cache.DB, log zerolog.Logger) *Client {
	c := &Client{
		sess:         sess,
		conn:         conn,
		info:         info,
		log:          log,
		closeTimeout: cfg.closeTimeout(),
		done:         make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.db = db
	presence := false
	if !cfg.NoPresence {
		// Before the archive is asked where it stands: every message
		// archived after that answer is then routed to this session.
		presence = sess.Send(c.ctx, xml.NewDecoder(strings.NewReader("<presence/>"))) == nil
	}
	if db != nil && !cfg.NoSync {
		c.syncer = mamsync.New(mamsync.Config{
			Account:    info.JID.Bare(),
			Store:      db,
			PageSize:   cfg.SyncPageSize,
			OnMessage:  cfg.OnMessage,
			OnProgress: cfg.OnSyncProgress,
			SentMessages: func() uint32 {
				_, m := login.StanzasOut(sess)
				return m
			},
			LiveComplete: presence || info.Draft != nil,
			Logger:       cfg.Logger,
		})
	}
	h := cfg.Handler
	if h == nil {
		h = xmpp.HandlerFunc(func(xmlstream.TokenReadEncoder, *xml.StartElement) error { return nil })
	}
	go c.serve(smHandler{c: c, next: mamHandler{c: c, next: h}, enabled: info.SM.Enabled})
	c.startSync(cfg, db)
	return c
}

func (c *Client) serve(h xmpp.Handler) {
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

// Session returns the underlying mellium session, usable with mellium's
// packages (send messages, IQs, roster, ...). Its Serve loop is already
// running: do not call Serve.
func (c *Client) Session() *xmpp.Session { return c.sess }

// Info returns how the client logged in.
func (c *Client) Info() Info { return c.info }

// Done is closed when the session has ended (Close, server, or network).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the session ended: nil while it runs, ErrClosed after
// Close, otherwise the cause.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the stream politely, waits up to Config.CloseTimeout for the
// server to end its own, then closes the connection and waits for the serve
// goroutine. It is idempotent and safe to call concurrently.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.cancel()
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
		if c.ownDB != nil {
			c.ownDB.Close()
		}
	})
	return nil
}

// Send writes a stanza (or any element) given as a token stream. ctx is
// checked before the write starts; a write already under way is not
// interrupted by ctx (a TLS connection does not survive an interrupted
// write), only by Close.
func (c *Client) Send(ctx context.Context, r xml.TokenReader) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.sess.Send(context.WithoutCancel(ctx), r)
}

// smHandler answers XEP-0198 ack requests with the count of stanzas the
// session has parsed (login.StanzasIn: IQ results mellium routes to SendIQ
// callers included) and passes everything else to the application.
type smHandler struct {
	c       *Client
	next    xmpp.Handler
	enabled bool
}

func (h smHandler) HandleXMPP(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	if start.Name.Space == login.NSSM {
		switch start.Name.Local {
		case "r":
			if !h.enabled {
				return nil
			}
			a := xml.StartElement{
				Name: xml.Name{Space: login.NSSM, Local: "a"},
				Attr: []xml.Attr{{Name: xml.Name{Local: "h"}, Value: strconv.FormatUint(uint64(login.StanzasIn(h.c.sess)), 10)}},
			}
			if err := t.EncodeToken(a); err != nil {
				return err
			}
			return t.EncodeToken(a.End())
		case "a", "enabled", "failed":
			return nil
		}
	}
	return h.next.HandleXMPP(t, start)
}
