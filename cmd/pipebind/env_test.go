package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipebind/pipebind/internal/xmpptest"
)

// TestFlagsAnywhereAndEnv (issue 16, items 3 and 4): flags after the
// account, after a subcommand and before the command are all read;
// PIPEBIND_ADDR, PIPEBIND_CA and PIPEBIND_CACHE stand in for -addr, -ca
// and -cache, and a flag wins over its variable.
func TestFlagsAnywhereAndEnv(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := newCLIServer(t, xmpptest.Config{})
	envCacheFile, flagCacheFile := filepath.Join(s.dir, "env.db"), filepath.Join(s.dir, "flag.db")
	env := []string{"PIPEBIND_PASSWORD=alice-pw", "PIPEBIND_ADDR=" + s.DirectTLSAddr(), "PIPEBIND_CA=" + s.ca, "PIPEBIND_CACHE=" + envCacheFile}

	for _, args := range [][]string{
		{"probe", "alice@localhost", "-json", "-tls", "direct"},
		{"-json", "probe", "-tls", "direct", "alice@localhost"},
		{"probe", "-tls=direct", "alice@localhost", "--json"},
	} {
		if p := decodeProbe(t, runBin(t, ctx, env, args...)); p.Mechanism == "" {
			t.Errorf("%v: %+v", args, p)
		}
	}
	if _, err := os.Stat(envCacheFile); err != nil {
		t.Errorf("PIPEBIND_CACHE: %v", err)
	}
	if r := runBin(t, ctx, env, "probe", "alice@localhost", "-cache", flagCacheFile, "-json"); r.code != 0 {
		t.Fatalf("probe -cache: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(flagCacheFile); err != nil {
		t.Errorf("-cache over PIPEBIND_CACHE: %v", err)
	}
	// A flag after the subcommand: this file, not the default one.
	r := runBin(t, ctx, nil, "cache", "show", "-cache", flagCacheFile, "-json")
	var shown struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &shown); r.code != 0 || err != nil || shown.Path != flagCacheFile {
		t.Errorf("cache show -cache FILE: exit %d, %q: %s", r.code, r.stdout, r.stderr)
	}
	// A wrong -addr on the command line wins over PIPEBIND_ADDR.
	if r := runBin(t, ctx, env, "probe", "-addr", "127.0.0.1:1", "alice@localhost"); r.code != exitConnect || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Errorf("-addr over PIPEBIND_ADDR: exit %d: %s", r.code, r.stderr)
	}
	// -h prints the command's help, flags and environment, on stdout.
	if r := runBin(t, ctx, nil, "probe", "-h"); r.code != 0 || !strings.Contains(r.stdout, "usage: pipebind probe [flags] ACCOUNT") ||
		!strings.Contains(r.stdout, "$PIPEBIND_ADDR") || !strings.Contains(r.stdout, "-verify-password") {
		t.Errorf("probe -h: exit %d:\n%s", r.code, r.stdout)
	}
}
