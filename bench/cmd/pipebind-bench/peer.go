package main

// The client side of pipebind-bench: each client kind runs in its own
// peer process (pipebind-bench -peer KIND), so its CPU time, allocations
// and memory are its own, not those of the proxy or the in-process server
// that run in the parent. The parent drives a peer with one command per
// line on its stdin and reads one JSON object per line (peerReply) from
// its stdout:
//
//	prepare   set the client up (a ready row primes it) without a login
//	login     log in once; the reply carries the measurement
//	close     close the session of the last login
//	storm N   log in N bots (USER0 ... USER{N-1}) at once, close them, log
//	          them in at once again and keep them idle (reply: stormReply);
//	          "close" closes them all
//
// The go-xmpp peer (bench/cmd/goxmpp-peer) speaks the same protocol from
// a binary of its own, so that this one does not link go-xmpp.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/login"
)

// peerConfig is what a peer needs to log in. The password comes from the
// environment (benchPasswordEnv), never from a flag.
type peerConfig struct {
	Kind     string
	Addr     string // the proxy
	Domain   string
	CAFile   string
	User     string
	Password string
	Timeout  time.Duration
	// CPUProfile, when set, is the file a CPU profile of the logins after
	// the first (and their closes) is written to when the peer ends.
	CPUProfile string
	// HeapProfile, when set, is the file a heap profile of the idle storm
	// (every session logged in) is written to.
	HeapProfile string
}

const benchPasswordEnv = "PIPEBIND_BENCH_PASSWORD"

// peerReply is one line of a peer's answer.
type peerReply struct {
	Err string `json:"err,omitempty"`
	// Login: wall time of the login, when it ended (Unix ns, for the
	// proxy's counters), the peer process's CPU time and allocations
	// during it, and what the client reports.
	NS         int64 `json:"ns,omitempty"`
	DoneUnixNS int64 `json:"done_unix_ns,omitempty"`
	// AnsweredUnixNS, when set, is when the client had handled the login's
	// last answer, before the writes that need no answer (the initial
	// presence): the proxy counts round trips up to it, not up to done.
	AnsweredUnixNS int64  `json:"answered_unix_ns,omitempty"`
	CPUNS          int64  `json:"cpu_ns,omitempty"`
	Allocs         uint64 `json:"allocs,omitempty"`
	AllocBytes     uint64 `json:"alloc_bytes,omitempty"`
	Path           string `json:"path,omitempty"`
	Mechanism      string `json:"mechanism,omitempty"`
	ClientRT       int    `json:"client_rt,omitempty"`
	TLS            string `json:"tls,omitempty"`
	// CacheNS is pipebind's Info().Timings.Cache: reading the cache,
	// alongside the lookup, TCP connect and TLS handshake; CacheWaitNS is
	// Info().Timings.CacheWait, the part of it the login waited for.
	CacheNS     int64 `json:"cache_ns,omitempty"`
	CacheWaitNS int64 `json:"cache_wait_ns,omitempty"`
	// ReadyNS is pipebind's Info().Timings.Ready (the ready rows: from
	// Dial's start to Synced); Fetched the new archived messages a ready
	// row's login fetched.
	ReadyNS int64 `json:"ready_ns,omitempty"`
	Fetched int   `json:"fetched,omitempty"`

	Storm *stormReply `json:"storm,omitempty"`
}

// stormReply reports a storm: every bot's first login, all at once (First),
// then, once they are closed, all of them again at once (the reconnect:
// the fields below).
type stormReply struct {
	First stormRound `json:"first"`
	stormRound
	// FAST counts the reconnect's logins that used a FAST token.
	FAST int `json:"fast"`
	// BaseBytes and IdleBytes are HeapInuse+StackInuse after a GC, before
	// the reconnect and with every session logged in and idle.
	BaseBytes uint64 `json:"base_bytes"`
	IdleBytes uint64 `json:"idle_bytes"`
	// BaseStack and IdleStack are the StackInuse parts of the two.
	BaseStack  uint64 `json:"base_stack_bytes"`
	IdleStack  uint64 `json:"idle_stack_bytes"`
	MaxRSS     int64  `json:"max_rss_bytes"`
	Goroutines int    `json:"goroutines"`
}

