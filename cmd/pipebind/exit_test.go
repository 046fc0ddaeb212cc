package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipebind/pipebind/internal/xmpptest"
)

// TestExitCodes (issue 16, items 2, 4 and 5): the binary's exit status
// tells each class of failure from the others; the error is one line on
// stderr, followed by a hint that names the flag to try where there is
// one; with -json, stdout holds one object with the class, the status and
// the message. Local mistakes are found before connecting.
func TestExitCodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s := newCLIServer(t, xmpptest.Config{})
	// A port that accepts and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	pw := []string{"PIPEBIND_PASSWORD=alice-pw"}
	direct := []string{"-addr", s.DirectTLSAddr(), "-tls", "direct", "-ca", s.ca, "-cache", ""}
	missing := filepath.Join(t.TempDir(), "missing.db")
	for _, tc := range []struct {
		name     string
		env      []string
		args     []string
		code     int
		class    string
		inErr    string // in the error line
		inHint   string // in the hint line ("" for none)
		noServer bool   // the server must see no connection
	}{
		{"no account", pw, []string{"probe"}, 2, "usage", "missing ACCOUNT", "", true},
		{"unknown flag", pw, []string{"probe", "-bogus", "alice@localhost"}, 2, "usage", "-bogus", "", true},
		{"unknown command", pw, []string{"prob"}, 2, "usage", `unknown command "prob"`, "", true},
		{"bad -tls", pw, []string{"probe", "-tls", "tls13", "-ca", s.ca, "-cache", "", "alice@localhost"}, 2, "usage", "-tls", "", true},
		{"unknown -mech", pw, cmdline([]string{"probe", "-mech", "FOO-BAR"}, direct, []string{"alice@localhost"}), 2, "usage", "-mech FOO-BAR: unknown mechanism", "", true},
		{"bad -addr", pw, []string{"probe", "-addr", "localhost", "alice@localhost"}, 2, "usage", "-addr", "", true},
		{"resource", pw, cmdline([]string{"probe"}, direct, []string{"alice@localhost/phone"}), 2, "usage", "without a resource", "", true},
		{"empty password", []string{"PIPEBIND_PASSWORD="}, cmdline([]string{"probe"}, direct, []string{"alice@localhost"}), 2, "usage", "PIPEBIND_PASSWORD is set but empty", "", true},
		{"no password, no terminal", nil, cmdline([]string{"probe"}, direct, []string{"alice@localhost"}), 2, "usage", "no password", "", true},
		{"missing cache file", nil, []string{"cache", "show", "-cache", missing}, 2, "usage", "no cache file " + missing, "", true},
		{"negative -n", nil, []string{"history", "-n", "-5", "alice@localhost"}, 2, "usage", "-n -5", "", true},
		{"refused", pw, []string{"probe", "-addr", closedAddr, "-cache", "", "alice@localhost"}, 3, "connect", "connection refused", "-addr", true},
		{"unknown CA", pw, []string{"probe", "-addr", s.DirectTLSAddr(), "-tls", "direct", "-cache", "", "alice@localhost"}, 4, "tls", "certificate signed by unknown authority", "-ca FILE", false},
		{"direct on STARTTLS", pw, []string{"probe", "-addr", s.StartTLSAddr(), "-tls", "direct", "-ca", s.ca, "-cache", "", "alice@localhost"}, 4, "tls", "does not look like a TLS handshake", "-tls starttls", false},
		{"STARTTLS on direct", pw, []string{"probe", "-addr", s.DirectTLSAddr(), "-tls", "starttls", "-ca", s.ca, "-cache", "", "alice@localhost"}, 4, "tls", "starttls", "-tls direct", false},
		{"wrong password", []string{"PIPEBIND_PASSWORD=wrong"}, cmdline([]string{"probe"}, direct, []string{"alice@localhost"}), 5, "auth", "not-authorized", "password", false},
		{"no common mechanism", pw, cmdline([]string{"probe", "-mech", "SCRAM-SHA-512"}, direct, []string{"alice@localhost"}), 6, "protocol", "no acceptable SASL mechanism", "-mech", false},
		{"silent server", pw, []string{"probe", "-addr", silent.Addr().String(), "-tls", "direct", "-timeout", "300ms", "-cache", "", "alice@localhost"}, 7, "timeout", "", "-timeout", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(s.Conns())
			start := time.Now()
			r := runBin(t, ctx, tc.env, append(tc.args, "-json")...)
			if tc.args[0] == "prob" {
				r = runBin(t, ctx, tc.env, tc.args...)
			}
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstderr: %s", r.code, tc.code, r.stderr)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if !strings.Contains(lines[0], tc.inErr) || !strings.HasPrefix(lines[0], "pipebind") {
				t.Errorf("error line %q lacks %q", lines[0], tc.inErr)
			}
			switch {
			case tc.inHint == "" && len(lines) != 1:
				t.Errorf("stderr has %d lines, want 1: %q", len(lines), r.stderr)
			case tc.inHint != "" && (len(lines) != 2 || !strings.Contains(lines[1], "hint: ") || !strings.Contains(lines[1], tc.inHint)):
				t.Errorf("stderr %q: want a second line, a hint naming %q", r.stderr, tc.inHint)
			}
			if tc.args[0] != "prob" {
				var f failure
				if err := json.Unmarshal([]byte(r.stdout), &f); err != nil || f.Class != tc.class || f.ExitCode != tc.code || f.Error == "" ||
					strings.Count(strings.TrimSpace(r.stdout), "\n") != 0 {
					t.Errorf("-json on failure: %v, %q; want one object of class %s", err, r.stdout, tc.class)
				}
			}
			if tc.noServer && len(s.Conns()) != before {
				t.Errorf("the server saw a connection: the mistake was not found before connecting")
			}
			if tc.code == exitTimeout && time.Since(start) > 10*time.Second {
				t.Errorf("-timeout 300ms took %s", time.Since(start))
			}
		})
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("cache show created the missing file")
	}
}
