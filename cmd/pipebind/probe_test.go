package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipebind/pipebind/internal/prosodytest"
	"github.com/pipebind/pipebind/internal/xmpptest"
)

// TestIntegrationProbeProsody runs the probe twice against a real Prosody:
// the second PLAIN login must come from the cache in one round trip.
func TestIntegrationProbeProsody(t *testing.T) {
	srv := prosodytest.StartT(t, prosodytest.Options{})
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, srv.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PIPEBIND_PASSWORD", srv.Users["alice"])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"probe", "-json", "-addr", srv.DirectTLSAddr, "-tls", "direct", "-ca", ca,
		"-cache", filepath.Join(dir, "cache.db"), "-mech", "PLAIN", "alice@" + srv.Domain}

	for i, want := range []struct {
		features, mech string
		rt             int
		fast           bool
	}{{"network", "PLAIN", 2, false}, {"cache", "HT-SHA-256-EXPR", 1, true}} {
		var stdout, stderr bytes.Buffer
		if code := run(ctx, args, &stdout, &stderr); code != 0 {
			t.Fatalf("probe %d: exit %d: %s", i, code, stderr.String())
		}
		var got struct {
			JID        string `json:"jid"`
			Path       string `json:"path"`
			Features   string `json:"features"`
			Mechanism  string `json:"mechanism"`
			RoundTrips int    `json:"round_trips"`
			FAST       bool   `json:"fast"`
			Issued     *struct {
				Mechanism string `json:"mechanism"`
			} `json:"fast_issued"`
			TimingsMS map[string]float64 `json:"timings_ms"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
			t.Fatalf("probe %d: %v in %q", i, err, stdout.String())
		}
		if got.Path != "sasl2" || got.Features != want.features || got.RoundTrips != want.rt || got.Mechanism != want.mech || got.FAST != want.fast {
			t.Errorf("probe %d: %+v, want path sasl2, features %s, %d round trips, %s, fast %v", i, got, want.features, want.rt, want.mech, want.fast)
		}
		if i == 0 && (got.Issued == nil || got.Issued.Mechanism != "HT-SHA-256-EXPR") {
			t.Errorf("probe %d: no FAST token reported as issued: %s", i, stdout.String())
		}
		if !strings.HasPrefix(got.JID, "alice@"+srv.Domain+"/") || got.TimingsMS["total"] <= 0 {
			t.Errorf("probe %d: jid %q timings %v", i, got.JID, got.TimingsMS)
		}
		// Prosody's Bind 2 reports no archive state: null, not [].
		if !strings.Contains(stdout.String(), `"latest_id":null`) || !strings.Contains(stdout.String(), `"unreads":null`) {
			t.Errorf("probe %d: latest_id/unreads not null: %s", i, stdout.String())
		}
		if strings.Contains(stdout.String()+stderr.String(), srv.Users["alice"]) {
			t.Errorf("probe %d: the password appears in the output", i)
		}
	}

	// The readable report of a warm login.
	var stdout, stderr bytes.Buffer
	if code := run(ctx, args[1:][1:], &stdout, &stderr); code != 2 {
		// args without "probe" and "-json" is not a command: usage error.
		t.Errorf("bad command: exit %d", code)
	}
	human := append([]string{"probe"}, args[2:]...)
	stdout.Reset()
	if code := run(ctx, human, &stdout, &stderr); code != 0 {
		t.Fatalf("probe: exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"path         sasl2", "features     cache", "round trips  1 after TLS", "FAST token: no password", "waterfall", "login"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, stdout.String())
		}
	}

	// -resume: the connection is cut under the client; the session resumes.
	stdout.Reset()
	if code := run(ctx, append([]string{"probe", "-resume"}, args[1:]...), &stdout, &stderr); code != 0 {
		t.Fatalf("probe -resume: exit %d: %s", code, stderr.String())
	}
	var resumed struct {
		After struct {
			Resumed bool `json:"sm_resumed"`
			FAST    bool `json:"fast"`
		} `json:"after_drop"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &resumed); err != nil || !resumed.After.Resumed || !resumed.After.FAST {
		t.Errorf("probe -resume: %v, after the cut %+v; want resumed with the FAST token: %s", err, resumed.After, stdout.String())
	}

	// The caller's own -mech is not a downgrade (issue 16, item 3): pinned
	// to the best mechanism Prosody offers, -mech SCRAM-SHA-1 logs in with
	// it; with a token, the probe says the token logged in instead.
	pinned := []string{"probe", "-json", "-addr", srv.DirectTLSAddr, "-tls", "direct", "-ca", ca, "-cache", filepath.Join(dir, "pin.db"), "alice@" + srv.Domain}
	for i, tc := range []struct {
		extra []string
		mech  string
		note  bool
	}{{[]string{"-no-fast"}, "SCRAM-SHA-", false}, {[]string{"-no-fast", "-mech", "SCRAM-SHA-1"}, "SCRAM-SHA-1", false},
		{nil, "SCRAM-SHA-", false}, {[]string{"-mech", "SCRAM-SHA-1"}, "HT-SHA-256-", true}} {
		stdout.Reset()
		stderr.Reset()
		code := run(ctx, cmdline(pinned, tc.extra), &stdout, &stderr) // flags after the account
		var got struct{ Mechanism string }
		if err := json.Unmarshal(stdout.Bytes(), &got); code != 0 || err != nil || !strings.HasPrefix(got.Mechanism, tc.mech) ||
			(i == 0 && !strings.HasSuffix(got.Mechanism, "-PLUS")) || (i == 1 && got.Mechanism != "SCRAM-SHA-1") ||
			strings.Contains(stderr.String(), "-mech chooses") != tc.note {
			t.Errorf("probe %v: exit %d, mechanism %q, stderr %q; want %s…", tc.extra, code, got.Mechanism, stderr.String(), tc.mech)
		}
	}

	// Flags that do not match the server: the TLS class, and a hint that
	// names the flag to change (issue 16, item 5).
	for _, tc := range []struct {
		name string
		args []string
		hint string
	}{
		{"direct on the STARTTLS port", []string{"-addr", srv.C2SAddr, "-tls", "direct", "-ca", ca}, "-tls starttls"},
		{"STARTTLS on the Direct TLS port", []string{"-addr", srv.DirectTLSAddr, "-tls", "starttls", "-ca", ca}, "-tls direct"},
		{"unknown CA", []string{"-addr", srv.DirectTLSAddr, "-tls", "direct"}, "-ca FILE"},
	} {
		stderr.Reset()
		code := run(ctx, cmdline([]string{"probe", "-cache", ""}, tc.args, []string{"alice@" + srv.Domain}), &stdout, &stderr)
		if lines := strings.Split(strings.TrimSpace(stderr.String()), "\n"); code != exitTLS || len(lines) != 2 || !strings.Contains(lines[1], tc.hint) ||
			strings.Contains(lines[0], "tls: tls:") {
			t.Errorf("%s: exit %d: %s; want %d and a hint naming %s", tc.name, code, stderr.String(), exitTLS, tc.hint)
		}
	}

	// A wrong password: the cached token still logs in, and the probe
	// says the password was not checked (issue 16, item 1).
	t.Setenv("PIPEBIND_PASSWORD", "wrong")
	stdout.Reset()
	if code := run(ctx, args, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), `"password_checked":false`) ||
		!strings.Contains(stdout.String(), `"credential":"fast-token"`) {
		t.Fatalf("wrong password with a token: exit %d: %s", code, stdout.String())
	}
	// Checked (without the token, PLAIN sends it): exit 5, one error line
	// naming the condition, then a hint.
	for _, extra := range []string{"-no-fast", "-verify-password"} {
		stdout.Reset()
		stderr.Reset()
		if code := run(ctx, append([]string{"probe", extra}, args[1:]...), &stdout, &stderr); code != exitAuth {
			t.Fatalf("wrong password %s: exit %d: %s", extra, code, stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if len(lines) != 2 || !strings.Contains(lines[0], "not-authorized") || !strings.Contains(lines[1], "hint:") {
			t.Errorf("wrong password %s: stderr %q, want an error line with not-authorized and a hint", extra, stderr.String())
		}
		if !strings.Contains(stdout.String(), `"class":"auth"`) {
			t.Errorf("wrong password %s: -json printed %q", extra, stdout.String())
		}
	}
}

// TestProbeDraftJSON: the probe's JSON keeps the v0.3.0 difference between
// "not tracked" (null), "none" ([]) and entries.
func TestProbeDraftJSON(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name        string
		cfg         xmpptest.Config
		seed        bool
		wantLatest  string
		wantUnreads string
	}{
		{"not tracked", xmpptest.Config{NoUnreads: true}, true, `"latest_id":"ID"`, `"unreads":null`},
		{"none", xmpptest.Config{}, false, `"latest_id":null`, `"unreads":[]`},
		{"entries", xmpptest.Config{}, true, `"latest_id":"ID"`, `"unreads":[{"jid":"bob@localhost","read_id":"","count":2}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Bind2Draft, cfg.NoSASL2 = true, true
			cfg.Users = map[string]string{"alice": "pw"}
			srv := xmpptest.NewServer(cfg)
			defer srv.Close()
			latest := ""
			if tc.seed {
				srv.InjectArchive("alice", "bob@localhost", "one", true)
				latest = srv.InjectArchive("alice", "bob@localhost", "two", true)
			}
			dir := t.TempDir()
			ca := filepath.Join(dir, "ca.pem")
			if err := os.WriteFile(ca, srv.CAPEM(), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("PIPEBIND_PASSWORD", "pw")
			var stdout, stderr bytes.Buffer
			args := []string{"probe", "-json", "-addr", srv.DirectTLSAddr(), "-tls", "direct", "-ca", ca,
				"-cache", filepath.Join(dir, "c.db"), "-mech", "PLAIN", "alice@localhost"}
			if code := run(ctx, args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			out := stdout.String()
			for _, want := range []string{`"path":"bind2-draft"`, strings.Replace(tc.wantLatest, "ID", latest, 1), tc.wantUnreads} {
				if !strings.Contains(out, want) {
					t.Errorf("JSON lacks %s: %s", want, out)
				}
			}
		})
	}
}