// stormRound is one round of concurrent logins.
type stormRound struct {
	LoginNS []int64 `json:"login_ns"` // the successful logins'
	// AfterNS: Dial's time after the login itself (Info().Timings.Total):
	// recording the login in the cache and starting the session.
	AfterNS  []int64 `json:"after_ns"`
	Failed   int     `json:"failed"`
	FirstErr string  `json:"first_err,omitempty"`
	WallNS   int64   `json:"wall_ns"`
	// CacheWriteFailed counts the logins whose record (features, FAST
	// token, pin) could not be written to the shared cache (the client's
	// warning; the login itself succeeded).
	CacheWriteFailed int64 `json:"cache_write_failed,omitempty"`
}

// loginInfo is what a client reports about a login.
type loginInfo struct {
	path, mech, tls string
	rt              int
	cache           time.Duration // pipebind: Info().Timings.Cache
	cacheWait       time.Duration // pipebind: Info().Timings.CacheWait
	// took, when set, is the row's time, measured by the client from
	// before its Dial to its end (ready): it replaces measureLogin's, which
	// also spans the checks after it.
	took    time.Duration
	ready   time.Duration // pipebind-ready: Info().Timings.Ready
	fetched int           // the ready rows: new archived messages fetched
}

// peerClient logs in and out, one session at a time.
type peerClient interface {
	login(ctx context.Context) (loginInfo, error)
	// close ends the session of the last login.
	close() error
	// shutdown ends the session and releases what the client holds (its
	// cache): the peer is done.
	shutdown()
}

// pipebindKinds maps a pipebind client kind to its configuration. Every
// row but pipebind-warm-fast sets client.Config.NoFAST: with a cache, Dial
// would otherwise request a FAST token on the first password login and use
// it on the next ones, and the row would no longer measure its mechanism.
var pipebindKinds = map[string]struct {
	path  login.Path
	mechs []string
	cache bool
	fast  bool // FAST on: the cache is primed with a token, every login must use it
}{
	"pipebind-warm-fast":   {login.PathSASL2, []string{"PLAIN"}, true, true},
	"pipebind-warm-plain":  {login.PathSASL2, []string{"PLAIN"}, true, false},
	"pipebind-warm-scram":  {login.PathSASL2, []string{"SCRAM-SHA-256", "SCRAM-SHA-1"}, true, false},
	"pipebind-cold":        {login.PathSASL2, []string{"PLAIN"}, false, false},
	"pipebind-bind2-draft": {login.PathBind2Draft, []string{"PLAIN"}, true, false},
	"pipebind-classic":     {login.PathClassic, []string{"PLAIN"}, true, false},
}

func tlsConfigFromCA(file, domain string) (*tls.Config, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", file)
	}
	return &tls.Config{RootCAs: pool, ServerName: domain, MinVersion: tls.VersionTLS12}, nil
}

