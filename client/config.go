package client

import (
	"context"
	"crypto/tls"
	"net"
	"time"

	"github.com/rs/zerolog"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/login"
	"github.com/pipebind/pipebind/mamsync"
)

// TLSMode says how the client secures the connection.
type TLSMode uint8

const (
	// TLSAuto (the zero value) follows XEP-0368: SRV records say whether an
	// address speaks Direct TLS or STARTTLS. With Config.Addr set, the mode
	// the cache remembers for the server is used; with no cache entry Direct
	// TLS is tried first and STARTTLS on the same address if the server does
	// not answer TLS.
	TLSAuto TLSMode = iota
	// TLSDirect: TLS from the first byte (XEP-0368, "xmpps").
	TLSDirect
	// TLSStartTLS: plain TCP, then STARTTLS (RFC 6120 §5). The stream never
	// continues without TLS.
	TLSStartTLS
)

// String returns "auto", "direct" or "starttls".
func (m TLSMode) String() string {
	switch m {
	case TLSDirect:
		return "direct"
	case TLSStartTLS:
		return "starttls"
	}
	return "auto"
}

// Resolver looks up SRV records; *net.Resolver implements it.
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (cname string, addrs []*net.SRV, err error)
}

// Config configures Dial. The zero value plus JID and a password is a
// secure, silent client: verified TLS, SRV lookup, the best login path the
// server offers, no on-disk cache.
type Config struct {
	// JID is the account; the resource, if any, is ignored (the server or
	// Bind 2 assigns one).
	JID jid.JID
	// Password is the account's password. Never logged.
	Password string
	// PasswordFunc, when set, is called for the password instead of
	// Password (for example to prompt or read a keyring), only when a
	// login needs it: not while a cached FAST token stands in for the
	// password, so a bot whose token is valid never prompts. If the token
	// is then refused, it is called and the login tried again. An empty
	// password is an error (ErrConfig): it is never sent.
	PasswordFunc func(ctx context.Context) (string, error)

	// Addr ("host:port") skips the SRV lookup.
	Addr string
	// TLS selects Direct TLS or STARTTLS; zero follows XEP-0368 (see TLSAuto).
	TLS TLSMode
	// TLSConfig is cloned for the connection; ServerName defaults to the JID's
	// domain. Nil means the system roots and TLS 1.2 or later.
	TLSConfig *tls.Config
	// Resolver for SRV lookups; nil means net.DefaultResolver.
	Resolver Resolver
	// DialFunc opens the TCP connection; nil means a net.Dialer, with TCP
	// Fast Open unless NoFastOpen. Tests use it to inject delays and
	// faults. A DialFunc decides Fast Open itself: its net.Dialer can use
	// FastOpenControl; the client reads from the socket whether it asked
	// (Info.FastOpen), and plans the ClientHello accordingly, but leaves
	// the backoff after a dropped SYN (FastOpen.Backoff) to it.
	DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)
	// NoFastOpen turns TCP Fast Open (RFC 7413) off. It is on by default on
	// Linux: the default dialer sets TCP_FASTOPEN_CONNECT, so the SYN
	// carries the first write (the TLS ClientHello) when the kernel holds
	// a cookie from an earlier connection to the server, and a server with
	// Fast Open on answers the handshake one round trip sooner. Kept small
	// enough to fit in the SYN when the cache says the server negotiated
	// X25519 (see KeyShare and the package doc, "TCP Fast Open"). A
	// server name with several addresses is dialed without it (Happy
	// Eyeballs and failover need a connect that waits for the SYN-ACK),
	// and a path that drops SYNs with data costs one login a SYN
	// retransmission (about 1 s, RELIABILITY.md), after which the server
	// is dialed without it for an hour. Elsewhere than Linux, and with a
	// DialFunc, it has no effect.
	NoFastOpen bool

	// Cache is an open feature cache shared by many clients. If nil and
	// CachePath is set, Dial opens CachePath (and Close closes it). If both
	// are empty, nothing is cached: every login reads the features first.
	Cache *cache.DB
	// CachePath is the SQLite file of the feature cache.
	CachePath string

	// Path forces a login path; zero picks the best one the server offers.
	Path login.Path
	// Mechanisms lists the password mechanisms allowed, most preferred
	// first; nil means login.DefaultMechanisms(). Dial refuses a name
	// login does not implement (ErrConfig) before connecting. A cached FAST
	// token is used whatever the list (it names its own mechanism): NoFAST
	// or VerifyPassword turn it off.
	Mechanisms []string
	// InsecureAllowPlain allows PLAIN over TLS whose certificate was not
	// verified (only with a TLSConfig that skips verification). Tests only.
	InsecureAllowPlain bool
	// Tag is the Bind 2 client tag; empty means "pipebind".
	Tag string
	// Device names this device in the SASL2 user agent; empty omits it.
	Device string
	// Inactive starts the session with XEP-0352 state inactive.
	Inactive bool
	// NoCarbons and NoSM switch off enabling Message Carbons and Stream
	// Management at login.
	NoCarbons, NoSM bool
	// NoFAST turns off FAST (XEP-0484): no token is requested, stored or
	// used. With a cache and a server that offers FAST, the first password
	// login requests a token and later logins use it (one round trip, no
	// password hashing); a token the server refuses is deleted and the
	// password is used instead, without an error.
	NoFAST bool
	// VerifyPassword logs in with the password itself, so that the server
	// checks it: no cached FAST token and no cached SCRAM keys stand in for
	// it (SCRAM runs its PBKDF2). Without it, a login that a cached token or
	// cached keys carried says nothing about the password
	// (Info.PasswordChecked). What the login yields is stored as usual: the
	// SCRAM keys, and a new FAST token unless NoFAST.
	VerifyPassword bool
	// Reconnect keeps the client connected: when the connection drops, it
	// logs in again after a Backoff wait, resuming the stream management
	// session when it can (no stanza lost or repeated), and tells OnEvent.
	// Authentication failures and insecure logins stop it (the client then
	// closes with that error). Without it, a dropped connection closes the
	// client (Done, Err).
	Reconnect bool
	// Backoff bounds the waits between reconnection attempts; its zero
	// value is a good default (see Backoff).
	Backoff Backoff
	// ReconnectOnConflict makes the client log in again after the server
	// ended the session because another client bound the same resource (a
	// conflict stream error). By default the client stops with ErrConflict
	// instead: two clients that reconnect into the same resource throw each
	// other out for ever.
	ReconnectOnConflict bool
	// Instance names this client among the clients of the account that
	// share the cache file (Cache, CachePath): each instance has a SASL2
	// user-agent id of its own, stable from run to run, which the server
	// ties the bound resource and the FAST token to, so that they never
	// bind the same resource. Empty takes the first instance no other
	// running client holds ("", the default, then "2", "3", ...); a name
	// another running client holds makes Dial fail with ErrInstanceInUse.
	// Without a cache it is unused.
	Instance string
	// OnEvent, if set, hears of every change of the connection after Dial
	// has returned (offline, connecting, online, resumed, and closed, the
	// last) and of the Handler's errors (EventError). Dial calls back
	// nothing: its own connection is its result, not an event. The calls
	// come in order, one at a time, on a goroutine of the client's that
	// runs while events wait (never the connection's): a slow OnEvent
	// delays the events after it, not the connection nor the reconnection.
	// It may call any method of the Client, Close included.
	OnEvent func(Event)
	// AllowDowngrade accepts a password mechanism weaker than the one
	// pinned for this account (the strongest it has used, kept in the
	// cache): without it such a login fails with a *login.DowngradeError
	// (errors.Is ErrInsecure and login.ErrPinned). With it, the weaker
	// mechanism becomes the new pin.
	AllowDowngrade bool

	// NoPresence skips the initial available presence that the client sends
	// right after the login (RFC 6121 §4.2). Without it, messages to the
	// bare JID are not routed to this session, so live messages cannot keep
	// the message cache up to date by themselves and each one costs an
	// archive query.
	NoPresence bool
	// NoSync turns off the message archive reconciliation that runs after
	// the login when a cache is configured (see package mamsync).
	NoSync bool
	// OnMessage receives every archived message once, when it is stored in
	// the cache (from the archive or live), in archive order. It runs on
	// the client's goroutines (the connection's or the reconciliation's)
	// and must not block for long. It is not called before Dial has
	// returned; it may call Close. A message stored is announced even when
	// Close comes between its storing and its call (skipped, the call would
	// never come: the next run finds it stored); a Close that waits (see
	// Client.Close) returns after the last call.
	OnMessage func(cache.StoredMessage)
	// OnSyncProgress receives the reconciliation's progress after each stored
	// batch of messages (pages fetched, messages stored, expected total).
	// It runs as OnMessage does.
	OnSyncProgress func(mamsync.Progress)
	// SyncPageSize is the MAM page size asked for; zero means 250 (servers
	// cap it).
	SyncPageSize int

	// Handler receives every incoming element (stanzas and nonzas) that is
	// not an answer to an IQ the session sent, live messages included (the
	// exactly-once, in-order feed of archived messages is OnMessage); nil
	// ignores them (IQ requests are then answered with service-unavailable
	// by mellium). It runs on the connection's goroutine, one element at a
	// time; it is not called before Dial has returned, nor once Close has
	// been called, and it may call Close.
	//
	// An error the Handler returns is the application's: OnEvent receives
	// it as EventError (Event.Err wraps it) and the session goes on. Only
	// an error reading the element the Handler was given ends the
	// connection, as any read error does (the stream is broken:
	// EventOffline). To end the session, call Close. Errors that find
	// 1000 others waiting for a slow OnEvent are logged and dropped.
	Handler xmpp.Handler

	// KeepAlive bounds how long a dead link goes unnoticed after the
	// login; its zero value checks after 20 s of silence (see KeepAlive).
	KeepAlive KeepAlive
	// RequestTimeout bounds each request the client itself sends after the
	// login and waits for (the archive's queries, the markers' IQs): one
	// the server has not answered by then fails with an error matching
	// ErrTimeout. Zero means 30 s; negative means only the caller's context
	// bounds them.
	RequestTimeout time.Duration

	// Timeout bounds DNS, connect, TLS and login together. Zero means 30 s;
	// a negative value means only ctx bounds them.
	Timeout time.Duration
	// CloseTimeout bounds how long Close waits for the server to end its
	// stream; zero means 2 s.
	CloseTimeout time.Duration

	// Logger receives the client's log events. The zero Logger is silent.
	// Secrets never reach it.
	Logger zerolog.Logger
	// Trace, if not nil, receives the login's milestones.
	Trace *Trace
	// WireTrace, if set, sees the XML stream of every connection after TLS,
	// in both directions (in is true for what the server sent), a
	// top-level unit at a time: the headers, each element, the stream's
	// end; like curl -v. Secrets are redacted (login.Redact): passwords,
	// SASL payloads, SCRAM proofs, FAST tokens. It runs on the goroutine
	// that reads or writes the connection, must not block, and must not
	// retain element. Nil traces nothing (and costs nothing).
	WireTrace func(in bool, element []byte)
}

