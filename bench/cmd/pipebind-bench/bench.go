package main

// The login benchmarks: the client kinds (rows), the runs against each
// server at each RTT, the ratios, the storm and the CPU profile.
// See BENCHMARKS.md; scripts/bench regenerates it.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pipebind/pipebind/internal/netem"
	"github.com/pipebind/pipebind/internal/prosodytest"
	"github.com/pipebind/pipebind/internal/xmpptest"
)

// benchClient is one row kind.
type benchClient struct {
	name    string
	kind    string // the peer's client kind, when not name
	goxmpp  bool   // run by the go-xmpp peer of the nested module
	draft   bool   // needs the XEP-0386 v0.3.0 in-process server
	pending string // not implemented yet: the row is printed empty
	servers []string
	// ready: a time-to-ready row (ready.go), on an account of its own in
	// each group (readyUser), set up by the peer's "prepare" before the
	// first login; inject new messages are archived for that account
	// before each login (untimed); big: its timed logins are -n-1000.
	ready  bool
	inject int
	big    bool
	// note is said in the row's note column.
	note string
}

// The packet servers (-packet): Prosody 13 with and without TCP Fast
// Open, behind the packet-level path.
const (
	serverTFO   = "prosody-tfo"
	serverNoTFO = "prosody-no-tfo"
)

var (
	both          = []string{"prosody", "inproc"}
	prosOnly      = []string{"prosody"}
	inOnly        = []string{"inproc"}
	packetServers = []string{serverTFO, serverNoTFO}
	bothAndPacket = append(slices.Clone(both), packetServers...)
)

// benchClients lists the rows in display order.
var benchClients = []benchClient{
	{name: "floor", servers: both},
	// On the packet-level path the floor is a hand-written pipelined FAST
	// login with TCP Fast Open and an X25519-only ClientHello.
	{name: "floor", kind: "floor-fast", servers: packetServers},
	{name: "pipebind-warm-fast", servers: bothAndPacket},
	// The time to ready (issue 15, ready.go): pipebind with its catch-up
	// in the login's write, and the reference client that asks after it.
	{name: "pipebind-ready", ready: true, servers: packetServers,
		note: "Dial → Synced, store level"},
	{name: "pipebind-ready-10", ready: true, inject: 10, servers: packetServers,
		note: "Dial → Synced, 10 new messages fetched"},
	{name: "pipebind-ready-1000", ready: true, inject: 1000, big: true, servers: packetServers,
		note: "Dial → Synced, 1,000 new messages fetched"},
	{name: "reference-ready", ready: true, servers: packetServers,
		note: "login, then MAM from the cursor, then the markers; store level"},
	{name: "reference-ready-10", ready: true, inject: 10, servers: packetServers,
		note: "login, then MAM from the cursor, then the markers; 10 new messages"},
	{name: "reference-ready-1000", ready: true, inject: 1000, big: true, servers: packetServers,
		note: "login, then MAM from the cursor (paged), then the markers; 1,000 new messages"},
	{name: "pipebind-warm-plain", servers: both},
	{name: "pipebind-warm-scram", servers: both},
	{name: "pipebind-cold", servers: both},
	{name: "pipebind-bind2-draft", draft: true, servers: inOnly},
	{name: "pipebind-classic", servers: both},
	{name: "mellium-classic", servers: bothAndPacket},
	{name: "goxmpp-fast", goxmpp: true, servers: append(slices.Clone(prosOnly), packetServers...)},
	{name: "goxmpp-plain", goxmpp: true, servers: both},
	{name: "goxmpp-scram", goxmpp: true, servers: both},
}

// peerKind is the client kind its peer runs.
func (c benchClient) peerKind() string {
	if c.kind != "" {
		return c.kind
	}
	return c.name
}

// benchRow is the result of one client kind at one RTT on one server.
type benchRow struct {
	Server   string  `json:"server"`
	RTTms    float64 `json:"rtt_ms"`
	Client   string  `json:"client"`
	Pending  string  `json:"pending,omitempty"`
	N        int     `json:"n"`
	Failed   int     `json:"failed"`
	FirstErr string  `json:"first_err,omitempty"`
	MedianMS float64 `json:"median_ms"`
	P95MS    float64 `json:"p95_ms"`
	// RoundTrips: client flights counted on the proxy up to the end of the
	// login, minus one per connection for the TLS 1.3 handshake (median).
	RoundTrips float64 `json:"round_trips"`
	Flights    float64 `json:"flights"`
	Conns      float64 `json:"conns"`
	BytesUp    float64 `json:"bytes_up"`
	BytesDown  float64 `json:"bytes_down"`
	CPUms      float64 `json:"cpu_ms"`
	Allocs     float64 `json:"allocs"`
	AllocKB    float64 `json:"alloc_kb"`
	ClientRT   float64 `json:"client_reported_round_trips,omitempty"`
	// CacheMS: pipebind's cache reads (Timings.Cache), which run alongside
	// the lookup, TCP connect and TLS handshake; CacheWaitMS: the part of
	// them the login waited for (Timings.CacheWait), on its critical path.
	CacheMS     float64 `json:"cache_ms,omitempty"`
	CacheWaitMS float64 `json:"cache_wait_ms,omitempty"`
	Path        string  `json:"path,omitempty"`
	Mechanism   string  `json:"mechanism,omitempty"`
	TLS         string  `json:"tls,omitempty"`
	VsFloor     float64 `json:"vs_floor,omitempty"`
	// SYNDataAccepted counts the logins (their connections) whose SYN
	// carried data the server accepted: TCP Fast Open, seen on the
	// packet-level path only.
	SYNDataAccepted int `json:"syn_data_accepted,omitempty"`
	// Note is the row's own note (benchClient.note). The ready rows:
	// ReadyMS is pipebind's Info().Timings.Ready (Dial's start to Synced;
	// the row's time is the peer's wall clock from before Dial to Synced,
	// which includes it), Fetched the new messages a login fetched
	// (medians).
	Note    string  `json:"note,omitempty"`
	ReadyMS float64 `json:"ready_ms,omitempty"`
	Fetched float64 `json:"fetched,omitempty"`

	ns                             []int64
	rts, fl, cn, up, down, cpu, al []float64
	alb, crt, cache, cacheWait     []float64
	ready, fetched                 []float64
}