func newPeerClient(ctx context.Context, pc peerConfig, tmp string) (peerClient, error) {
	tlsCfg, err := tlsConfigFromCA(pc.CAFile, pc.Domain)
	if err != nil {
		return nil, err
	}
	if p, ok, err := newReadyPeer(ctx, pc, tlsCfg, tmp); ok { // ready.go
		return p, err
	}
	if k, ok := pipebindKinds[pc.Kind]; ok {
		cfg, err := pipebindConfig(ctx, pc, tlsCfg, tmp, k.path, k.mechs, k.cache)
		if err != nil {
			return nil, err
		}
		cfg.NoFAST = !k.fast
		// Like go-xmpp's NewClient (and mellium's peer below), Dial ends
		// with the initial presence written: the default, what an
		// application gets.
		cfg.NoPresence = false
		p := &pbPeer{pbSession: pbSession{cfg: cfg}, wantFAST: k.fast}
		if k.fast {
			if err := p.prime(ctx); err != nil {
				p.shutdown()
				return nil, err
			}
		}
		return p, nil
	}
	switch pc.Kind {
	case "mellium-classic":
		return &melliumPeer{pc: pc, tls: tlsCfg}, nil
	case "floor":
		return &floorPeer{pc: pc, tls: tlsCfg}, nil
	case "floor-fast":
		return &floorFastPeer{pc: pc, tls: tlsCfg}, nil
	}
	return nil, fmt.Errorf("unknown client kind %q", pc.Kind)
}

// pipebindConfig is the configuration of a pipebind-bench client. With
// withCache it opens a cache in tmp as cfg.Cache: client.Client.Close does
// not close a cache passed in, so the caller closes cfg.Cache when done.
func pipebindConfig(ctx context.Context, pc peerConfig, tlsCfg *tls.Config, tmp string, path login.Path, mechs []string, withCache bool) (client.Config, error) {
	cfg := client.Config{
		JID:        jid.MustParse(pc.User + "@" + pc.Domain),
		Password:   pc.Password,
		Addr:       pc.Addr,
		TLS:        client.TLSDirect,
		TLSConfig:  tlsCfg,
		Path:       path,
		Mechanisms: mechs,
		NoSync:     true,
		NoPresence: true,
		Timeout:    pc.Timeout,
	}
	if withCache {
		db, err := cache.Open(ctx, filepath.Join(tmp, "cache.db"))
		if err != nil {
			return cfg, err
		}
		cfg.Cache = db
	}
	return cfg, nil
}

// pbSession is what every pipebind peer holds: its configuration (with
// its cache) and the client of its last login.
type pbSession struct {
	cfg client.Config
	c   *client.Client
}

func (p *pbSession) close() error {
	if p.c == nil {
		return nil
	}
	err := p.c.Close()
	p.c = nil
	return err
}

// shutdown closes the session and the peer's cache.
func (p *pbSession) shutdown() {
	_ = p.close()
	if p.cfg.Cache != nil {
		_ = p.cfg.Cache.Close()
	}
}

// notFAST is the error of a login that was to use the cached FAST token
// and did not: it measured the password, not FAST. (XEP-0484 rotation, a
// new token on a FAST login, is fine: the cache keeps the newest.)
func notFAST(in client.Info) error {
	reason := "no usable token"
	if in.TokenRejected != "" {
		reason = "token refused: " + in.TokenRejected
	}
	return fmt.Errorf("login used %s, not the FAST token (%s)", in.Mechanism, reason)
}

// noToken is the error of a priming login after which the cache holds no
// FAST token, nil if it does.
func noToken(in client.Info) error {
	if !in.FAST && in.NewToken == nil {
		return fmt.Errorf("priming login (%s): the server issued no FAST token", in.Mechanism)
	}
	return nil
}

type pbPeer struct {
	pbSession
	wantFAST bool // every login must authenticate with the cached FAST token
}

// prime logs in once with the password (untimed, before the first
// measured login) so that the cache holds a FAST token.
func (p *pbPeer) prime(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	c, err := client.Dial(pctx, p.cfg)
	if err != nil {
		return fmt.Errorf("%s: priming login: %w", p.cfg.JID.Localpart(), err)
	}
	in := c.Info()
	c.Close()
	return noToken(in)
}

func (p *pbPeer) login(ctx context.Context) (loginInfo, error) {
	c, err := client.Dial(ctx, p.cfg)
	if err != nil {
		return loginInfo{}, err
	}
	in := c.Info()
	if p.wantFAST && !in.FAST {
		c.Close()
		return loginInfo{}, notFAST(in)
	}
	p.c = c
	return loginInfo{path: in.Path.String(), mech: in.Mechanism, tls: in.TLSVersion, rt: in.RoundTrips, cache: in.Timings.Cache, cacheWait: in.Timings.CacheWait}, nil
}

