package xmpptest

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config selects what the server offers. The zero Config serves everything:
// Direct TLS and STARTTLS, classic SASL and SASL2 with Bind 2, SCRAM-SHA-256,
// SCRAM-SHA-1 and PLAIN, FAST tokens (HT-SHA-256-NONE, -EXPR, -ENDP) and
// stream management with resumption.
type Config struct {
	// Domain is the server's domain. Default "localhost". It is fixed when
	// the server is created (the certificate names it); SetConfig cannot
	// change it.
	Domain string
	// Users maps localparts to passwords.
	Users map[string]string

	// NoSASL2 makes a classic-only server: no urn:xmpp:sasl:2 feature, and
	// an <authenticate/> is answered like any unknown element (stream error
	// unsupported-stanza-type).
	NoSASL2 bool
	// NoBind2 offers SASL2 without inline Bind 2; a <bind/> inside
	// <authenticate/> is ignored and the client binds the RFC 6120 way.
	NoBind2 bool
	// Mechanisms are offered, in order, by both classic SASL and SASL2.
	// Default {"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"}. Names the server
	// does not implement may be listed (to see what a client picks); using
	// them fails with invalid-mechanism. SCRAM-SHA-512 and the -PLUS variants
	// (tls-exporter, tls-server-end-point) are implemented but not defaults.
	Mechanisms []string
	// NoDirectTLS and NoStartTLS disable a listener: it still accepts (its
	// address stays valid) but closes each connection at once, without TLS
	// or a stream header. Such connections do not appear in Conns.
	NoDirectTLS, NoStartTLS bool
	// ScramIterations is the SCRAM iteration count. Default 4096.
	ScramIterations int
	// SSDP adds the XEP-0474 downgrade-protection attribute "h" to every
	// SCRAM server-first-message (scram_server.go): the hash of the
	// advertised mechanisms and XEP-0440 channel-binding types.
	SSDP bool
	// SSDPHashLists, when not nil, is given (copies of) the advertised
	// mechanism and channel-binding lists and returns the lists the SSDP
	// hash covers instead: a test makes them differ from the features, as a
	// man in the middle that stripped -PLUS mechanisms would. A nil
	// channel-binding list hashes as "no XEP-0440 advertised".
	SSDPHashLists func(mechs, cbs []string) ([]string, []string)

	// Bind2Draft serves the XEP-0386 v0.3.0 draft (urn:xmpp:bind2:0, see
	// bind2draft.go): <bind xmlns='urn:xmpp:bind2:0'/> is advertised in the
	// pre-authentication features (beside <mechanisms/>) and after the
	// classic SASL restart (beside the RFC 6120 <bind/> and <sm/>), and a
	// bare <bind xmlns='urn:xmpp:bind2:0'/> in an authenticated, unbound
	// session binds a random resource and answers <bound/>. Off by default.
	Bind2Draft bool
	// Bind2DraftPostAuthOnly advertises the draft only after authentication,
	// as the draft's example does. It has no effect without Bind2Draft.
	Bind2DraftPostAuthOnly bool
	// NoUnreads elides <unreads/> from the draft's <bound/> (the draft:
	// absent means not supported, empty means no unread messages).
	NoUnreads bool
	// AfterBound is raw XML (for example a <message/>) the server writes in
	// the same Write call right after the draft's </bound>, so it lands in
	// the same TLS record: a test that no byte is lost across the client's
	// handling of <bound/>. It is not validated.
	AfterBound string

	// Latency delays each direction of every accepted connection by this
	// one-way latency, below TLS, so a round trip costs 2×Latency. Each
	// written chunk is delivered Latency after it was written, in order and
	// with its boundaries (latency.go). ReadLatency (client to server) and
	// WriteLatency (server to client), when positive, override it for one
	// direction. Zero means no delay.
	Latency, ReadLatency, WriteLatency time.Duration

	// MAMPageDefault is the number of results of a MAM (XEP-0313) query
	// without an RSM <max/>. Default 20.
	MAMPageDefault int
	// MAMPageMax caps the RSM <max/> of a MAM query: a larger one is lowered
	// to it, as Prosody does. Default 50.
	MAMPageMax int
	// MAMNoCount leaves <count/> (and the 'index' of <first/>) out of the
	// MAM <fin/>, as Prosody does; by default they are included, as
	// ejabberd does.
	MAMNoCount bool
	// MAMNoMetadata answers the XEP-0313 <metadata/> request with a
	// bad-request error, as ejabberd does.
	MAMNoMetadata bool
	// MAMNumericIDs makes archive and stanza-ids increasing decimal numbers
	// (as ejabberd's) instead of opaque strings. It applies to ids assigned
	// while it is set (SetConfig takes effect at once for ids).
	MAMNumericIDs bool

	// Fault, when not nil, is called with the 0-based index of each accepted
	// connection (its position in Conns) and the faults it returns are
	// injected into that connection (fault.go).
	Fault func(n int) Fault

	// FASTMechanisms are the XEP-0484 FAST mechanisms advertised, in order,
	// in <fast xmlns='urn:xmpp:fast:0'/> inside the SASL2 <inline/>, and the
	// only ones a token can be requested for or used with (fast.go).
	// Default {"HT-SHA-256-NONE", "HT-SHA-256-EXPR", "HT-SHA-256-ENDP"}.
	// "HT-SHA-256-UNIQ" is implemented but not a default: like ejabberd's,
	// it fails on TLS 1.3, where tls-unique is undefined. Other names may be
	// listed; using them fails with invalid-mechanism.
	FASTMechanisms []string
	// NoFAST turns FAST off: no <fast/> inline feature, <request-token/> is
	// ignored and HT-* mechanisms fail with invalid-mechanism.
	NoFAST bool
	// FASTTokenLifetime is how long an issued token stays valid (its
	// 'expiry'). Default 21 days, as Prosody's. A token is also rotated (a
	// new one sent in <success/>) when less than half of it is left.
	FASTTokenLifetime time.Duration
	// FASTRotate makes every successful FAST authentication rotate the
	// token (XEP-0484 §token-rotation): <success/> carries a new <token/>;
	// the old one stays valid until the new one is used.
	FASTRotate bool

	// SMResumeTimeout is how long a resumable XEP-0198 session is kept after
	// its connection is lost (sm.go), and what <enabled/> announces as 'max'
	// (in whole seconds, at least 1). A smaller 'max' on the client's
	// <enable/> wins. Default 300 seconds.
	SMResumeTimeout time.Duration
	// NoSMResume makes stream management acks-only: <enabled/> never offers
	// resumption, the SASL2 <inline/> has no <sm/>, and <resume/> fails with
	// feature-not-implemented.
	NoSMResume bool
	// SMRequestEvery, when positive, makes the server send <r/> after every
	// SMRequestEvery stanzas it sends on a stream with stream management on.
	// Zero means the server never asks for acks.
	SMRequestEvery int
	// StanzaCost is the time the server spends on each stanza a bound
	// session sends before it reads the next one, as a server that writes
	// every message to disk does (ejabberd 24.12 with its Mnesia archive
	// handles a few dozen a second on a loaded machine): a burst of them is
	// a backlog that anything sent after it, an <r/> or a ping, waits
	// behind. Zero means none.
	StanzaCost time.Duration
	// SMEnabledFirst answers a client's <enable/> (XEP-0198, classic path)
	// before the carbons-enable IQ it pipelined in front of it, as ejabberd
	// 24.12 does: the IQ result is held until the <enable/> is answered.
	// Only for clients that send <enable/> right after that IQ.
	SMEnabledFirst bool
	// StableResources binds, with Bind 2, "<tag>~<hash of the user-agent
	// id>", as Prosody 13 does, so that a client keeps its resource from
	// login to login; and binding a resource a session holds ends that
	// session with a conflict stream error (Prosody's kick_old). Without
	// it, resources are random and a taken one gets another suffix.
	StableResources bool
	// SMResumeFeatures sends <stream:features/> after a SASL2 <success/>
	// that resumed a session (after the retransmitted stanzas), as Prosody 13
	// does. XEP-0198 §inline-resume says they MUST NOT be sent: off by
	// default.
	SMResumeFeatures bool

	// Now, when not nil, is the clock for FAST token expiry and the SM
	// resumption deadline (tests move it instead of sleeping). Default
	// time.Now. It is read at the time of each check, also for connections
	// accepted before SetConfig changed it.
	Now func() time.Time
}

