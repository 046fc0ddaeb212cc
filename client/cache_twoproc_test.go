package client_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
	"github.com/pipebind/pipebind/mamsync"
)

// Helper processes: the test binary run again with
// -test.run=^TestClientHelperProcess$ and this environment. Those that log
// in connect to the parent's in-process server.
const (
	helperJobEnv    = "PIPEBIND_CLIENT_HELPER" // the job; unset in a normal run
	helperDBEnv     = "PIPEBIND_CLIENT_HELPER_DB"
	helperAddrEnv   = "PIPEBIND_CLIENT_HELPER_ADDR"
	helperCAEnv     = "PIPEBIND_CLIENT_HELPER_CA" // PEM
	helperDomainEnv = "PIPEBIND_CLIENT_HELPER_DOMAIN"
	helperPageEnv   = "PIPEBIND_CLIENT_HELPER_PAGE"
	helperHoldEnv   = "PIPEBIND_CLIENT_HELPER_HOLD"
	helperWantEnv   = "PIPEBIND_CLIENT_HELPER_WANT"
	helperPassEnv   = "PIPEBIND_CLIENT_HELPER_PASSWORD" // alice's; default alice-pw
)

// TestClientHelperProcess is not a test: it is a helper process's main. See
// helperMain for the jobs.
func TestClientHelperProcess(t *testing.T) {
	job := os.Getenv(helperJobEnv)
	if job == "" {
		return // not a helper: nothing to do
	}
	if err := helperMain(job); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// helperMain runs one job:
//
//   - "sync" (this file): for every line read on stdin, until stdin closes,
//     logs in as alice with the cache file, syncs, and prints each message
//     delivered and the report.
//   - "lock-immediate", "lock-exclusive", "readonly-dial"
//     (cache_dbfault_test.go).
func helperMain(job string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path := os.Getenv(helperDBEnv)
	switch job {
	case "sync":
		return helperSync(ctx, path)
	case "lock-immediate", "lock-exclusive":
		return helperLock(ctx, job, path)
	case "readonly-dial":
		return helperReadOnlyDial(ctx, path)
	case "online":
		return helperOnline(ctx, path)
	}
	return fmt.Errorf("unknown job %q", job)
}

// helperConfig is alice's config for the parent's server.
func helperConfig() (client.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(os.Getenv(helperCAEnv))) {
		return client.Config{}, errors.New("no CA in the environment")
	}
	domain := os.Getenv(helperDomainEnv)
	j, err := jid.Parse("alice@" + domain)
	if err != nil {
		return client.Config{}, err
	}
	pw := os.Getenv(helperPassEnv)
	if pw == "" {
		pw = "alice-pw"
	}
	return client.Config{
		JID:       j,
		Password:  pw,
		Addr:      os.Getenv(helperAddrEnv),
		TLS:       client.TLSDirect,
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: domain, MinVersion: tls.VersionTLS12},
	}, nil
}

// helperEnv is the environment of a helper that logs in to s.
func helperEnv(s *xmpptest.Server, job, path string, extra ...string) []string {
	return append(append(os.Environ(),
		helperJobEnv+"="+job,
		helperDBEnv+"="+path,
		helperAddrEnv+"="+s.DirectTLSAddr(),
		helperCAEnv+"="+string(s.CAPEM()),
		helperDomainEnv+"="+s.Domain()), extra...)
}

// helperSync is the "sync" job: each round (one per line on stdin) dials
// with the cache file, waits for the sync, prints
// "delivered ID" for every OnMessage, then "report JSON", then "synced".
func helperSync(ctx context.Context, path string) error {
	cfg, err := helperConfig()
	if err != nil {
		return err
	}
	cfg.CachePath = path
	cfg.SyncPageSize, _ = strconv.Atoi(os.Getenv(helperPageEnv))
	out := bufio.NewWriter(os.Stdout)
	var delivered []string
	cfg.OnMessage = func(m cache.StoredMessage) { delivered = append(delivered, m.StanzaID) } // one goroutine at a time
	in := bufio.NewReader(os.Stdin)
	for {
		if _, err := in.ReadString('\n'); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		c, err := client.Dial(ctx, cfg)
		if err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		rep, err := c.SyncReport(ctx)
		c.Close() // waits for the sync's goroutines: delivered is complete
		if err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		for _, id := range delivered {
			fmt.Fprintf(out, "delivered %s\n", id)
		}
		delivered = delivered[:0]
		b, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "report %s\nsynced\n", b)
		if err := out.Flush(); err != nil {
			return err
		}
	}
}

// proc is a running helper process.
type proc struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan struct{}
	err   bytes.Buffer
}

