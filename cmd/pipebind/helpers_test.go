package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pipebind/pipebind/internal/xmpptest"
)

// cliServer is the in-process server with its CA in a file, as a user of
// the CLI would reach it.
type cliServer struct {
	*xmpptest.Server
	ca  string // the CA certificate file (-ca)
	dir string // a directory for caches
}

func newCLIServer(t *testing.T, cfg xmpptest.Config) *cliServer {
	t.Helper()
	if cfg.Users == nil {
		cfg.Users = map[string]string{"alice": "alice-pw", "bob": "bob-pw"}
	}
	srv := xmpptest.NewServer(cfg)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, srv.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return &cliServer{Server: srv, ca: ca, dir: dir}
}

// flags reaches the server over Direct TLS with cache file name in the
// server's directory ("" for none).
func (s *cliServer) flags(cache string) []string {
	if cache != "" {
		cache = filepath.Join(s.dir, cache)
	}
	return []string{"-addr", s.DirectTLSAddr(), "-tls", "direct", "-ca", s.ca, "-cache", cache}
}

// result is what a command printed and its exit status.
type result struct {
	stdout, stderr string
	code           int
}

// runCLI runs a command line in this process (run, as main calls it).
func runCLI(ctx context.Context, args ...string) result {
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	return result{stdout.String(), stderr.String(), code}
}

// cmdline joins args (and the flags) for messages.
func cmdline(args ...[]string) []string {
	var all []string
	for _, a := range args {
		all = append(all, a...)
	}
	return all
}

var bin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// pipebindBin builds the pipebind binary once for the test binary (the
// directory is removed by TestMain).
func pipebindBin(t *testing.T) string {
	t.Helper()
	bin.once.Do(func() {
		if bin.dir, bin.err = os.MkdirTemp("", "pipebind-cli-"); bin.err != nil {
			return
		}
		// Reachable by the user nobody (the read-only cache test).
		if bin.err = os.Chmod(bin.dir, 0o755); bin.err != nil {
			return
		}
		bin.path = filepath.Join(bin.dir, "pipebind")
		out, err := exec.Command("go", "build", "-o", bin.path, ".").CombinedOutput()
		if err != nil {
			bin.err = errors.New(string(out))
		}
	})
	if bin.err != nil {
		t.Fatalf("building pipebind: %v", bin.err)
	}
	return bin.path
}

func removeBin() {
	if bin.dir != "" {
		_ = os.RemoveAll(bin.dir)
	}
}

// binCmd is the command to run the binary with args, in an environment
// without the caller's PIPEBIND_* variables and with a private cache
// directory, plus env ("NAME=value").
func binCmd(t *testing.T, ctx context.Context, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, pipebindBin(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PIPEBIND_") && !strings.HasPrefix(kv, "XDG_CACHE_HOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "XDG_CACHE_HOME="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// runBin runs the binary to its end, stdin empty (not a terminal).
func runBin(t *testing.T, ctx context.Context, env []string, args ...string) result {
	t.Helper()
	cmd := binCmd(t, ctx, env, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &stdout, &stderr, strings.NewReader("")
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running pipebind %v: %v", args, err)
	}
	return result{stdout.String(), stderr.String(), code}
}

// lineReader hands out the lines a process writes, as they come.
type lineReader struct {
	ch  chan string
	buf strings.Builder
	mu  sync.Mutex
}

func newLineReader(r io.Reader) *lineReader {
	l := &lineReader{ch: make(chan string, 256)}
	go func() {
		defer close(l.ch)
		var line []byte
		b := make([]byte, 1)
		for {
			if _, err := r.Read(b); err != nil {
				return
			}
			l.mu.Lock()
			l.buf.WriteByte(b[0])
			l.mu.Unlock()
			if b[0] != '\n' {
				line = append(line, b[0])
				continue
			}
			l.ch <- string(line)
			line = line[:0]
		}
	}()
	return l
}

// next returns the next line, or fails the test when ctx ends first or
// the stream ends.
func (l *lineReader) next(t *testing.T, ctx context.Context) string {
	t.Helper()
	select {
	case line, ok := <-l.ch:
		if !ok {
			t.Fatalf("the output ended: %s", l.all())
		}
		return line
	case <-ctx.Done():
		t.Fatalf("no line: %v: %s", ctx.Err(), l.all())
	}
	return ""
}

// waitFor skips lines up to one containing s.
func (l *lineReader) waitFor(t *testing.T, ctx context.Context, s string) string {
	t.Helper()
	for {
		if line := l.next(t, ctx); strings.Contains(line, s) {
			return line
		}
	}
}

func (l *lineReader) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
