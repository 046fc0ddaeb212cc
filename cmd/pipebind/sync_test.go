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

	"github.com/pipebind/pipebind/internal/xmpptest"
)

func TestSyncAndHistory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := xmpptest.NewServer(xmpptest.Config{Users: map[string]string{"alice": "pw"}, Bind2Draft: true, NoSASL2: true})
	defer srv.Close()
	first, _ := srv.InjectArchiveBulk("alice", "bob@localhost", 300, true)
	srv.InjectArchiveBulk("alice", "carol@localhost", 20, false)
	srv.SetReadMarker("alice", "bob@localhost", first)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, srv.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "c.db")
	t.Setenv("PIPEBIND_PASSWORD", "pw")
	args := []string{"sync", "-json", "-addr", srv.DirectTLSAddr(), "-tls", "direct", "-ca", ca, "-cache", db, "-mech", "PLAIN", "alice@localhost"}
	type summary struct {
		LatestID          string  `json:"latest_id"`
		LocalLatestID     string  `json:"local_latest_id"`
		Queried           bool    `json:"queried"`
		Fetched           int     `json:"fetched"`
		Stored            int     `json:"stored"`
		DuplicatesDropped int     `json:"duplicates_dropped"`
		PeakBuffered      int     `json:"peak_buffered"`
		ReadyMS           float64 `json:"ready_ms"`
		InLoginWrite      bool    `json:"in_login_write"`
		Unreads           []struct {
			JID   string `json:"jid"`
			Count int    `json:"count"`
		} `json:"unreads"`
	}
	runSync := func() summary {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(ctx, args, &stdout, &stderr); code != 0 {
			t.Fatalf("sync: exit %d: %s", code, stderr.String())
		}
		var s summary
		if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
			t.Fatalf("%v: %s", err, stdout.String())
		}
		return s
	}
	s := runSync()
	archive := srv.Archive("alice")
	if s.Stored != 320 || s.Fetched != 320 || !s.Queried || s.LatestID != archive[len(archive)-1].StanzaID || s.LocalLatestID != "" ||
		s.PeakBuffered < 1 || s.PeakBuffered > 320 {
		t.Errorf("first sync: %+v", s)
	}
	if len(s.Unreads) != 1 || s.Unreads[0].JID != "bob@localhost" || s.Unreads[0].Count != 299 {
		t.Errorf("unreads: %+v", s.Unreads)
	}
	s = runSync()
	// Level: nothing fetched; the warm login asked the one page in its own
	// write (issue 15), and says when it was ready.
	if s.Fetched != 0 || s.Stored != 0 || s.LocalLatestID != s.LatestID || !s.InLoginWrite || s.ReadyMS <= 0 {
		t.Errorf("level sync: %+v", s)
	}

	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"history", "-cache", db, "-json", "-with", "carol@localhost", "alice@localhost"}, &stdout, &stderr); code != 0 {
		t.Fatalf("history: exit %d: %s", code, stderr.String())
	}
	var entries []struct {
		StanzaID  string `json:"stanza_id"`
		Peer      string `json:"peer"`
		Direction string `json:"direction"`
		Body      string `json:"body"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &entries); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 20 || entries[0].Peer != "carol@localhost" || entries[0].Direction != "out" || entries[0].StanzaID != archive[300].StanzaID {
		t.Errorf("history: %d entries, first %+v", len(entries), entries[0])
	}
	stdout.Reset()
	if code := run(ctx, []string{"history", "-cache", db, "-n", "2", "alice@localhost"}, &stdout, &stderr); code != 0 {
		t.Fatalf("history: exit %d: %s", code, stderr.String())
	}
	if lines := strings.Split(strings.TrimSpace(stdout.String()), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "-> carol@localhost") {
		t.Errorf("history text:\n%s", stdout.String())
	}
}

func TestCacheShowForget(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := xmpptest.NewServer(xmpptest.Config{Users: map[string]string{"alice": "s3cret-pw"}})
	defer srv.Close()
	srv.InjectArchiveBulk("alice", "bob@localhost", 5, true)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, srv.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "c.db")
	t.Setenv("PIPEBIND_PASSWORD", "s3cret-pw")
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"sync", "-addr", srv.DirectTLSAddr(), "-tls", "direct", "-ca", ca, "-cache", db, "-mech", "SCRAM-SHA-256", "alice@localhost"}, &stdout, &stderr); code != 0 {
		t.Fatalf("sync: exit %d: %s", code, stderr.String())
	}
	stdout.Reset()
	if code := run(ctx, []string{"cache", "-cache", db, "-json", "show"}, &stdout, &stderr); code != 0 {
		t.Fatalf("show: exit %d: %s", code, stderr.String())
	}
	var shown struct {
		Features  []struct{ Domain string } `json:"features"`
		ScramKeys []struct {
			Account, Mechanism, Keys string
		} `json:"scram_keys"`
		Tokens []struct {
			Account, Mechanism, Token string
		} `json:"fast_tokens"`
		Pins []struct {
			Account, Mechanism string
		} `json:"mechanism_pins"`
		Accounts []struct {
			JID      string `json:"jid"`
			Messages int    `json:"messages"`
		} `json:"accounts"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &shown); err != nil {
		t.Fatal(err)
	}
	if len(shown.Features) != 1 || len(shown.ScramKeys) != 1 || shown.ScramKeys[0].Keys != "[redacted]" ||
		len(shown.Accounts) != 1 || shown.Accounts[0].Messages != 5 {
		t.Errorf("show: %s", stdout.String())
	}
	if len(shown.Tokens) != 1 || shown.Tokens[0].Token != "[redacted]" || shown.Tokens[0].Mechanism != "HT-SHA-256-EXPR" ||
		len(shown.Pins) != 1 || shown.Pins[0].Mechanism != "SCRAM-SHA-256" {
		t.Errorf("show: FAST token and pin: %s", stdout.String())
	}
	if strings.Contains(stdout.String(), "s3cret") {
		t.Error("show prints the password")
	}
	stdout.Reset()
	if code := run(ctx, []string{"cache", "-cache", db, "forget", "alice@localhost"}, &stdout, &stderr); code != 0 {
		t.Fatalf("forget: exit %d: %s", code, stderr.String())
	}
	stdout.Reset()
	if code := run(ctx, []string{"cache", "-cache", db, "-json", "show"}, &stdout, &stderr); code != 0 {
		t.Fatalf("show: exit %d", code)
	}
	if err := json.Unmarshal(stdout.Bytes(), &shown); err != nil {
		t.Fatal(err)
	}
	if len(shown.Features) != 0 || len(shown.ScramKeys) != 0 || len(shown.Tokens) != 0 || len(shown.Pins) != 0 {
		t.Errorf("after forget: %s", stdout.String())
	}
}