// stormResult reports the reconnect storm (every bot has logged in before:
// its pin and FAST token are cached) and, in First, the first logins of
// the same bots, all at once too.
type stormResult struct {
	N     int        `json:"n"`
	RTTms float64    `json:"rtt_ms"`
	First stormStats `json:"first_logins"`
	stormStats
	// FAST counts the reconnect's logins that used a FAST token.
	FAST         int     `json:"fast"`
	PeakRSSMiB   float64 `json:"client_peak_rss_mib"`
	PerSessionKB float64 `json:"client_kib_per_idle_session"`
	// StackPerSessionKB is the goroutine-stack part of PerSessionKB.
	StackPerSessionKB float64 `json:"client_stack_kib_per_idle_session"`
	Goroutines        int     `json:"client_goroutines"`
	// HeapTop is "go tool pprof -top -sample_index=inuse_space" of the
	// idle storm process (-storm-profile).
	HeapTop string `json:"heap_top,omitempty"`
}

type benchReport struct {
	Command string         `json:"command"`
	Date    string         `json:"date"`
	Machine machineInfo    `json:"machine"`
	Rows    []*benchRow    `json:"rows"`
	Ratios  []ratioRow     `json:"ratios"`
	Storm   *stormResult   `json:"storm,omitempty"`
	Catchup *catchupResult `json:"catchup,omitempty"`
	Profile *profileResult `json:"profile,omitempty"`
	// ServerCosts: Prosody's time for each kind of first flight after TLS.
	ServerCosts []*serverCost `json:"prosody_first_flight,omitempty"`
	Notes       []string      `json:"notes,omitempty"`
}

type machineInfo struct {
	CPU     string `json:"cpu"`
	Cores   int    `json:"cores"`
	OS      string `json:"os"`
	Go      string `json:"go"`
	Prosody string `json:"prosody,omitempty"`
}

type ratioRow struct {
	Server         string  `json:"server"`
	RTTms          float64 `json:"rtt_ms"`
	FloorMS        float64 `json:"floor_ms"`
	PipebindMS     float64 `json:"pipebind_warm_ms"`
	VsFloor        float64 `json:"pipebind_vs_floor"`
	GoxmppBest     string  `json:"goxmpp_best,omitempty"`
	VsGoxmppBest   float64 `json:"goxmpp_best_over_pipebind,omitempty"`
	VsGoxmppSCRAM  float64 `json:"goxmpp_scram_over_pipebind,omitempty"`
	VsMellium      float64 `json:"mellium_classic_over_pipebind,omitempty"`
	VsClassicOwn   float64 `json:"pipebind_classic_over_pipebind,omitempty"`
	PipebindClient string  `json:"pipebind_client"`
	// PerRow: the same ratios for every pipebind row of the group.
	PerRow []rowRatio `json:"per_row,omitempty"`
}

// rowRatio compares one pipebind row with the floor and the peers.
type rowRatio struct {
	Client        string  `json:"client"`
	MedianMS      float64 `json:"median_ms"`
	RoundTrips    float64 `json:"round_trips"`
	VsFloor       float64 `json:"vs_floor,omitempty"`
	VsGoxmppBest  float64 `json:"goxmpp_best_over_row,omitempty"`
	VsGoxmppSCRAM float64 `json:"goxmpp_scram_over_row,omitempty"`
	VsMellium     float64 `json:"mellium_classic_over_row,omitempty"`
}

// warmRows are the rows that can be "pipebind warm" (issue 6: FAST or
// PLAIN, one round trip after TLS); the headline is the faster of the two
// in each group, and the per-row ratios show both.
var warmRows = []string{"pipebind-warm-fast", "pipebind-warm-plain"}

type benchOpts struct {
	n, warmup   int
	rtts        []time.Duration
	jitter      time.Duration
	bandwidth   int64
	prosody     bool
	inproc      bool
	goxmpp      string
	only        []string
	storm       int
	stormRTT    time.Duration
	catchup     int
	catchupRuns int
	catchupRTT  time.Duration
	serverCost  int
	profile     string
	profileN    int
	stormHeap   string
	timeout     time.Duration
	jsonOut     bool
	markdown    string
	inprocPeers bool
	command     string
	peer        peerConfig
	// packet runs the headline rows on the packet-level path (-packet);
	// launch, when set, starts the peers' processes (in its client
	// namespace).
	packet bool
	launch func(*exec.Cmd) error
	// nBig is the timed logins of the -1000 ready rows (-n-1000); inject
	// archives n new messages for an account of the group's server (the
	// ready rows), accounts are that server's accounts and passwords.
	nBig     int
	inject   func(ctx context.Context, to string, n int) error
	accounts map[string]string
}