func dialTLS(ctx context.Context, addr string, cfg *tls.Config) (*tls.Conn, error) {
	var d net.Dialer
	return dialTLSVia(ctx, d.DialContext, addr, cfg)
}

// dialTLSVia is dialTLS with the TCP connection opened by dial.
func dialTLSVia(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), addr string, cfg *tls.Config) (*tls.Conn, error) {
	raw, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"xmpp-client"}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}

// melliumPeer is mellium.im/xmpp's own negotiation (NewClientSession with
// SASL PLAIN and resource binding): the classic RFC 6120 sequence.
type melliumPeer struct {
	pc   peerConfig
	tls  *tls.Config
	conn *tls.Conn
	sess *xmpp.Session
}

func (p *melliumPeer) login(ctx context.Context) (loginInfo, error) {
	tc, err := dialTLS(ctx, p.pc.Addr, p.tls)
	if err != nil {
		return loginInfo{}, err
	}
	sess, err := xmpp.NewClientSession(ctx, jid.MustParse(p.pc.User+"@"+p.pc.Domain), tc,
		xmpp.SASL("", p.pc.Password, sasl.Plain), xmpp.BindResource())
	if err != nil {
		tc.Close()
		return loginInfo{}, err
	}
	p.conn, p.sess = tc, sess
	// The same end as the other clients: the initial presence written.
	if err := sess.Send(ctx, xml.NewDecoder(strings.NewReader("<presence/>"))); err != nil {
		return loginInfo{}, err
	}
	return loginInfo{path: "classic", mech: "PLAIN", tls: tls.VersionName(tc.ConnectionState().Version)}, nil
}

func (p *melliumPeer) shutdown() { _ = p.close() }

func (p *melliumPeer) close() error {
	if p.sess == nil {
		return nil
	}
	_ = p.sess.Close()
	err := p.conn.Close()
	p.sess, p.conn = nil, nil
	return err
}

// floorPeer is the physical floor of a login: TCP connect, TLS handshake
// and one application round trip pipelined like a login (the stream
// header written right after the handshake, read until the server's
// </stream:features>).
type floorPeer struct {
	pc   peerConfig
	tls  *tls.Config
	conn *tls.Conn
}

func (p *floorPeer) login(ctx context.Context) (loginInfo, error) {
	tc, err := dialTLS(ctx, p.pc.Addr, p.tls)
	if err != nil {
		return loginInfo{}, err
	}
	p.conn = tc
	header := fmt.Sprintf("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='%s'>", p.pc.Domain)
	if _, err := tc.Write([]byte(header)); err != nil {
		return loginInfo{}, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = tc.SetReadDeadline(dl)
	}
	d := xml.NewDecoder(tc)
	for {
		tok, err := d.RawToken()
		if err != nil {
			return loginInfo{}, err
		}
		if end, ok := tok.(xml.EndElement); ok && end.Name.Local == "features" {
			return loginInfo{path: "floor", tls: tls.VersionName(tc.ConnectionState().Version), rt: 1}, nil
		}
	}
}

func (p *floorPeer) shutdown() { _ = p.close() }

func (p *floorPeer) close() error {
	if p.conn == nil {
		return nil
	}
	err := p.conn.Close()
	p.conn = nil
	return err
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func maxRSS() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Maxrss * 1024 // KiB on Linux
}

