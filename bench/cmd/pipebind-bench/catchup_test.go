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

// TestBenchCatchupProsody runs the MAM catch-up of pipebind-bench against a
// real Prosody with a small archive, and Prosody's first-flight timings:
// every message must reach pipebind's store and the raw client, both
// paced by Prosody's pages of at most 50.
func TestBenchCatchupProsody(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prosody twice and fills an archive") // -short only
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	md := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	var out, errb bytes.Buffer
	const n = 260
	code := run(ctx, []string{"-prosody", "-inproc=false", "-rtt", "", "-catchup", "260", "-catchup-runs", "2",
		"-server-cost", "2", "-json", "-markdown", md}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep benchReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, out.String())
	}
	c := rep.Catchup
	if c == nil {
		t.Fatal("no catch-up in the report")
	}
	if c.FirstErr != "" || c.Stored != n || c.Messages != n {
		t.Errorf("catch-up stored %d of %d: %s", c.Stored, c.Messages, c.FirstErr)
	}
	if c.MsgsPerPage < 1 || c.MsgsPerPage > 50 || c.Pages < (n+c.MsgsPerPage-1)/c.MsgsPerPage {
		t.Errorf("raw client: %d pages of up to %d messages for %d messages (Prosody caps pages at 50)", c.Pages, c.MsgsPerPage, n)
	}
	if c.PipebindPages < n/50 {
		t.Errorf("pipebind fetched %d pages for %d messages", c.PipebindPages, n)
	}
	if c.ServeMS <= 0 || c.SyncMS <= 0 || c.Ratio <= 0 {
		t.Errorf("timings: serve %.1f ms, sync %.1f ms, ratio %.2f", c.ServeMS, c.SyncMS, c.Ratio)
	}
	names := map[string]bool{}
	for _, s := range rep.ServerCosts {
		names[s.Name] = true
		if s.MedianMS <= 0 {
			t.Errorf("first flight %s: median %.2f ms", s.Name, s.MedianMS)
		}
	}
	for _, want := range []string{"header", "plain", "fast", "scram-first"} {
		if !names[want] {
			t.Errorf("no first-flight timing %q in %v", want, names)
		}
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"## MAM catch-up from Prosody", "## Prosody's time for the first flight after TLS", "pipebind / Prosody"} {
		if !strings.Contains(string(b), s) {
			t.Errorf("BENCHMARKS.md lacks %q", s)
		}
	}
}

func TestBenchCatchupNeedsProsody(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-catchup", "10"}, &out, &errb); code != 1 {
		t.Errorf("-catchup without -prosody: exit %d, want 1 (%s)", code, errb.String())
	}
}