// latencies returns the effective one-way delays.
func (c *Config) latencies() (read, write time.Duration) {
	read, write = c.Latency, c.Latency
	if c.ReadLatency > 0 {
		read = c.ReadLatency
	}
	if c.WriteLatency > 0 {
		write = c.WriteLatency
	}
	return max(read, 0), max(write, 0)
}

// defaultMechanisms is what a zero Config offers.
var defaultMechanisms = []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"}

func (c Config) withDefaults() Config {
	if c.Domain == "" {
		c.Domain = "localhost"
	}
	c.Domain = strings.ToLower(c.Domain)
	if len(c.Mechanisms) == 0 {
		c.Mechanisms = defaultMechanisms
	}
	c.Mechanisms = slices.Clone(c.Mechanisms)
	if c.ScramIterations <= 0 {
		c.ScramIterations = 4096
	}
	if c.MAMPageMax <= 0 {
		c.MAMPageMax = 50
	}
	if c.MAMPageDefault <= 0 {
		c.MAMPageDefault = 20
	}
	c.MAMPageDefault = min(c.MAMPageDefault, c.MAMPageMax)
	if len(c.FASTMechanisms) == 0 {
		c.FASTMechanisms = defaultFASTMechanisms
	}
	c.FASTMechanisms = slices.Clone(c.FASTMechanisms)
	if c.FASTTokenLifetime <= 0 {
		c.FASTTokenLifetime = defaultFASTLifetime
	}
	if c.SMResumeTimeout <= 0 {
		c.SMResumeTimeout = defaultSMResumeTimeout
	}
	return c
}