func measureLogin(ctx context.Context, c peerClient) peerReply {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0 := cpuTime()
	t0 := time.Now()
	li, err := c.login(ctx)
	d := time.Since(t0)
	done := time.Now()
	cpu1 := cpuTime()
	runtime.ReadMemStats(&m1)
	if err != nil {
		return peerReply{Err: oneLine(err)}
	}
	if li.took > 0 {
		d = li.took
	}
	return peerReply{
		NS: int64(d), DoneUnixNS: done.UnixNano(), CPUNS: int64(cpu1 - cpu0),
		Allocs: m1.Mallocs - m0.Mallocs, AllocBytes: m1.TotalAlloc - m0.TotalAlloc,
		Path: li.path, Mechanism: li.mech, ClientRT: li.rt, TLS: li.tls, CacheNS: int64(li.cache), CacheWaitNS: int64(li.cacheWait),
		ReadyNS: int64(li.ready), Fetched: li.fetched,
	}
}

// runPeer serves the peer protocol on in/out until in ends.
func runPeer(ctx context.Context, pc peerConfig, in io.Reader, out io.Writer) error {
	tmp, err := os.MkdirTemp("", "pipebind-bench-peer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var c peerClient
	var st *stormRun
	var prof *os.File
	defer func() {
		if prof != nil {
			pprof.StopCPUProfile()
			prof.Close()
		}
		if c != nil {
			c.shutdown()
		}
		st.close()
	}()
	logins := 0
	enc := json.NewEncoder(out)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		var r peerReply
		switch f[0] {
		case "prepare":
			if c == nil {
				if c, err = newPeerClient(ctx, pc, tmp); err != nil {
					r.Err = oneLine(err)
				}
			}
		case "login":
			if c == nil {
				if c, err = newPeerClient(ctx, pc, tmp); err != nil {
					return err
				}
			}
			if logins++; logins == 2 && pc.CPUProfile != "" {
				if prof, err = os.Create(pc.CPUProfile); err != nil {
					return err
				}
				if err := pprof.StartCPUProfile(prof); err != nil {
					return err
				}
			}
			lctx, cancel := context.WithTimeout(ctx, pc.Timeout)
			r = measureLogin(lctx, c)
			cancel()
		case "close":
			if c != nil {
				if err := c.close(); err != nil {
					r.Err = oneLine(err)
				}
			}
			st.close()
			st = nil
		case "storm":
			if len(f) < 2 {
				r.Err = "storm: missing count"
				break
			}
			n, err := strconv.Atoi(f[1])
			if err != nil || n < 1 {
				r.Err = "storm: bad count " + f[1]
				break
			}
			st.close()
			var sr *stormReply
			sr, st, err = storm(ctx, pc, tmp, n)
			if err != nil {
				r.Err = oneLine(err)
			}
			r.Storm = sr
		default:
			r.Err = "unknown command " + f[0]
		}
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return sc.Err()
}

// stormRun is what a storm leaves open: its logged-in clients and the
// feature cache they share.
type stormRun struct {
	clients []*client.Client
	db      *cache.DB
}

// close closes the clients, then their cache; a nil run is a no-op.
func (s *stormRun) close() {
	if s == nil {
		return
	}
	closeAll(s.clients)
	if s.db != nil {
		_ = s.db.Close()
	}
}

// closeAll closes the clients concurrently: each Close waits up to a round
// trip for the server's </stream>.
func closeAll(cs []*client.Client) {
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() { c.Close() })
	}
	wg.Wait()
}

// heapAndStacks returns HeapInuse+StackInuse after a GC, and StackInuse.
func heapAndStacks() (total, stacks uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse, m.StackInuse
}

