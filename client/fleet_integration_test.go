package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/prosodytest"
)

// fleetSize is the fleet of issue 14: a thousand clients in one process.
const fleetSize = 1000

// fleetWindow is the window in which connections and logins are counted.
const fleetWindow = 100 * time.Millisecond

// fleetBackoff is the fleet's reconnection backoff: the default (Min 250
// ms, Max 30 s), so that the test measures what an application gets.
var fleetBackoff = client.Backoff{}

// TestIntegrationFleet is issue 14's fleet on one cache: a thousand clients
// in one process share one cache file and log in for the first time all at
// once against Prosody, with FAST and reconnection on. Every login stores
// its FAST token (the cache queues the writes of the burst and commits them
// in groups: cache/writer.go), and no cache error (cache.ErrLocked above
// all) reaches a client, its events or its log. Then Prosody restarts (same
// ports, same data): every client comes back (events, not sleeps), with
// its FAST token, and the connections Prosody sees per 100 ms stay under
// the bound the jittered backoff sets (fleetBound); so do the logins, which
// Prosody's own pace bounds further.
//
// The fleet logs in with PLAIN over verified TLS, as the benchmark's storm
// does: SCRAM would cost every first login a PBKDF2 in this process (2 ms,
// 25 ms under the race detector: 25 s of CPU that starves everything else
// on 2 cores). Prosody serves the logins one at a time, 50 to 200 a second
// on 2 shared cores, so the last of a thousand waits up to 20 s: each login
// may take 3 minutes (Config.Timeout), and one that never ends still fails
// the test.
//
// What it needs of the machine and of Prosody: a file descriptor per
// client in this process and in Prosody (raiseOpenFiles lifts the soft
// limit, which Prosody inherits), a listen backlog above the fleet
// (prosodytest sets tcp_backlog 1024; with Prosody's default, 128, the
// SYNs past it are dropped and cost a second each), and no rate limit on
// c2s (prosodytest does not load mod_limits).
func TestIntegrationFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("a thousand clients against Prosody: skipped in -short mode")
	}
	n := fleetSize
	raiseOpenFiles(t, uint64(2*n+1024))
	users := make(map[string]string, n)
	for i := range n {
		users[fmt.Sprintf("bot%d", i)] = fmt.Sprintf("bot%d-pw", i)
	}
	begin := time.Now()
	srv := prosodytest.StartT(t, prosodytest.Options{Users: users})
	t.Logf("Prosody with %d accounts up in %v", n, time.Since(begin).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	db := realOpenCache(t, ctx)

	logs := &fleetLog{}
	rec := &fleetRecorder{allBack: make(chan struct{}), back: make([]bool, n)}
	tlsCfg := srv.TLSConfig()
	config := func(i int) client.Config {
		user := fmt.Sprintf("bot%d", i)
		return client.Config{
			JID: jid.MustParse(user + "@" + srv.Domain), Password: users[user],
			Addr: srv.DirectTLSAddr, TLS: client.TLSDirect, TLSConfig: tlsCfg,
			Mechanisms: []string{"PLAIN"}, Timeout: 3 * time.Minute,
			Cache: db, NoSync: true,
			Reconnect: true, Backoff: fleetBackoff,
			OnEvent:  func(ev client.Event) { rec.event(i, ev) },
			DialFunc: rec.dial,
			Trace:    &client.Trace{LoginDone: func(_ client.Info, err error) { rec.loginDone(err) }},
			Logger:   zerolog.New(logs).Level(zerolog.InfoLevel),
		}
	}

	// The first logins, all at once.
	clients := make([]*client.Client, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		cfg := config(i)
		wg.Go(func() {
			<-start
			clients[i], errs[i] = client.Dial(ctx, cfg)
		})
	}
	defer closeFleet(clients)
	begin = time.Now()
	close(start)
	wg.Wait()
	firstWall := time.Since(begin)
	failed := 0
	for i, err := range errs {
		if err == nil {
			continue
		}
		if failed++; failed <= 5 {
			t.Errorf("bot%d: Dial: %v", i, err)
		}
		if errors.Is(err, cache.ErrLocked) {
			t.Errorf("bot%d: Dial returned a cache error: %v", i, err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d first logins failed", failed, n)
	}
	toks, err := db.ListFastTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	accounts := make(map[string]bool, len(toks))
	for _, tok := range toks {
		accounts[tok.Account] = true
	}
	warns, locked := logs.check(t, "first logins")
	t.Logf("first logins: %d of %d in %v; FAST tokens stored: %d (%d accounts); warnings logged: %d, cache locked: %d",
		n-failed, n, firstWall.Round(time.Millisecond), len(toks), len(accounts), warns, locked)
	if len(toks) != n || len(accounts) != n {
		t.Errorf("the cache holds %d FAST tokens for %d accounts; want %d, one per client", len(toks), len(accounts), n)
	}

	// Prosody restarts; every client comes back.
	begin = time.Now()
	rec.restarting(begin)
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	down := time.Since(begin)
	select {
	case <-rec.allBack:
	case <-ctx.Done():
		t.Fatalf("%d of %d clients back online when the test timed out", rec.report(begin).back, n)
	}
	allBack := time.Since(begin)
	notFAST := 0
	for i, c := range clients {
		if info := c.Info(); !info.FAST {
			if notFAST++; notFAST <= 5 {
				t.Errorf("bot%d after the restart: mechanism %s, FAST %v, token rejected %q; want its FAST token",
					i, info.Mechanism, info.FAST, info.TokenRejected)
			}
		}
	}
	r := rec.report(begin)
	bound := fleetBound(n, fleetWindow, fleetBackoff)
	t.Logf("restart: Prosody listening again after %v, first login after %v, all %d clients back after %v (%d not with FAST); "+
		"per %v: peak %d connections (%d refused while Prosody was down), peak %d logins; bound %d (Backoff.Min %v)",
		down.Round(time.Millisecond), r.firstLogin.Round(time.Millisecond), n, allBack.Round(time.Millisecond), notFAST,
		fleetWindow, r.peakConnects, r.refused, r.peakLogins, bound, backoffMin(fleetBackoff))
	t.Logf("logins per %v from the restart on: %v", fleetWindow, r.logins)
	if r.peakConnects > bound || r.peakLogins > bound {
		t.Errorf("peak per %v: %d connections, %d logins; the backoff bounds both at %d", fleetWindow, r.peakConnects, r.peakLogins, bound)
	}
	logs.check(t, "after the restart")
	if r.lockedEvents > 0 {
		t.Errorf("%d events carried an error matching cache.ErrLocked", r.lockedEvents)
	}
}

// backoffMin is b.Min with its default filled in.
func backoffMin(b client.Backoff) time.Duration {
	if b.Min > 0 {
		return b.Min
	}
	return 250 * time.Millisecond
}

// fleetBound bounds the connections (and so the logins) that n clients
// dropped together make per window w under Backoff b. Each client's first
// attempt comes after a random delay below Min, so its time has a density
// of at most 1/Min, and so has every later attempt's, which adds further
// independent waits to that first one. The second attempt, Min/2 to Min
// after the first, overlaps the first attempts of other clients; the later
// ones spread over ever longer intervals (2·Min, 4·Min, ...). A simulation
// of Backoff.Delay (n = 1000, w = 100 ms, Min = 250 ms, the server down
// 0.05 to 2 s or for good, 20 runs each) puts the peak window at 1.41 to
// 1.47 · n·w/Min; the bound is 1.5 · n·w/Min plus three standard deviations
// of a count of that mean. Without the jitter every client would connect
// in the same window.
func fleetBound(n int, w time.Duration, b client.Backoff) int {
	mean := 1.5 * float64(n) * float64(w) / float64(backoffMin(b))
	return int(math.Ceil(mean + 3*math.Sqrt(mean)))
}

// fleetRecorder records what the fleet's clients see from the restart on:
// connections, logins, and their coming back.
type fleetRecorder struct {
	allBack chan struct{} // closed when every client is back after the restart

	mu       sync.Mutex
	restart  time.Time   // when the restart began (zero before)
	connects []time.Time // TCP connections tried
	refused  int         // of them, refused
	logins   []time.Time // logins done
	back     []bool      // per client: online again
	nBack    int
	locked   int // events whose error matches cache.ErrLocked, from the start
}

func (r *fleetRecorder) restarting(t time.Time) {
	r.mu.Lock()
	r.restart = t
	r.mu.Unlock()
}

// dial is the clients' DialFunc: it counts the connections Prosody sees.
func (r *fleetRecorder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	t := time.Now()
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	r.mu.Lock()
	if !r.restart.IsZero() {
		r.connects = append(r.connects, t)
		if err != nil {
			r.refused++
		}
	}
	r.mu.Unlock()
	return c, err
}

// loginDone is the clients' Trace.LoginDone: it counts the logins.
func (r *fleetRecorder) loginDone(err error) {
	t := time.Now()
	r.mu.Lock()
	if err == nil && !r.restart.IsZero() {
		r.logins = append(r.logins, t)
	}
	r.mu.Unlock()
}

// event is client i's OnEvent.
func (r *fleetRecorder) event(i int, ev client.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ev.Err != nil && errors.Is(ev.Err, cache.ErrLocked) {
		r.locked++
	}
	if r.restart.IsZero() || (ev.Kind != client.EventOnline && ev.Kind != client.EventResumed) || r.back[i] {
		return
	}
	r.back[i] = true
	if r.nBack++; r.nBack == len(r.back) {
		close(r.allBack)
	}
}

type fleetReport struct {
	back, lockedEvents                int
	peakConnects, peakLogins, refused int
	logins                            []int         // per fleetWindow from begin
	firstLogin                        time.Duration // from begin
}

// report counts connections and logins per fleetWindow from begin.
func (r *fleetRecorder) report(begin time.Time) fleetReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	series := func(ts []time.Time) []int {
		s := []int{0}
		for _, t := range ts {
			k := max(0, int(t.Sub(begin)/fleetWindow))
			for len(s) <= k {
				s = append(s, 0)
			}
			s[k]++
		}
		return s
	}
	c, l := series(r.connects), series(r.logins)
	rep := fleetReport{back: r.nBack, lockedEvents: r.locked, refused: r.refused,
		peakConnects: slices.Max(c), peakLogins: slices.Max(l), logins: l}
	if len(r.logins) > 0 {
		rep.firstLogin = slices.MinFunc(r.logins, time.Time.Compare).Sub(begin)
	}
	return rep
}

// fleetLog is the fleet's log. It keeps the warnings and errors and counts
// the lines whose error is a locked database (cache.ErrLocked wraps
// SQLite's "database is locked", SQLITE_BUSY, and "database table is
// locked", SQLITE_LOCKED; the log keeps the text). zerolog writes a line
// per Write.
type fleetLog struct {
	mu     sync.Mutex
	warns  []string // the first few
	nWarns int
	locked int
}

func (l *fleetLog) Write(p []byte) (int, error) {
	var line struct {
		Level string `json:"level"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(p, &line); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if strings.Contains(line.Error, "locked") {
		l.locked++
	}
	if line.Level != "debug" && line.Level != "info" {
		if l.nWarns++; len(l.warns) < 5 {
			l.warns = append(l.warns, strings.TrimSpace(string(p)))
		}
	}
	return len(p), nil
}

// check fails t if anything was logged at warning level or above, or with
// a locked database, since the last check, and returns how many lines of
// each there were.
func (l *fleetLog) check(t *testing.T, phase string) (warns, locked int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	warns, locked = l.nWarns, l.locked
	if locked > 0 {
		t.Errorf("%s: %d log lines carry a locked-database error", phase, locked)
	}
	if warns > 0 {
		t.Errorf("%s: %d warnings or errors logged, the first:\n%s", phase, warns, strings.Join(l.warns, "\n"))
	}
	l.warns, l.nWarns, l.locked = nil, 0, 0
	return warns, locked
}

// closeFleet closes the clients Dial returned, all at once.
func closeFleet(clients []*client.Client) {
	var wg sync.WaitGroup
	for _, c := range clients {
		if c != nil {
			wg.Go(func() { c.Close() })
		}
	}
	wg.Wait()
}
