package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pipebind/pipebind/internal/xmpptest"
)

// probeJSON is what these tests read of probe -json.
type probeJSON struct {
	Mechanism       string             `json:"mechanism"`
	FAST            bool               `json:"fast"`
	PasswordChecked bool               `json:"password_checked"`
	Credential      string             `json:"credential"`
	ScramCache      bool               `json:"scram_keys_cached"`
	TimingsMS       map[string]float64 `json:"timings_ms"`
	CacheFault      *cacheFault        `json:"cache_fault"`
	Warnings        []string           `json:"warnings"`
}

func decodeProbe(t *testing.T, r result) probeJSON {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("probe: exit %d: %s", r.code, r.stderr)
	}
	var p probeJSON
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("probe -json: %v: %q", err, r.stdout)
	}
	return p
}

// TestProbePasswordHonest (issue 16, items 1 and 8): a wrong password with
// a cached FAST token, or with cached SCRAM keys under -no-fast, still logs
// in, and the probe says plainly the password was not checked;
// -verify-password checks it (exit 5 when wrong). Without
// PIPEBIND_PASSWORD and without a terminal, the cached token logs in
// without asking; once it is gone, "no password" is a usage error.
// cache forget drops the credentials, so the next login checks again.
func TestProbePasswordHonest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := newCLIServer(t, xmpptest.Config{})
	right, wrong := []string{"PIPEBIND_PASSWORD=alice-pw"}, []string{"PIPEBIND_PASSWORD=wrong"}
	probe := func(env []string, extra ...string) result {
		return runBin(t, ctx, env, cmdline([]string{"probe", "-json", "-mech", "SCRAM-SHA-256"}, s.flags("c.db"), extra, []string{"alice@localhost"})...)
	}
	if p := decodeProbe(t, probe(right)); !p.PasswordChecked || p.Credential != "password" {
		t.Fatalf("first login: %+v", p)
	}
	if p := decodeProbe(t, probe(wrong)); p.PasswordChecked || p.Credential != "fast-token" || !p.FAST {
		t.Errorf("wrong password, FAST token: %+v; want logged in with the token, password not checked", p)
	}
	text := runBin(t, ctx, wrong, cmdline([]string{"probe"}, s.flags("c.db"), []string{"alice@localhost"})...)
	if text.code != 0 || !strings.Contains(text.stdout, "password     NOT checked: a FAST token from the cache logged in") {
		t.Errorf("the text report does not say the password was not checked:\n%s", text.stdout)
	}
	if p := decodeProbe(t, probe(wrong, "-no-fast")); p.PasswordChecked || p.Credential != "scram-keys" {
		t.Errorf("wrong password, -no-fast, cached SCRAM keys: %+v", p)
	}
	for _, extra := range [][]string{{"-verify-password"}, {"-verify-password", "-no-fast"}} {
		if r := probe(wrong, extra...); r.code != exitAuth || !strings.Contains(r.stderr, "not-authorized") {
			t.Errorf("wrong password %v: exit %d: %s", extra, r.code, r.stderr)
		}
	}
	if p := decodeProbe(t, probe(right, "-verify-password")); !p.PasswordChecked || p.ScramCache || p.FAST {
		t.Errorf("-verify-password: %+v", p)
	}
	// No password and no terminal: the token needs none.
	if p := decodeProbe(t, probe(nil)); !p.FAST {
		t.Errorf("no password, a cached token: %+v", p)
	}
	r := runBin(t, ctx, nil, "cache", "forget", "alice@localhost", "-cache", s.flags("c.db")[7])
	if r.code != 0 || !strings.Contains(r.stdout, "forgot 3 credentials of alice@localhost") {
		t.Fatalf("cache forget: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if r := probe(nil); r.code != exitUsage || !strings.Contains(r.stderr, "no password: set PIPEBIND_PASSWORD") {
		t.Errorf("no password, nothing cached: exit %d: %s", r.code, r.stderr)
	}
	if r := probe(wrong); r.code != exitAuth {
		t.Errorf("wrong password after cache forget: exit %d, want %d: nothing cached stands in for it", r.code, exitAuth)
	}
}
