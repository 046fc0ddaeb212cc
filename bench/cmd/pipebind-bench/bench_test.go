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
)

// TestBenchInProcess runs pipebind-bench against the in-process server
// with the clients in this process and checks the round trips the proxy
// counted, the storm and the Markdown report.
func TestBenchInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("logs in ~40 times through the emulated path") // -short only
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	md := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	var out, errb bytes.Buffer
	prof := filepath.Join(t.TempDir(), "fast.pprof")
	code := run(ctx, []string{"-n", "2", "-rtt", "10ms", "-inprocess-peers", "-json", "-storm", "20", "-storm-rtt", "10ms",
		"-profile", prof, "-profile-n", "3", "-markdown", md}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep benchReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, out.String())
	}
	want := map[string]float64{
		"floor": 1, "pipebind-warm-fast": 1, "pipebind-warm-plain": 1, "pipebind-warm-scram": 2, "pipebind-cold": 2,
		"pipebind-bind2-draft": 1, "pipebind-classic": 4, "mellium-classic": 4,
	}
	seen := 0
	for _, r := range rep.Rows {
		if r.Pending != "" {
			continue
		}
		rt, ok := want[r.Client]
		if !ok {
			t.Errorf("unexpected row %s", r.Client)
			continue
		}
		seen++
		if r.Failed != 0 || r.N != 2 {
			t.Errorf("%s: %d/%d failed: %s", r.Client, r.Failed, r.N, r.FirstErr)
		}
		if r.RoundTrips != rt {
			t.Errorf("%s: %g round trips after TLS counted on the proxy, want %g", r.Client, r.RoundTrips, rt)
		}
		if r.Client != "floor" && r.ClientRT != r.RoundTrips && r.Client != "mellium-classic" {
			t.Errorf("%s: client reports %g round trips, the proxy counted %g", r.Client, r.ClientRT, r.RoundTrips)
		}
		// Each row measures its own mechanism: FAST is on by default
		// with a cache, and only the FAST row may use it.
		if fast := strings.HasPrefix(r.Mechanism, "HT-"); fast != (r.Client == "pipebind-warm-fast") && r.Client != "floor" {
			t.Errorf("%s: mechanism %q", r.Client, r.Mechanism)
		}
		if r.MedianMS < 20 || r.BytesUp == 0 || r.BytesDown == 0 {
			t.Errorf("%s: median %.1f ms, bytes %g/%g: implausible for connect + TLS at RTT 10 ms", r.Client, r.MedianMS, r.BytesUp, r.BytesDown)
		}
	}
	if seen != len(want) {
		t.Errorf("%d rows measured, want %d", seen, len(want))
	}
	if len(rep.Ratios) != 1 || rep.Ratios[0].VsMellium == 0 || rep.Ratios[0].VsFloor == 0 {
		t.Fatalf("ratios %+v", rep.Ratios)
	}
	perRow := map[string]bool{}
	for _, r := range rep.Ratios[0].PerRow {
		perRow[r.Client] = r.VsFloor > 0 && r.VsMellium > 0
	}
	for _, c := range []string{"pipebind-warm-fast", "pipebind-warm-plain", "pipebind-warm-scram", "pipebind-classic"} {
		if !perRow[c] {
			t.Errorf("per-row ratios lack %s: %+v", c, rep.Ratios[0].PerRow)
		}
	}
	if p := rep.Profile; p == nil || p.Logins != 3 || p.CPUms <= 0 {
		t.Errorf("profile %+v, want 3 logins", p)
	} else if fi, err := os.Stat(prof); err != nil || fi.Size() == 0 {
		t.Errorf("CPU profile file: %v", err)
	}
	if s := rep.Storm; s == nil || s.OK != 20 || s.Failed != 0 || s.First.OK != 20 || s.First.Failed != 0 {
		t.Errorf("storm %+v, want 20 first logins and 20 reconnects ok", s)
	} else if s.FAST != 20 {
		t.Errorf("storm: %d of 20 reconnects used FAST, want all (the first logins got the tokens)", s.FAST)
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"## Targets", "## Ratios", "### inproc, RTT 10 ms", "## Reconnect storm", "| pipebind-warm-fast |", "## Where a warm FAST login's client CPU goes"} {
		if !strings.Contains(string(b), s) {
			t.Errorf("BENCHMARKS.md lacks %q", s)
		}
	}
}

func TestBenchUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-rtt", "fast"}, &out, &errb); code != 1 {
		t.Errorf("bad -rtt: exit %d, want 1", code)
	}
	if code := run(context.Background(), []string{"extra"}, &out, &errb); code != 2 {
		t.Errorf("extra argument: exit %d, want 2", code)
	}
}
