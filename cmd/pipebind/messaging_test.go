package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipebind/pipebind/internal/prosodytest"
	"github.com/pipebind/pipebind/internal/xmpptest"
)

// listenLine is one line of listen -json.
type listenLine struct {
	StanzaID  string `json:"stanza_id"`
	Peer      string `json:"peer"`
	Direction string `json:"direction"`
	Body      string `json:"body"`
}

// listenProc is the binary running listen -json.
type listenProc struct {
	cmd             *exec.Cmd
	lines, errLines *lineReader
}

// listening starts listen -json with args and waits until it is online.
func listening(t *testing.T, ctx context.Context, env []string, args ...string) *listenProc {
	t.Helper()
	cmd := binCmd(t, ctx, env, append([]string{"listen", "-json"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &listenProc{cmd: cmd, lines: newLineReader(stdout), errLines: newLineReader(stderr)}
	p.errLines.waitFor(t, ctx, "listening as ")
	return p
}

// next decodes the next message listen printed.
func (p *listenProc) next(t *testing.T, ctx context.Context) listenLine {
	t.Helper()
	var m listenLine
	line := p.lines.next(t, ctx)
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("listen -json printed %q: %v", line, err)
	}
	return m
}

// wait drains the output (the readers must reach the pipes' end before
// Wait closes them) and returns it with the exit status.
func (p *listenProc) wait() result {
	for range p.lines.ch {
	}
	for range p.errLines.ch {
	}
	_ = p.cmd.Wait()
	return result{p.lines.all(), p.errLines.all(), p.cmd.ProcessState.ExitCode()}
}

// TestSendListenMarkRead (issue 16, item 6): listen prints what arrived
// while it was not running, then each live message, once, one JSON object
// a line; send (TEXT, or stdin with -) returns once the server has the
// message; an interrupted listen exits 130 with a JSON failure; mark-read
// clears the conversation's unread count. The same flags as probe, and
// flags anywhere.
func TestSendListenMarkRead(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := newCLIServer(t, xmpptest.Config{})
	bobEnv := []string{"PIPEBIND_PASSWORD=bob-pw"}
	aliceEnv := []string{"PIPEBIND_PASSWORD=alice-pw"}
	s.InjectArchive("bob", "alice@localhost", "while you were away", true)

	l := listening(t, ctx, bobEnv, cmdline(s.flags("bob.db"), []string{"-count", "3", "bob@localhost"})...)
	if m := l.next(t, ctx); m.Body != "while you were away" || m.Direction != "in" || m.Peer != "alice@localhost" {
		t.Errorf("catch-up: %+v", m)
	}
	r := runBin(t, ctx, aliceEnv, cmdline([]string{"send", "alice@localhost", "bob@localhost", "hello bob", "-json"}, s.flags("alice.db"))...)
	var out sent
	if err := json.Unmarshal([]byte(r.stdout), &out); r.code != 0 || err != nil || !out.Acknowledged || out.To != "bob@localhost" || out.ID == "" {
		t.Fatalf("send: exit %d, %q, %v: %s", r.code, r.stdout, err, r.stderr)
	}
	if m := l.next(t, ctx); m.Body != "hello bob" || m.Peer != "alice@localhost" {
		t.Errorf("live: %+v", m)
	}
	cmd := binCmd(t, ctx, aliceEnv, cmdline([]string{"send"}, s.flags("alice.db"), []string{"alice@localhost", "bob@localhost", "-"})...)
	cmd.Stdin = strings.NewReader("from stdin\n")
	if b, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(b), "sent to bob@localhost") {
		t.Fatalf("send -: %v: %s", err, b)
	}
	if m := l.next(t, ctx); m.Body != "from stdin" {
		t.Errorf("from stdin: %+v", m)
	}
	if r := l.wait(); r.code != 0 {
		t.Fatalf("listen -count 3: exit %d: %s", r.code, r.stderr)
	}

	// Nothing twice: the next listen prints only what is new, until Ctrl-C.
	l = listening(t, ctx, bobEnv, cmdline([]string{"bob@localhost"}, s.flags("bob.db"))...)
	if r := runBin(t, ctx, aliceEnv, cmdline([]string{"send", "alice@localhost", "bob@localhost", "-x"}, s.flags("alice.db"))...); r.code != 2 {
		t.Errorf("a TEXT like a flag, without --: exit %d: %s", r.code, r.stderr)
	}
	if r := runBin(t, ctx, aliceEnv, cmdline(s.flags("alice.db"), []string{"send", "alice@localhost", "bob@localhost", "--", "-x"})...); r.code != 0 {
		t.Errorf("send -- TEXT: exit %d: %s", r.code, r.stderr)
	}
	if m := l.next(t, ctx); m.Body != "-x" {
		t.Errorf("after a restart: %+v, want only the new message", m)
	}
	if err := l.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	r = l.wait()
	var f failure
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.stdout)[strings.LastIndexByte(strings.TrimSpace(r.stdout), '\n')+1:]), &f); r.code != 130 ||
		err != nil || f.Class != "interrupted" || f.ExitCode != 130 {
		t.Errorf("listen after SIGINT: exit %d, last line %q, %v", r.code, r.stdout, err)
	}

	r = runBin(t, ctx, bobEnv, cmdline([]string{"mark-read", "-json", "bob@localhost", "alice@localhost"}, s.flags("bob.db"))...)
	var mk marked
	if err := json.Unmarshal([]byte(r.stdout), &mk); r.code != 0 || err != nil || mk.Unread != 0 || mk.Peer != "alice@localhost" {
		t.Fatalf("mark-read: exit %d, %q: %s", r.code, r.stdout, r.stderr)
	}
	archive := s.Archive("bob")
	if mk.ReadID != archive[len(archive)-1].StanzaID {
		t.Errorf("mark-read marked %s, want the newest, %s", mk.ReadID, archive[len(archive)-1].StanzaID)
	}
	if r := runBin(t, ctx, bobEnv, cmdline([]string{"mark-read", "bob@localhost", "carol@localhost"}, s.flags("bob.db"))...); r.code != 1 ||
		!strings.Contains(r.stderr, "no message with carol@localhost") {
		t.Errorf("mark-read of an unknown peer: exit %d: %s", r.code, r.stderr)
	}
}

