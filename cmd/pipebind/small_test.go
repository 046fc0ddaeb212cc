package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipebind/pipebind/internal/xmpptest"
	"github.com/pipebind/pipebind/mamsync"
)

// TestCacheForget (issue 16, item 9): forget says what it deleted, fails
// for an account nothing is stored for, and with -messages deletes the
// account's messages (the next sync fetches them again).
func TestCacheForget(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := newCLIServer(t, xmpptest.Config{})
	s.InjectArchiveBulk("alice", "bob@localhost", 7, true)
	db := filepath.Join(s.dir, "c.db")
	t.Setenv("PIPEBIND_PASSWORD", "alice-pw")
	if r := runCLI(ctx, cmdline([]string{"sync", "alice@localhost"}, s.flags("c.db"))...); r.code != 0 {
		t.Fatalf("sync: exit %d: %s", r.code, r.stderr)
	}
	r := runCLI(ctx, "cache", "forget", "nobody@localhost", "-cache", db)
	if r.code != exitError || !strings.Contains(r.stderr, "nothing stored for nobody@localhost in "+db) {
		t.Errorf("forget nobody: exit %d: %s", r.code, r.stderr)
	}
	r = runCLI(ctx, "cache", "-json", "forget", "-messages", "alice@localhost", "-cache", db)
	var got struct {
		Credentials int  `json:"credentials"`
		Features    bool `json:"features"`
		Messages    int  `json:"messages"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != 0 || err != nil || got.Messages != 7 || !got.Features || got.Credentials < 2 {
		t.Fatalf("forget -messages: exit %d, %q: %s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(ctx, "history", "alice@localhost", "-cache", db); r.code != 0 || strings.TrimSpace(r.stdout) != "no messages" {
		t.Errorf("history after forget -messages: exit %d: %s", r.code, r.stdout)
	}
	r = runCLI(ctx, cmdline([]string{"sync", "-json", "alice@localhost"}, s.flags("c.db"))...)
	var sum syncSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || sum.Stored != 7 {
		t.Errorf("sync after forget -messages: %v, %d stored, want 7 again", err, sum.Stored)
	}
}

// TestProgressFills (issue 16, item 9): with no total from the server
// (Prosody), the bar is drawn full when the sync ends, and one page is
// "1 page".
func TestProgressFills(t *testing.T) {
	var b bytes.Buffer
	p := &progress{w: &b, tty: true}
	p.update(mamsync.Progress{Pages: 1, Fetched: 40, Stored: 40})
	p.done()
	frames := strings.Split(b.String(), "\r")
	last := frames[len(frames)-1]
	if !strings.Contains(last, strings.Repeat("█", 30)+"] 100%") || !strings.Contains(last, "1 page ") || strings.Contains(b.String(), "1 pages") {
		t.Errorf("the last frame %q: want a full bar, 100%%, 1 page", last)
	}
	b.Reset()
	p = &progress{w: &b}
	p.update(mamsync.Progress{Pages: 1, Fetched: 3, Stored: 3})
	if got := b.String(); got != "sync: 1 page, 3 fetched, 3 stored\n" {
		t.Errorf("plain progress: %q", got)
	}
}

// TestProbeJSONWait (issue 16, item 9): the JSON timings have the "wait"
// the text waterfall draws (the part of the cache read on the login's
// critical path).
func TestProbeJSONWait(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newCLIServer(t, xmpptest.Config{})
	t.Setenv("PIPEBIND_PASSWORD", "alice-pw")
	r := runCLI(ctx, cmdline([]string{"probe", "-json", "alice@localhost"}, s.flags("c.db"))...)
	p := decodeProbe(t, r)
	for _, k := range []string{"cache", "wait", "lookup", "dial", "tls", "login", "total"} {
		if _, ok := p.TimingsMS[k]; !ok {
			t.Errorf("timings_ms lacks %q: %v", k, p.TimingsMS)
		}
	}
	if p.Warnings == nil {
		t.Error(`"warnings" is null, want []`)
	}
}

// TestNoColourInFiles (issue 16, item 7): -v and -trace write no terminal
// colour codes when stderr is a file or a pipe; the trace colours only a
// terminal.
func TestNoColourInFiles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newCLIServer(t, xmpptest.Config{})
	r := runBin(t, ctx, []string{"PIPEBIND_PASSWORD=alice-pw"}, cmdline([]string{"probe", "-v", "-trace", "alice@localhost"}, s.flags("c.db"))...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"TLS handshake", "verified=true", "login done", "credential=password", "> <authenticate", "< <success"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("-v -trace lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "\x1b[") {
		t.Errorf("colour codes in a pipe:\n%q", r.stderr)
	}
	var b bytes.Buffer
	(&wireTrace{w: &b, color: true}).trace(true, []byte("<r xmlns='urn:xmpp:sm:3'/>"))
	if got := b.String(); got != "\x1b[32m< <r xmlns='urn:xmpp:sm:3'/>\x1b[0m\n" {
		t.Errorf("on a terminal: %q", got)
	}
}