// offers reports whether mechanism m is configured.
func (c *Config) offers(m string) bool { return slices.Contains(c.Mechanisms, m) }

// Server is an in-process XMPP server for tests, listening on loopback. It is
// safe for concurrent use.
type Server struct {
	domain string
	certs  *certs

	mu        sync.Mutex
	cfg       Config // cfg.Users is owned by the server
	started   bool
	closed    bool
	direct    net.Listener
	plain     net.Listener
	logs      []*ConnLog
	live      map[*conn]struct{}
	sessions  map[string]map[string]*conn // bare JID -> resource -> conn
	scram     map[scramKey]*scramEntry
	archives  map[string]*userArchive      // localpart -> archive (archive.go)
	lastNumID int64                        // the last numeric archive id (Config.MAMNumericIDs)
	markers   map[string]map[string]string // localpart -> peer bare JID -> read-id

	fast     map[fastKey]*fastSlots // XEP-0484 tokens (fast.go)
	fastFail map[string]string      // localpart -> condition for its next FAST login
	stats    map[string]*LoginStats // localpart -> counters (stats.go)
	handled  map[string]int         // stanza id -> times handled (stats.go)
	smIndex  map[string]*conn       // SM-ID -> resumable session, live or detached (sm.go)
	detached map[*conn]struct{}     // resumable sessions whose connection is gone
	smGone   map[string]smTombstone // SM-ID -> what is left of an expired session

	wg sync.WaitGroup
}

// NewServer returns a started server listening on 127.0.0.1 with a Direct
// TLS listener and a plain listener that requires STARTTLS. The caller must
// Close it.
func NewServer(cfg Config) *Server {
	s := NewUnstartedServer(cfg)
	s.Start()
	return s
}

// NewUnstartedServer returns a server that is not listening yet; adjust it
// (SetConfig, AddUser) and call Start.
func NewUnstartedServer(cfg Config) *Server {
	cfg = cfg.withDefaults()
	cfg.Users = maps.Clone(cfg.Users)
	if cfg.Users == nil {
		cfg.Users = make(map[string]string)
	}
	c, err := newCerts(cfg.Domain)
	if err != nil {
		panic(fmt.Sprintf("xmpptest: generating certificates: %v", err))
	}
	return &Server{
		domain:   cfg.Domain,
		certs:    c,
		cfg:      cfg,
		live:     make(map[*conn]struct{}),
		sessions: make(map[string]map[string]*conn),
		scram:    make(map[scramKey]*scramEntry),
		fast:     make(map[fastKey]*fastSlots),
		fastFail: make(map[string]string),
		stats:    make(map[string]*LoginStats),
		handled:  make(map[string]int),
		smIndex:  make(map[string]*conn),
		detached: make(map[*conn]struct{}),
		smGone:   make(map[string]smTombstone),
	}
}