// Trace holds optional hooks called at a login's milestones, in order, on
// the goroutine that runs the login: Dial's for the first, one of the
// client's for the reconnections of Config.Reconnect (one login at a time).
// Hooks must not block, nor call Client.Close (it waits for the
// reconnection they run in); a nil hook is skipped.
//
// In each login (Dial, and each reconnection) ConnectDone and TLSDone are
// called for every connection tried, which may be several (Info.Attempts,
// and more than one address per attempt), and LoginDone once, last.
type Trace struct {
	// ConnectDone is called once per TCP connection attempt, when the
	// connection to addr is up or has failed: for each address tried
	// (SRV targets in order, the STARTTLS fallback on the same address),
	// in each attempt of the login. With TCP Fast Open and a cookie the
	// socket is ready before the SYN has left (see Timings): a server
	// that refuses or does not answer then fails the TLS handshake
	// (TLSDone), and the login's error says StepConnect.
	ConnectDone func(addr string, err error)
	// TLSDone is called once per TLS handshake, when it has succeeded or
	// failed, after the ConnectDone of the same connection. A connection
	// that fails before the handshake (TCP connect, STARTTLS) has none.
	TLSDone func(state tls.ConnectionState, err error)
	// LoginDone is called exactly once per login, last, with its final
	// error (nil on success) whatever step ended it: the PasswordFunc, the
	// SRV lookup, connect, STARTTLS, TLS or the login proper. info holds
	// what was learned up to then.
	LoginDone func(info Info, err error)
}