// storm logs pc.User+"0" ... pc.User+"{n-1}" in at once, twice, with
// pipebind's defaults and one shared cache (whose server features a first,
// untimed login of bot 0 fills): first every bot's first login (PLAIN; each
// stores its mechanism pin and a FAST token), then, with those closed, the
// reconnect storm, which uses the tokens. The run it returns holds the
// reconnect's clients and the cache, also on error.
func storm(ctx context.Context, pc peerConfig, tmp string, n int) (*stormReply, *stormRun, error) {
	tlsCfg, err := tlsConfigFromCA(pc.CAFile, pc.Domain)
	if err != nil {
		return nil, nil, err
	}
	base, err := pipebindConfig(ctx, pc, tlsCfg, tmp, login.PathSASL2, []string{"PLAIN"}, true)
	if err != nil {
		return nil, nil, err
	}
	run := &stormRun{db: base.Cache}
	warm := base
	warm.JID = jid.MustParse(pc.User + "0@" + pc.Domain)
	c, err := client.Dial(ctx, warm)
	if err != nil {
		return nil, run, fmt.Errorf("warm-up login: %w", err)
	}
	c.Close()
	r := &stormReply{}
	// Count the client's "could not record the login in the cache"
	// warnings (a login that stored nothing: no pin, no token).
	var writeFailed atomic.Int64
	base.Logger = zerolog.New(io.Discard).Level(zerolog.WarnLevel).Hook(zerolog.HookFunc(func(_ *zerolog.Event, level zerolog.Level, msg string) {
		if level >= zerolog.WarnLevel && strings.HasPrefix(msg, "could not record the login") {
			writeFailed.Add(1)
		}
	}))
	first, _ := stormLogins(ctx, base, pc, n, &r.First)
	r.First.CacheWriteFailed = writeFailed.Swap(0)
	closeAll(first)
	r.BaseBytes, r.BaseStack = heapAndStacks()
	run.clients, r.FAST = stormLogins(ctx, base, pc, n, &r.stormRound)
	r.CacheWriteFailed = writeFailed.Load()
	time.Sleep(500 * time.Millisecond) // let post-login traffic settle: idle sessions
	r.IdleBytes, r.IdleStack = heapAndStacks()
	r.MaxRSS = maxRSS()
	r.Goroutines = runtime.NumGoroutine()
	if pc.HeapProfile != "" {
		if err := writeHeapProfile(pc.HeapProfile); err != nil {
			return r, run, fmt.Errorf("heap profile: %w", err)
		}
	}
	switch {
	case r.First.Failed > 0:
		err = fmt.Errorf("first logins: %s", r.First.FirstErr)
	case r.Failed > 0:
		err = errors.New(r.FirstErr)
	}
	return r, run, err
}

// stormLogins logs the n bots in at once and returns the clients that
// logged in and how many of them used a FAST token.
func stormLogins(ctx context.Context, base client.Config, pc peerConfig, n int, r *stormRound) (ok []*client.Client, fast int) {
	ns := make([]int64, n)
	clients := make([]*client.Client, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		cfg := base
		cfg.JID = jid.MustParse(pc.User + strconv.Itoa(i) + "@" + pc.Domain)
		wg.Go(func() {
			<-start
			t0 := time.Now()
			clients[i], errs[i] = client.Dial(ctx, cfg)
			ns[i] = int64(time.Since(t0))
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	r.WallNS = int64(time.Since(t0))
	for i := range n {
		if errs[i] != nil {
			r.Failed++
			if r.FirstErr == "" {
				r.FirstErr = oneLine(errs[i])
			}
			continue
		}
		ok = append(ok, clients[i])
		r.LoginNS = append(r.LoginNS, ns[i])
		r.AfterNS = append(r.AfterNS, max(0, ns[i]-int64(clients[i].Info().Timings.Total)))
		if clients[i].Info().FAST {
			fast++
		}
	}
	return ok, fast
}

// writeHeapProfile writes the heap profile as of the last GC (heapAndStacks
// just ran one).
func writeHeapProfile(file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// percentile of sorted-able durations (nearest rank).
func percentile(ns []int64, p float64) time.Duration {
	if len(ns) == 0 {
		return 0
	}
	s := append([]int64(nil), ns...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := int(p*float64(len(s))+0.999999) - 1
	k = max(0, min(k, len(s)-1))
	return time.Duration(s[k])
}