func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// The peers' stderr is copied into it by a goroutine each (unless it
	// is a file), next to the harness's own log lines.
	stderr = &syncWriter{w: stderr}
	fs := flag.NewFlagSet("pipebind-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: pipebind-bench [flags]\n\nBenchmark logins through an emulated network (see BENCHMARKS.md).\n\nflags:\n")
		fs.PrintDefaults()
	}
	var o benchOpts
	var rtts, only string
	fs.IntVar(&o.n, "n", 20, "timed logins per client and RTT")
	fs.IntVar(&o.warmup, "warmup", 1, "untimed logins first (they fill the warm clients' caches)")
	fs.IntVar(&o.nBig, "n-1000", 5, "timed logins of the -packet rows pipebind-ready-1000 and reference-ready-1000 (at most -n): each archives 1,000 more messages, and Prosody's pages slow as the archive grows")
	fs.StringVar(&rtts, "rtt", "20ms,50ms,100ms", "emulated round-trip times, comma-separated")
	fs.DurationVar(&o.jitter, "jitter", 0, "one-way jitter (uniform ±)")
	fs.Int64Var(&o.bandwidth, "bandwidth", 0, "bytes/s per direction (0: unlimited)")
	fs.BoolVar(&o.prosody, "prosody", false, "also start a Prosody 13 (internal/prosodytest) and bench against it")
	fs.BoolVar(&o.inproc, "inproc", true, "bench against the in-process server")
	fs.BoolVar(&o.packet, "packet", false, "also run the headline rows on the packet-level path (internal/pathemu; needs root and /dev/net/tun): Prosody 13 with and without TCP Fast Open, floor, pipebind warm FAST, the time to ready (pipebind-ready*, reference-ready*), mellium, go-xmpp FAST")
	fs.StringVar(&o.goxmpp, "goxmpp", "", "go-xmpp peer binary (cd bench && go build ./cmd/goxmpp-peer); empty skips the go-xmpp rows")
	fs.StringVar(&only, "clients", "", "comma-separated client kinds to run (default all)")
	fs.IntVar(&o.storm, "storm", 0, "reconnect storm: this many concurrent bot logins to the in-process server (0: skip)")
	fs.DurationVar(&o.stormRTT, "storm-rtt", 50*time.Millisecond, "RTT of the storm")
	fs.IntVar(&o.catchup, "catchup", 0, "MAM catch-up: archive this many messages in a Prosody of its own (needs -prosody) and time pipebind's sync against Prosody's own serving time (0: skip)")
	fs.IntVar(&o.catchupRuns, "catchup-runs", 3, "timed passes of each catch-up client")
	fs.DurationVar(&o.catchupRTT, "catchup-rtt", 0, "emulated RTT of the catch-up (0: straight to Prosody)")
	fs.IntVar(&o.serverCost, "server-cost", 100, "with -prosody: time Prosody's answer to each kind of first flight this many times, straight to it (0: skip)")
	fs.StringVar(&o.profile, "profile", "", "write a CPU profile of the pipebind-warm-fast peer process to this file: -profile-n FAST logins (and closes) straight to the server, no proxy (Prosody with -prosody, else the in-process server)")
	fs.IntVar(&o.profileN, "profile-n", 1000, "logins of -profile")
	fs.StringVar(&o.stormHeap, "storm-profile", "", "write a heap profile of the storm's client process, every session logged in and idle, to this file")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "per-login timeout")
	fs.BoolVar(&o.jsonOut, "json", false, "print one JSON object instead of the table")
	fs.StringVar(&o.markdown, "markdown", "", "also write the report as Markdown to this file (BENCHMARKS.md)")
	fs.BoolVar(&o.inprocPeers, "inprocess-peers", false, "run the pipebind clients in this process (tests; CPU and allocations then include the servers and the proxy)")
	fs.StringVar(&o.peer.Kind, "peer", "", "internal: serve the peer protocol for this client kind on stdin/stdout")
	fs.StringVar(&o.peer.Addr, "addr", "", "internal (-peer): proxy address")
	fs.StringVar(&o.peer.Domain, "domain", "", "internal (-peer): XMPP domain")
	fs.StringVar(&o.peer.CAFile, "ca", "", "internal (-peer): CA PEM file")
	fs.StringVar(&o.peer.User, "user", "", "internal (-peer): localpart")
	fs.StringVar(&o.peer.CPUProfile, "cpuprofile", "", "internal (-peer): write a CPU profile of the logins after the first to this file")
	fs.StringVar(&o.peer.HeapProfile, "heapprofile", "", "internal (-peer): write a heap profile of the idle storm to this file")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	if o.peer.Kind != "" {
		o.peer.Password = os.Getenv(benchPasswordEnv)
		o.peer.Timeout = o.timeout
		return runPeer(ctx, o.peer, os.Stdin, stdout)
	}
	for _, s := range strings.Split(rtts, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return fmt.Errorf("-rtt: bad duration %q", s)
		}
		o.rtts = append(o.rtts, d)
	}
	if only != "" {
		o.only = strings.Split(only, ",")
	}
	if o.n < 1 {
		return errors.New("-n must be at least 1")
	}
	if o.nBig < 1 {
		return errors.New("-n-1000 must be at least 1")
	}
	if o.catchup > 0 && !o.prosody {
		return errors.New("-catchup needs -prosody")
	}
	if o.catchupRuns < 1 {
		return errors.New("-catchup-runs must be at least 1")
	}
	if o.profile != "" && o.profileN < 1 {
		return errors.New("-profile-n must be at least 1")
	}
	// The command as it reads in the report: temporary paths by their
	// base names.
	o.command = "pipebind-bench " + strings.Join(args, " ")
	for _, f := range []string{o.goxmpp, o.profile, o.stormHeap} {
		if f != "" {
			o.command = strings.ReplaceAll(o.command, f, filepath.Base(f))
		}
	}
	rep, err := runBench(ctx, o, stderr)
	if err != nil {
		return err
	}
	if o.markdown != "" {
		if err := os.WriteFile(o.markdown, []byte(renderMarkdown(rep)), 0o644); err != nil {
			return err
		}
	}
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprint(stdout, renderText(rep))
	return nil
}

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// peerProc is a running peer (a process, or a goroutine with -inprocess-peers).
type peerProc struct {
	kind     string
	in       io.WriteCloser
	dec      *json.Decoder
	wait     func() error
	stopOnce sync.Once
}