// startProc runs the test binary exe as a helper with env.
func startProc(t *testing.T, name, exe string, env []string, setup func(*exec.Cmd)) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	p := &proc{t: t, name: name, lines: make(chan string, 64), done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, exe, "-test.run=^TestClientHelperProcess$", "-test.count=1")
	p.cmd.Env = env
	p.cmd.Stderr = &p.err
	if setup != nil {
		setup(p.cmd)
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		for range p.lines { // let the reader finish
		}
		<-p.done
		_ = p.cmd.Wait()
		cancel()
	})
	return p
}

// send writes a line to the helper's stdin.
func (p *proc) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

// next returns the helper's next line of output that starts with one of
// prefixes (others, such as go test's own, are skipped).
func (p *proc) next(prefixes ...string) string {
	p.t.Helper()
	timer := time.NewTimer(2 * time.Minute)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				<-p.done
				p.t.Fatalf("%s ended before %q: %v\nstderr:\n%s", p.name, prefixes, p.cmd.Wait(), &p.err)
			}
			for _, pre := range prefixes {
				if strings.HasPrefix(line, pre) {
					return line
				}
			}
		case <-timer.C:
			p.t.Fatalf("%s: no %q within 2 minutes", p.name, prefixes)
		}
	}
}

// wait closes stdin and waits for a clean exit.
func (p *proc) wait() {
	p.t.Helper()
	p.stdin.Close()
	for range p.lines {
	}
	<-p.done
	if err := p.cmd.Wait(); err != nil {
		p.t.Fatalf("%s: %v\nstderr:\n%s", p.name, err, &p.err)
	}
}

// TestTwoProcessesSync: two OS processes log in as the same account with the
// same cache file and sync a few thousand archived messages at once, twice
// (the second time the archive has grown). The store must equal the archive
// exactly (no duplicate, no loss, archive order), and each message must be
// delivered (OnMessage) exactly once, by one of the two processes.
func TestTwoProcessesSync(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes") // -short only
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, xmpptest.Config{MAMPageMax: 100})
	s.InjectArchiveBulk("alice", "bob@localhost", 3000, true)
	s.InjectArchiveBulk("alice", "carol@localhost", 200, false)
	path := filepath.Join(t.TempDir(), "cache.db") // fresh: the two race to create it

	var procs []*proc
	for i, page := range []int{100, 37} {
		procs = append(procs, startProc(t, "helper"+strconv.Itoa(i), exe,
			helperEnv(s, "sync", path, helperPageEnv+"="+strconv.Itoa(page)), nil))
	}
	deliveries := map[string]int{}
	round := func(n int) {
		t.Helper()
		for _, p := range procs {
			p.send("go") // both start at once
		}
		stored, fetched := 0, 0
		for _, p := range procs {
			for {
				line := p.next("delivered ", "report ", "synced")
				if id, ok := strings.CutPrefix(line, "delivered "); ok {
					deliveries[id]++
					continue
				}
				if b, ok := strings.CutPrefix(line, "report "); ok {
					var rep mamsync.Report
					if err := json.Unmarshal([]byte(b), &rep); err != nil {
						t.Fatal(err)
					}
					t.Logf("round %d, %s: %+v", n, p.name, rep.Progress)
					stored += rep.Stored
					fetched += rep.Fetched
					continue
				}
				break
			}
		}
		want := archiveIDs(s, "alice")
		if len(deliveries) != len(want) {
			t.Errorf("round %d: %d distinct messages delivered, the archive holds %d", n, len(deliveries), len(want))
		}
		if fetched < stored {
			t.Errorf("round %d: %d stored but only %d fetched", n, stored, fetched)
		}
	}
	round(1)
	s.InjectArchiveBulk("alice", "bob@localhost", 1000, true)
	round(2)
	for _, p := range procs {
		p.wait()
	}

	db, err := cache.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := archiveIDs(s, "alice")
	if err := equalIDs(storeIDs(t, db, "alice@localhost"), want); err != nil {
		t.Fatal(err)
	}
	if n, err := db.CountMessages(context.Background(), "alice@localhost"); err != nil || n != len(want) {
		t.Errorf("CountMessages = %d, %v; want %d", n, err, len(want))
	}
	for _, id := range want {
		if deliveries[id] != 1 {
			t.Errorf("message %s delivered %d times", id, deliveries[id])
		}
	}
	if c, err := db.Cursor(context.Background(), "alice@localhost"); err != nil || c != want[len(want)-1] {
		t.Errorf("cursor %q, %v; want the newest id", c, err)
	}
}
