package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pipebind/pipebind/internal/xmpptest"
)

// TestCacheTroubleWarns (issue 16, item 2): a corrupt cache file is moved
// aside and a file that cannot be written is used read-only, and each
// costs exactly one warning line on stderr without -v, and a cache_fault
// in the JSON; the login itself succeeds.
func TestCacheTroubleWarns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := newCLIServer(t, xmpptest.Config{})
	// A directory and CA file the user nobody can read (t.TempDir's are
	// private to this user).
	dir, err := os.MkdirTemp("", "pipebind-cachewarn-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, s.CAPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"PIPEBIND_PASSWORD=alice-pw"}
	probe := func(cache string, asNobody bool) result {
		cmd := binCmd(t, ctx, env, "probe", "-json", "-addr", s.DirectTLSAddr(), "-tls", "direct", "-ca", ca, "-cache", cache, "alice@localhost")
		if asNobody && os.Getuid() == 0 {
			// Root writes whatever the modes say: run as nobody.
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			cmd.Env = append(cmd.Env, "XDG_CACHE_HOME="+dir)
		}
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		_ = cmd.Run()
		return result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
	}

	corrupt := filepath.Join(dir, "corrupt.db")
	if err := os.WriteFile(corrupt, []byte(strings.Repeat("not a database ", 400)), 0o600); err != nil {
		t.Fatal(err)
	}
	r := probe(corrupt, false)
	p := decodeProbe(t, r)
	if p.CacheFault == nil || p.CacheFault.Action != "moved-aside" || !strings.HasPrefix(p.CacheFault.MovedTo, corrupt+".corrupt-") {
		t.Errorf("corrupt cache: cache_fault %+v", p.CacheFault)
	}
	if lines := strings.Split(strings.TrimSpace(r.stderr), "\n"); len(lines) != 1 ||
		!strings.HasPrefix(lines[0], "pipebind: warning: cache "+corrupt+" was corrupt: moved aside to ") {
		t.Errorf("corrupt cache: stderr %q, want one warning line", r.stderr)
	}
	if r := probe(corrupt, false); r.stderr != "" || decodeProbe(t, r).CacheFault != nil {
		t.Errorf("the fresh cache: stderr %q", r.stderr)
	}

	readOnly := filepath.Join(dir, "ro.db")
	if r := probe(readOnly, true); r.code != 0 || r.stderr != "" {
		t.Fatalf("creating the cache: exit %d: %s", r.code, r.stderr)
	}
	for _, f := range []string{readOnly, readOnly + "-wal", readOnly + "-shm"} {
		if err := os.Chmod(f, 0o444); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	r = probe(readOnly, true)
	p = decodeProbe(t, r)
	if p.CacheFault == nil || p.CacheFault.Action != "read-only" {
		t.Errorf("read-only cache: cache_fault %+v, warnings %q", p.CacheFault, p.Warnings)
	}
	if lines := strings.Split(strings.TrimSpace(r.stderr), "\n"); len(lines) != 1 ||
		!strings.HasPrefix(lines[0], "pipebind: warning: cache "+readOnly+" is not writable") {
		t.Errorf("read-only cache: stderr %q, want one warning line", r.stderr)
	}
}