func (p *peerProc) call(cmd string) (peerReply, error) {
	var r peerReply
	if _, err := io.WriteString(p.in, cmd+"\n"); err != nil {
		return r, fmt.Errorf("%s: %w", p.kind, err)
	}
	if err := p.dec.Decode(&r); err != nil {
		return r, fmt.Errorf("%s: peer: %w", p.kind, err)
	}
	return r, nil
}

// stop ends the peer's input and waits for it to exit; later calls do
// nothing.
func (p *peerProc) stop() {
	p.stopOnce.Do(func() {
		p.in.Close()
		_ = p.wait()
	})
}

type benchTarget struct {
	domain, caFile, user, password string
}

func startPeer(ctx context.Context, o benchOpts, kind string, goxmpp bool, addr string, t benchTarget, stderr io.Writer) (*peerProc, error) {
	return startPeerProfiled(ctx, o, kind, goxmpp, addr, t, "", "", stderr)
}

// startPeerProfiled is startPeer; a pipebind peer with a non-empty
// cpuProfile writes a CPU profile of its logins after the first to it, one
// with a non-empty heapProfile a heap profile of its idle storm.
func startPeerProfiled(ctx context.Context, o benchOpts, kind string, goxmpp bool, addr string, t benchTarget, cpuProfile, heapProfile string, stderr io.Writer) (*peerProc, error) {
	pc := peerConfig{Kind: kind, Addr: addr, Domain: t.domain, CAFile: t.caFile, User: t.user, Password: t.password, Timeout: o.timeout,
		CPUProfile: cpuProfile, HeapProfile: heapProfile}
	if o.inprocPeers && !goxmpp {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		done := make(chan error, 1)
		go func() {
			err := runPeer(ctx, pc, inR, outW)
			outW.CloseWithError(io.EOF)
			done <- err
		}()
		return &peerProc{kind: kind, in: inW, dec: json.NewDecoder(outR), wait: func() error { return <-done }}, nil
	}
	var argv []string
	if goxmpp {
		argv = []string{o.goxmpp}
	} else {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		argv = []string{exe}
	}
	argv = append(argv, "-peer", kind, "-addr", addr, "-domain", t.domain, "-ca", t.caFile, "-user", t.user, "-timeout", o.timeout.String())
	if cpuProfile != "" {
		argv = append(argv, "-cpuprofile", cpuProfile)
	}
	if heapProfile != "" {
		argv = append(argv, "-heapprofile", heapProfile)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), benchPasswordEnv+"="+t.password)
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	start := cmd.Start
	if o.launch != nil {
		start = func() error { return o.launch(cmd) }
	}
	if err := start(); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	return &peerProc{kind: kind, in: in, dec: json.NewDecoder(bufio.NewReader(out)), wait: cmd.Wait}, nil
}

func (o benchOpts) wants(c benchClient, server string) bool {
	if !slices.Contains(c.servers, server) {
		return false
	}
	if c.goxmpp && o.goxmpp == "" {
		return false
	}
	return len(o.only) == 0 || slices.Contains(o.only, c.name) || c.name == "floor"
}