// TestIntegrationMessagingProsody: send, listen and mark-read against a
// real Prosody 13: the marker is published (XEP-0490), so a second cache
// of bob's learns it from the server.
func TestIntegrationMessagingProsody(t *testing.T) {
	srv := prosodytest.StartT(t, prosodytest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, srv.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	common := func(cache string) []string {
		return []string{"-addr", srv.DirectTLSAddr, "-tls", "direct", "-ca", ca, "-cache", filepath.Join(dir, cache)}
	}
	alice, bob := "alice@"+srv.Domain, "bob@"+srv.Domain
	bobEnv := []string{"PIPEBIND_PASSWORD=" + srv.Users["bob"]}
	l := listening(t, ctx, bobEnv, cmdline(common("bob.db"), []string{"-count", "2", bob})...)
	for _, text := range []string{"one", "two"} {
		if r := runBin(t, ctx, []string{"PIPEBIND_PASSWORD=" + srv.Users["alice"]}, cmdline([]string{"send", alice, bob, text}, common("alice.db"))...); r.code != 0 {
			t.Fatalf("send: exit %d: %s", r.code, r.stderr)
		}
		if m := l.next(t, ctx); m.Body != text || m.Peer != alice {
			t.Errorf("listen: %+v, want %q from %s", m, text, alice)
		}
	}
	if r := l.wait(); r.code != 0 {
		t.Fatalf("listen: exit %d: %s", r.code, r.stderr)
	}
	if r := runBin(t, ctx, bobEnv, cmdline([]string{"mark-read", bob, alice}, common("bob.db"))...); r.code != 0 || !strings.Contains(r.stdout, "0 unread") {
		t.Fatalf("mark-read: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	r := runBin(t, ctx, bobEnv, cmdline([]string{"sync", "-json", bob}, common("bob-phone.db"))...)
	var sum syncSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); r.code != 0 || err != nil {
		t.Fatalf("sync: exit %d, %v: %s", r.code, err, r.stderr)
	}
	for _, u := range sum.Unreads {
		if u.JID == alice {
			t.Errorf("bob's other device: %d unread from alice, want 0 (the marker was not published)", u.Count)
		}
	}
}