func (c *Config) timeout() time.Duration { return orDefault(c.Timeout, 30*time.Second) }

func (c *Config) requestTimeout() time.Duration { return orDefault(c.RequestTimeout, 30*time.Second) }

// orDefault reads a timeout field: zero means def, negative means none (0).
func orDefault(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// KeepAlive says how a client notices that its link has died without the
// connection being closed (a server that stopped, a NAT that forgot the
// connection, a mobile network that changed): after Idle without a byte from
// the server it asks for one, an XEP-0198 <r/> when stream management is on
// (the server answers <a/>), an XEP-0199 ping otherwise; if nothing arrives
// within Timeout, the link is dead: the connection is closed, EventOffline
// reports an error matching ErrDeadLink (and ErrTimeout, ErrConnection), and
// with Config.Reconnect the client logs in again, resuming the session when
// it can. A dead link is so noticed within Idle+Timeout of the last byte the
// server sent. A blocked write does not delay it. A server busy for longer
// (its receive window closed while it works through a burst) is alive as
// long as it writes something. On Linux, the TCP connection also gives up
// on data the server has not acknowledged for 5 minutes, or 2×(Idle+Timeout)
// if longer (TCP_USER_TIMEOUT): a backstop for a server that keeps writing
// but acknowledges nothing, which the checks cannot see.
//
// The zero value means Idle 20 s and Timeout 10 s: a dead link is found
// within 30 s, at the cost of one small exchange per 20 s of silence.
type KeepAlive struct {
	// Idle is the silence after which the client asks for an answer; zero
	// means 20 s, negative turns the checks (and TCP_USER_TIMEOUT) off.
	Idle time.Duration
	// Timeout is how long the client waits for the answer; zero means 10 s.
	Timeout time.Duration
}

// values returns Idle and Timeout with their defaults, and false when the
// checks are off.
func (k KeepAlive) values() (idle, timeout time.Duration, on bool) {
	if k.Idle < 0 {
		return 0, 0, false
	}
	idle, timeout = k.Idle, k.Timeout
	if idle == 0 {
		idle = 20 * time.Second
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return idle, timeout, true
}

func (c *Config) closeTimeout() time.Duration {
	if c.CloseTimeout <= 0 {
		return 2 * time.Second
	}
	return c.CloseTimeout
}