func runBench(ctx context.Context, o benchOpts, logw io.Writer) (*benchReport, error) {
	rep := &benchReport{Command: o.command, Date: time.Now().UTC().Format(time.RFC3339), Machine: machine()}
	tmp, err := os.MkdirTemp("", "pipebind-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	writeCA := func(name string, pem []byte) (string, error) {
		f := filepath.Join(tmp, name+"-ca.pem")
		return f, os.WriteFile(f, pem, 0o600)
	}

	type server struct {
		name          string
		addr, draft   string
		target, dtarg benchTarget
	}
	var servers []server
	if o.prosody {
		fmt.Fprintln(logw, "bench: starting Prosody")
		ps, err := prosodytest.Start(ctx, prosodytest.Options{})
		if err != nil {
			return nil, fmt.Errorf("prosody: %w", err)
		}
		defer ps.Close()
		ca, err := writeCA("prosody", ps.CAPEM)
		if err != nil {
			return nil, err
		}
		servers = append(servers, server{name: "prosody", addr: ps.DirectTLSAddr,
			target: benchTarget{ps.Domain, ca, "alice", ps.Users["alice"]}})
	}
	if o.inproc {
		users := map[string]string{"alice": "alice-pw-1"}
		std := xmpptest.NewServer(xmpptest.Config{Users: users})
		defer std.Close()
		draft := xmpptest.NewServer(xmpptest.Config{Users: users, Bind2Draft: true})
		defer draft.Close()
		ca, err := writeCA("inproc", std.CAPEM())
		if err != nil {
			return nil, err
		}
		dca, err := writeCA("inproc-draft", draft.CAPEM())
		if err != nil {
			return nil, err
		}
		servers = append(servers, server{name: "inproc", addr: std.DirectTLSAddr(), draft: draft.DirectTLSAddr(),
			target: benchTarget{std.Domain(), ca, "alice", "alice-pw-1"},
			dtarg:  benchTarget{draft.Domain(), dca, "alice", "alice-pw-1"}})
	}

	if o.packet { // the headline rows first
		rows, err := packetBench(ctx, o, rep, tmp, logw)
		if err != nil {
			return nil, err
		}
		rep.Rows = append(rep.Rows, rows...)
	}
	for _, rtt := range o.rtts {
		for _, srv := range servers {
			cfg := netem.Config{Latency: rtt / 2, Jitter: o.jitter, Bandwidth: o.bandwidth}
			px, err := netem.New(srv.addr, cfg)
			if err != nil {
				return nil, err
			}
			var dpx *netem.Proxy
			if srv.draft != "" {
				if dpx, err = netem.New(srv.draft, cfg); err != nil {
					px.Close()
					return nil, err
				}
			}
			var dp benchPath
			if dpx != nil {
				dp = proxyPath{dpx}
			}
			rows, err := benchGroup(ctx, o, srv.name, rtt, proxyPath{px}, dp, srv.target, srv.dtarg, rep, logw)
			px.Close()
			if dpx != nil {
				dpx.Close()
			}
			if err != nil {
				return nil, err
			}
			rep.Rows = append(rep.Rows, rows...)
		}
	}
	rep.Ratios = ratios(rep.Rows)
	for _, srv := range servers {
		if srv.name == "prosody" && o.serverCost > 0 {
			fmt.Fprintln(logw, "bench: Prosody's time for each first flight")
			if rep.ServerCosts, err = serverCosts(ctx, o.serverCost, srv.addr, srv.target); err != nil {
				return nil, fmt.Errorf("server cost: %w", err)
			}
		}
	}
	if o.profile != "" && len(servers) > 0 {
		srv := servers[0] // Prosody when it runs
		fmt.Fprintf(logw, "bench: CPU profile of %d pipebind-warm-fast logins to %s\n", o.profileN, srv.name)
		if rep.Profile, err = profileLogins(ctx, o, srv.name, srv.addr, srv.target, logw); err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
	}
	if o.storm > 0 {
		st, err := runStorm(ctx, o, tmp, logw)
		if err != nil {
			return nil, err
		}
		rep.Storm = st
	}
	if o.catchup > 0 {
		cu, err := runCatchup(ctx, o, tmp, logw)
		if err != nil {
			return nil, err
		}
		rep.Catchup = cu
	}
	return rep, nil
}

// groupPeer is a row's peer in a group.
type groupPeer struct {
	row  *benchRow
	c    benchClient
	p    *peerProc
	px   benchPath
	user string // the account it logs in as
	n    int    // its timed logins
}

// benchGroup runs every client kind at one RTT against one server,
// interleaved: login i of every kind runs before login i+1 of any, so
// machine noise spreads over all rows alike.
func benchGroup(ctx context.Context, o benchOpts, server string, rtt time.Duration, px, dpx benchPath, t, dt benchTarget, rep *benchReport, logw io.Writer) ([]*benchRow, error) {
	var peers []*groupPeer
	defer func() {
		for _, l := range peers {
			l.p.stop()
		}
	}()
	rows, peers, err := startGroup(ctx, o, server, rtt, px, dpx, t, dt, logw)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logw, "bench: %s at RTT %v: %d clients × (%d warm-up + %d) logins\n", server, rtt, len(peers), o.warmup, o.n)
	for i := range o.warmup + o.n {
		for j := range peers {
			l := peers[(i+j)%len(peers)]
			if i >= o.warmup+l.n {
				continue
			}
			r, st, err := groupLogin(ctx, o, l)
			if err != nil {
				return nil, err
			}
			if i < o.warmup {
				if r.Err != "" {
					fmt.Fprintf(logw, "bench: %s %s warm-up: %s\n", server, l.row.Client, r.Err)
				}
				continue
			}
			l.row.add(r, st)
		}
	}
	for _, r := range rows {
		r.finish()
	}
	var floor float64
	for _, r := range rows {
		if r.Client == "floor" {
			floor = r.MedianMS
		}
	}
	for _, r := range rows {
		if floor > 0 && r.MedianMS > 0 {
			r.VsFloor = r.MedianMS / floor
		}
	}
	return rows, nil
}