// Start starts listening. It panics if called twice or after Close.
func (s *Server) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		panic("xmpptest: Start called twice or after Close")
	}
	s.started = true
	s.direct = listen()
	s.plain = listen()
	s.wg.Add(2)
	go s.accept(s.direct, modeDirectTLS)
	go s.accept(s.plain, modeStartTLS)
}

func listen() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("xmpptest: listen: %v", err))
	}
	return ln
}

// DirectTLSAddr returns the host:port of the Direct TLS (XEP-0368) listener,
// or "" before Start.
func (s *Server) DirectTLSAddr() string { return s.addr(func() net.Listener { return s.direct }) }

// StartTLSAddr returns the host:port of the plain listener that requires
// STARTTLS, or "" before Start.
func (s *Server) StartTLSAddr() string { return s.addr(func() net.Listener { return s.plain }) }

func (s *Server) addr(ln func() net.Listener) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := ln(); l != nil {
		return l.Addr().String()
	}
	return ""
}

// Domain returns the server's domain.
func (s *Server) Domain() string { return s.domain }

// SetConfig changes the configuration for connections accepted afterwards;
// connections already open keep what they were accepted with (Users is
// shared and live). Domain cannot change. f runs under the server's lock and
// must not call the server's methods.
func (s *Server) SetConfig(f func(*Config)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := s.cfg
	f(&cfg)
	cfg.Domain = s.domain
	cfg = cfg.withDefaults()
	cfg.Users = maps.Clone(cfg.Users)
	if cfg.Users == nil {
		cfg.Users = make(map[string]string)
	}
	s.cfg = cfg
}

// AddUser adds a user or changes a password.
func (s *Server) AddUser(local, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.Users[local] = password
}

// password returns the password of local.
func (s *Server) password(local string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pw, ok := s.cfg.Users[local]
	return pw, ok
}

// Conns returns the log of every connection accepted so far, in accept order.
func (s *Server) Conns() []*ConnLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.logs)
}

// Close closes the listeners and every connection, and waits for all of the
// server's goroutines. It is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		for _, ln := range []net.Listener{s.direct, s.plain} {
			if ln != nil {
				_ = ln.Close()
			}
		}
		for c := range s.live {
			_ = c.raw.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) accept(ln net.Listener, mode listenMode) {
	defer s.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond) // back off on transient errors, as net/http does
			continue
		}
		s.serve(nc, mode)
	}
}

// serve starts a connection's goroutine and returns its log, or nil when the
// connection was refused.
func (s *Server) serve(nc net.Conn, mode listenMode) *ConnLog {
	s.mu.Lock()
	refuse := s.closed ||
		(mode == modeDirectTLS && s.cfg.NoDirectTLS) ||
		(mode == modeStartTLS && s.cfg.NoStartTLS)
	if refuse {
		s.mu.Unlock()
		_ = nc.Close()
		return nil
	}
	cfg := s.cfg
	cfg.Users = nil
	cfg.Mechanisms = slices.Clone(cfg.Mechanisms)
	cfg.FASTMechanisms = slices.Clone(cfg.FASTMechanisms)
	if rl, wl := cfg.latencies(); rl > 0 || wl > 0 {
		nc = newLatencyConn(nc, rl, wl)
	}
	c := newConn(s, cfg, nc, mode)
	index := len(s.logs)
	s.logs = append(s.logs, c.log)
	s.live[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	if cfg.Fault != nil {
		c.fault = cfg.Fault(index) // outside the lock: it may call the server
	}
	go c.serve()
	return c.log
}

// forget drops a finished connection.
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.live, c)
}