// startGroup starts the peers of a group's rows (the rows come back in
// display order, pending ones included) and prepares those of the ready
// rows: a row whose preparation failed counts every login as failed.
func startGroup(ctx context.Context, o benchOpts, server string, rtt time.Duration, px, dpx benchPath, t, dt benchTarget, logw io.Writer) ([]*benchRow, []*groupPeer, error) {
	var rows []*benchRow
	var peers []*groupPeer
	fail := func(err error) ([]*benchRow, []*groupPeer, error) {
		for _, l := range peers {
			l.p.stop()
		}
		return nil, nil, err
	}
	for _, c := range benchClients {
		if !o.wants(c, server) {
			continue
		}
		row := &benchRow{Server: server, RTTms: ms(rtt), Client: c.name, Pending: c.pending, Note: c.note}
		rows = append(rows, row)
		if c.pending != "" {
			continue
		}
		proxy, target := px, t
		if c.draft {
			if dpx == nil {
				continue
			}
			proxy, target = dpx, dt
		}
		l := &groupPeer{row: row, c: c, px: proxy, user: target.user, n: o.n}
		if c.big {
			l.n = min(o.n, o.nBig)
		}
		if c.ready {
			l.user = readyUser(c.name, rtt)
			pw, ok := o.accounts[l.user]
			if !ok {
				row.N, row.Failed, row.FirstErr = l.n, l.n, "no account "+l.user+" on the server (the ready rows need -packet)"
				continue
			}
			target.user, target.password = l.user, pw
		}
		p, err := startPeer(ctx, o, c.peerKind(), c.goxmpp, proxy.addr(), target, logw)
		if err != nil {
			return fail(err)
		}
		l.p = p
		if c.ready {
			fmt.Fprintf(logw, "bench: %s at RTT %v: priming %s\n", server, rtt, c.name)
			r, err := p.call("prepare")
			if err != nil {
				return fail(err)
			}
			if r.Err != "" {
				p.stop()
				row.N, row.Failed, row.FirstErr = l.n, l.n, "prepare: "+r.Err
				continue
			}
		}
		peers = append(peers, l)
	}
	return rows, peers, nil
}

// readyUser is the account of a ready row at rtt: one per row and group,
// so that no row sees another's messages and each archive grows only by
// its own row's logins.
func readyUser(client string, rtt time.Duration) string {
	return fmt.Sprintf("%s-%gms", client, ms(rtt))
}

// groupLogin runs one login of a group's peer and closes it: first, for a
// row that asks for it, the new messages are archived (untimed, before
// the path's mark); a failed injection is a failed login.
func groupLogin(ctx context.Context, o benchOpts, l *groupPeer) (peerReply, pathStats, error) {
	var st pathStats
	if l.c.inject > 0 {
		err := errors.New("no injector: the ready rows need -packet")
		if o.inject != nil {
			err = o.inject(ctx, l.user, l.c.inject)
		}
		if err != nil {
			return peerReply{Err: oneLine(fmt.Errorf("archiving %d new messages: %w", l.c.inject, err))}, st, nil
		}
	}
	n0 := l.px.mark()
	r, err := l.p.call("login")
	if err != nil {
		return r, st, err
	}
	if r.Err == "" {
		st = l.px.stats(n0, r)
	}
	if _, err := l.p.call("close"); err != nil {
		return r, st, err
	}
	return r, st, nil
}

// answeredStats is netem's StatsSinceBefore(n0, until) with one change: a
// connection's last flight counts only if server bytes followed it before
// until. A write the client does not wait for (the initial presence every
// XMPP row writes before its login call returns) is not a round trip, and
// whether the proxy read it before the client took its end time is a race.
func answeredStats(px *netem.Proxy, n0 int, until time.Time) (netem.Stats, int) {
	cs := px.Conns()
	n0 = min(n0, len(cs))
	var sum netem.Stats
	for _, c := range cs[n0:] {
		st := c.StatsBefore(until)
		if st.Flights > 0 {
			// The last flight's start is the latest t with one flight
			// fewer before it: StatsBefore counts reads strictly before t.
			lo, hi := c.Accepted.Add(-time.Second), until
			for hi.Sub(lo) > time.Nanosecond {
				mid := lo.Add(hi.Sub(lo) / 2)
				if c.StatsBefore(mid).Flights == st.Flights {
					hi = mid
				} else {
					lo = mid
				}
			}
			if c.StatsBefore(hi).BytesDown == st.BytesDown {
				st.Flights-- // nothing came back before the end
			}
		}
		sum = sum.Add(st)
	}
	return sum, len(cs) - n0
}

func (r *benchRow) add(p peerReply, st pathStats) {
	r.N++
	if p.Err != "" {
		r.Failed++
		if r.FirstErr == "" {
			r.FirstErr = p.Err
		}
		return
	}
	r.ns = append(r.ns, p.NS)
	r.rts = append(r.rts, float64(st.flights-st.handshake))
	r.fl = append(r.fl, float64(st.flights))
	r.cn = append(r.cn, float64(st.conns))
	r.up = append(r.up, float64(st.bytesUp))
	r.down = append(r.down, float64(st.bytesDown))
	r.SYNDataAccepted += st.synData
	r.cpu = append(r.cpu, float64(p.CPUNS)/1e6)
	r.al = append(r.al, float64(p.Allocs))
	r.alb = append(r.alb, float64(p.AllocBytes)/1024)
	r.crt = append(r.crt, float64(p.ClientRT))
	r.cache = append(r.cache, float64(p.CacheNS)/1e6)
	r.cacheWait = append(r.cacheWait, float64(p.CacheWaitNS)/1e6)
	if p.ReadyNS > 0 {
		r.ready = append(r.ready, float64(p.ReadyNS)/1e6)
	}
	r.fetched = append(r.fetched, float64(p.Fetched))
	r.Path, r.Mechanism, r.TLS = p.Path, p.Mechanism, p.TLS
}

func (r *benchRow) finish() {
	if len(r.ns) == 0 {
		return
	}
	r.MedianMS = ms(percentile(r.ns, 0.5))
	r.P95MS = ms(percentile(r.ns, 0.95))
	r.RoundTrips, r.Flights, r.Conns = median(r.rts), median(r.fl), median(r.cn)
	r.BytesUp, r.BytesDown = median(r.up), median(r.down)
	r.CPUms, r.Allocs, r.AllocKB, r.ClientRT = median(r.cpu), median(r.al), median(r.alb), median(r.crt)
	r.CacheMS, r.CacheWaitMS = median(r.cache), median(r.cacheWait)
	r.ReadyMS, r.Fetched = median(r.ready), median(r.fetched)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratios compares pipebind's best warm row with its peers, per server and RTT.
func ratios(rows []*benchRow) []ratioRow {
	type key struct {
		s string
		r float64
	}
	groups := map[key][]*benchRow{}
	var keys []key
	for _, r := range rows {
		k := key{r.Server, r.RTTms}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	var out []ratioRow
	for _, k := range keys {
		get := func(name string) float64 {
			for _, r := range groups[k] {
				if r.Client == name && r.Failed == 0 && r.MedianMS > 0 {
					return r.MedianMS
				}
			}
			return 0
		}
		rr := ratioRow{Server: k.s, RTTms: k.r, FloorMS: get("floor")}
		for _, name := range warmRows {
			if v := get(name); v > 0 && (rr.PipebindMS == 0 || v < rr.PipebindMS) {
				rr.PipebindMS, rr.PipebindClient = v, name
			}
		}
		if rr.PipebindMS == 0 {
			continue
		}
		over := func(v, base float64) float64 {
			if v == 0 || base == 0 {
				return 0
			}
			return v / base
		}
		var best float64
		for _, name := range []string{"goxmpp-fast", "goxmpp-plain", "goxmpp-scram"} {
			if v := get(name); v > 0 && (best == 0 || v < best) {
				best, rr.GoxmppBest = v, name
			}
		}
		scram, mellium := get("goxmpp-scram"), get("mellium-classic")
		rr.VsFloor = over(rr.PipebindMS, rr.FloorMS)
		rr.VsGoxmppBest = over(best, rr.PipebindMS)
		rr.VsGoxmppSCRAM = over(scram, rr.PipebindMS)
		rr.VsMellium = over(mellium, rr.PipebindMS)
		rr.VsClassicOwn = over(get("pipebind-classic"), rr.PipebindMS)
		for _, r := range groups[k] {
			if !strings.HasPrefix(r.Client, "pipebind-") || r.Failed != 0 || r.MedianMS == 0 {
				continue
			}
			rr.PerRow = append(rr.PerRow, rowRatio{Client: r.Client, MedianMS: r.MedianMS, RoundTrips: r.RoundTrips,
				VsFloor: over(r.MedianMS, rr.FloorMS), VsGoxmppBest: over(best, r.MedianMS),
				VsGoxmppSCRAM: over(scram, r.MedianMS), VsMellium: over(mellium, r.MedianMS)})
		}
		out = append(out, rr)
	}
	return out
}

// profileResult describes the CPU profile of -profile.
type profileResult struct {
	File   string  `json:"file"`
	Server string  `json:"server"`
	Logins int     `json:"logins"`
	CPUms  float64 `json:"cpu_ms_per_login"` // median, as the peer measured it
	MS     float64 `json:"median_ms"`
	// Top is "go tool pprof -top" of the profile; empty when the Go
	// toolchain is not at hand.
	Top string `json:"top,omitempty"`
}

// profileLogins runs the pipebind-warm-fast peer with a CPU profile
// straight to the server (no proxy: the profile is of CPU, not waiting):
// one untimed login, then o.profileN logins and closes.
func profileLogins(ctx context.Context, o benchOpts, server, addr string, t benchTarget, logw io.Writer) (*profileResult, error) {
	file, err := filepath.Abs(o.profile)
	if err != nil {
		return nil, err
	}
	p, err := startPeerProfiled(ctx, o, "pipebind-warm-fast", false, addr, t, file, "", logw)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	var ns []int64
	var cpu []float64
	for i := range o.profileN + 1 {
		r, err := p.call("login")
		if err != nil {
			return nil, err
		}
		if r.Err != "" {
			return nil, fmt.Errorf("login %d: %s", i, r.Err)
		}
		if _, err := p.call("close"); err != nil {
			return nil, err
		}
		if i > 0 {
			ns = append(ns, r.NS)
			cpu = append(cpu, float64(r.CPUNS)/1e6)
		}
	}
	p.stop() // the peer writes the profile when its input ends
	res := &profileResult{File: o.profile, Server: server, Logins: o.profileN, CPUms: median(cpu), MS: ms(percentile(ns, 0.5))}
	if !o.inprocPeers {
		res.Top = pprofTop(ctx, file, logw, "-cum", "-nodecount=45", `-hide=^main\.|^runtime\.main$`)
	}
	return res, nil
}

// pprofTop is "go tool pprof -top" of a profile this binary wrote, or
// empty when the Go toolchain is not at hand.
func pprofTop(ctx context.Context, file string, logw io.Writer, args ...string) string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	argv := append([]string{"tool", "pprof", "-top"}, args...)
	out, err := exec.CommandContext(ctx, "go", append(argv, exe, file)...).Output()
	if err != nil {
		fmt.Fprintf(logw, "bench: go tool pprof: %v\n", err)
		return ""
	}
	return string(out)
}

// stormStats summarizes one round of the storm.
type stormStats struct {
	OK int `json:"ok"`
	// AfterP50MS: Dial's time after the login itself (recording it in the
	// cache, starting the session), median.
	AfterP50MS float64 `json:"after_login_p50_ms"`
	Failed     int     `json:"failed"`
	FirstErr   string  `json:"first_err,omitempty"`
	P50MS      float64 `json:"p50_ms"`
	P99MS      float64 `json:"p99_ms"`
	MaxMS      float64 `json:"max_ms"`
	WallMS     float64 `json:"wall_ms"`
	// CacheWriteFailed: logins whose record could not be written to the
	// shared cache.
	CacheWriteFailed int64 `json:"cache_write_failed,omitempty"`
}

func roundStats(r stormRound) stormStats {
	return stormStats{OK: len(r.LoginNS), AfterP50MS: ms(percentile(r.AfterNS, 0.5)), Failed: r.Failed, FirstErr: r.FirstErr,
		P50MS: ms(percentile(r.LoginNS, 0.5)), P99MS: ms(percentile(r.LoginNS, 0.99)), MaxMS: ms(percentile(r.LoginNS, 1)),
		WallMS: float64(r.WallNS) / 1e6, CacheWriteFailed: r.CacheWriteFailed}
}

func runStorm(ctx context.Context, o benchOpts, tmp string, logw io.Writer) (*stormResult, error) {
	users := make(map[string]string, o.storm)
	for i := range o.storm {
		users["bot"+strconv.Itoa(i)] = "bot-pw"
	}
	srv := xmpptest.NewServer(xmpptest.Config{Users: users})
	defer srv.Close()
	ca := filepath.Join(tmp, "storm-ca.pem")
	if err := os.WriteFile(ca, srv.CAPEM(), 0o600); err != nil {
		return nil, err
	}
	px, err := netem.New(srv.DirectTLSAddr(), netem.Config{Latency: o.stormRTT / 2, Jitter: o.jitter, Bandwidth: o.bandwidth})
	if err != nil {
		return nil, err
	}
	defer px.Close()
	fmt.Fprintf(logw, "bench: storm of %d logins at RTT %v\n", o.storm, o.stormRTT)
	heap := ""
	if o.stormHeap != "" {
		if heap, err = filepath.Abs(o.stormHeap); err != nil {
			return nil, err
		}
	}
	p, err := startPeerProfiled(ctx, o, "storm", false, px.Addr(), benchTarget{srv.Domain(), ca, "bot", "bot-pw"}, "", heap, logw)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	r, err := p.call("storm " + strconv.Itoa(o.storm))
	if err != nil {
		return nil, err
	}
	if r.Storm == nil {
		return nil, fmt.Errorf("storm: %s", r.Err)
	}
	if _, err := p.call("close"); err != nil {
		return nil, err
	}
	s := r.Storm
	res := &stormResult{N: o.storm, RTTms: ms(o.stormRTT), First: roundStats(s.First), stormStats: roundStats(s.stormRound), FAST: s.FAST,
		PeakRSSMiB: float64(s.MaxRSS) / (1 << 20), Goroutines: s.Goroutines}
	if res.OK > 0 && s.IdleBytes > s.BaseBytes {
		res.PerSessionKB = float64(s.IdleBytes-s.BaseBytes) / float64(res.OK) / 1024
		if s.IdleStack > s.BaseStack {
			res.StackPerSessionKB = float64(s.IdleStack-s.BaseStack) / float64(res.OK) / 1024
		}
	}
	if heap != "" && !o.inprocPeers {
		res.HeapTop = pprofTop(ctx, heap, logw, "-sample_index=inuse_space", "-nodecount=25")
	}
	return res, nil
}

func machine() machineInfo {
	m := machineInfo{Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if _, v, ok := strings.Cut(l, ":"); ok {
					m.CPU = strings.TrimSpace(v)
				}
				break
			}
		}
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "prosody").Output(); err == nil {
		m.Prosody = strings.TrimSpace(string(out))
	}
	return m
}
