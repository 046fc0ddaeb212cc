package client_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/kdfcount"
	"github.com/pipebind/pipebind/internal/xmpptest"
	"github.com/pipebind/pipebind/login"
)

func newTestServer(t *testing.T, cfg xmpptest.Config) *xmpptest.Server {
	t.Helper()
	if cfg.Users == nil {
		cfg.Users = map[string]string{"alice": "alice-pw", "bob": "bob-pw"}
	}
	s := xmpptest.NewServer(cfg)
	t.Cleanup(s.Close)
	return s
}

func testConfig(t *testing.T, s *xmpptest.Server, user string, db *cache.DB) client.Config {
	return client.Config{
		JID:       jid.MustParse(user + "@" + s.Domain()),
		Password:  user + "-pw",
		Addr:      s.DirectTLSAddr(),
		TLS:       client.TLSDirect,
		TLSConfig: s.TLSConfig(),
		Cache:     db,
	}
}

func openCache(t *testing.T) *cache.DB {
	t.Helper()
	db, err := cache.Open(context.Background(), filepath.Join(t.TempDir(), "cache.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func lastConn(t *testing.T, s *xmpptest.Server) *xmpptest.ConnLog {
	t.Helper()
	conns := s.Conns()
	if len(conns) == 0 {
		t.Fatal("the server saw no connection")
	}
	return conns[len(conns)-1]
}

// TestOneWrite proves the pipelining from the server's side: with a cache
// hit the server receives <authenticate> before it has written anything
// (its header and features included), and sees one client flight for PLAIN
// and two for SCRAM.
func TestOneWrite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		mech           string
		coldRT, warmRT int
	}{{"PLAIN", 2, 1}, {"SCRAM-SHA-256", 3, 2}, {"SCRAM-SHA-1", 3, 2}} {
		t.Run(tc.mech, func(t *testing.T) {
			s := newTestServer(t, xmpptest.Config{})
			db := openCache(t)
			cfg := testConfig(t, s, "alice", db)
			cfg.NoFAST = true // this test is about the password mechanisms
			cfg.Mechanisms = []string{tc.mech}
			cfg.NoSync, cfg.NoPresence = true, true // only the login's flights
			for i, want := range []struct {
				source login.Source
				rt     int
			}{{login.SourceNetwork, tc.coldRT}, {login.SourceCache, tc.warmRT}} {
				c, err := client.Dial(ctx, cfg)
				if err != nil {
					t.Fatalf("login %d: %v", i, err)
				}
				info := c.Info()
				c.Close()
				cl := lastConn(t, s)
				<-cl.Done()
				if info.Source != want.source || info.RoundTrips != want.rt || info.Path != login.PathSASL2 || info.Mechanism != tc.mech {
					t.Errorf("login %d: %s, %s, %d round trips, %s", i, info.Path, info.Source, info.RoundTrips, info.Mechanism)
				}
				// The server also sees the closing </stream:stream> as a flight.
				if got := cl.ClientFlights() - 1; got != info.RoundTrips {
					t.Errorf("login %d: the server saw %d client flights for the login, the client counted %d", i, got, info.RoundTrips)
				}
				auth, ok := cl.Received("authenticate")
				if !ok {
					t.Fatalf("login %d: no <authenticate>", i)
				}
				if pipelined := auth.ServerWritesBefore == 0; pipelined != (want.source == login.SourceCache) {
					t.Errorf("login %d: <authenticate> arrived after %d server writes", i, auth.ServerWritesBefore)
				}
				if from, _ := cl.StreamFrom(); from != "alice@"+s.Domain() {
					t.Errorf("login %d: stream from=%q, want the bare JID", i, from)
				}
				if ua := cl.UserAgent(); ua.ID == "" {
					t.Errorf("login %d: no user-agent id", i)
				}
				if cl.BoundJID() != info.JID.String() {
					t.Errorf("login %d: server bound %s, client %s", i, cl.BoundJID(), info.JID)
				}
			}
			// The user-agent id is stable for the installation (the cache).
			conns := s.Conns()
			if conns[0].UserAgent().ID != conns[1].UserAgent().ID {
				t.Errorf("user-agent id changed: %q then %q", conns[0].UserAgent().ID, conns[1].UserAgent().ID)
			}
		})
	}
}

// TestClassicFallback: a server without SASL2 gets RFC 6120 SASL, restart,
// bind and carbons.
func TestClassicFallback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{NoSASL2: true})
	cfg := testConfig(t, s, "alice", openCache(t))
	for i := range 2 {
		c, err := client.Dial(ctx, cfg)
		if err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
		info := c.Info()
		c.Close()
		if info.Path != login.PathClassic || info.JID.Resourcepart() == "" || !info.Carbons || info.Mechanism != "SCRAM-SHA-256" {
			t.Errorf("login %d: %+v", i, info.Result)
		}
	}
}

// TestClassicAnswerOrder: on the classic path, carbons-enable and SM
// <enable/> go out together; the server may answer them in either order
// (ejabberd 24.12 answers <enabled/> first). Both orders log in, and the
// stanzas after <enabled/> count for stream management: the client's h
// matches what the server sent.
func TestClassicAnswerOrder(t *testing.T) {
	for _, enabledFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("enabled first %v", enabledFirst), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s := newTestServer(t, xmpptest.Config{NoSASL2: true, SMEnabledFirst: enabledFirst})
			cfg := testConfig(t, s, "alice", nil)
			cfg.NoSync, cfg.NoPresence = true, true
			c, err := client.Dial(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			info := c.Info()
			if info.Path != login.PathClassic || !info.Carbons || !info.SM.Enabled {
				t.Fatalf("path %s, carbons %v, SM %+v", info.Path, info.Carbons, info.SM)
			}
			h, _, err := s.RequestAck(ctx, info.JID.String())
			if err != nil {
				t.Fatal(err)
			}
			st, ok := s.SMSession(info.JID.String())
			if !ok || h != st.Sent {
				t.Errorf("the client acknowledged h=%d; the server sent %d stanzas since <enabled/>", h, st.Sent)
			}
		})
	}
}

// TestStaleCache: the server changes between logins, in each direction.
// The login recovers with at most one reconnect, uses only what the live
// features offer, and the cache ends up matching the server.
func TestStaleCache(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name        string
		before      func(*xmpptest.Config)
		after       func(*xmpptest.Config)
		wantPath    login.Path
		wantMech    string
		wantAttempt int
		// downgrade: the live features fall below the account's pinned
		// mechanism: after the one clean retry the login fails with a
		// *login.DowngradeError, and succeeds with AllowDowngrade.
		downgrade bool
	}{
		{"sasl2 withdrawn", nil, func(c *xmpptest.Config) { c.NoSASL2 = true }, login.PathClassic, "SCRAM-SHA-256", 2, false},
		{"sasl2 added", func(c *xmpptest.Config) { c.NoSASL2 = true }, func(c *xmpptest.Config) { c.NoSASL2 = false }, login.PathSASL2, "SCRAM-SHA-256", 2, false},
		{"cached mechanism withdrawn", nil, func(c *xmpptest.Config) { c.Mechanisms = []string{"SCRAM-SHA-1", "PLAIN"} }, login.PathSASL2, "SCRAM-SHA-1", 2, true},
		{"stronger mechanism added", func(c *xmpptest.Config) { c.Mechanisms = []string{"PLAIN"} }, func(c *xmpptest.Config) { c.Mechanisms = []string{"SCRAM-SHA-256", "PLAIN"} }, login.PathSASL2, "SCRAM-SHA-256", 2, false},
		{"unchanged", nil, nil, login.PathSASL2, "SCRAM-SHA-256", 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sc xmpptest.Config
			if tc.before != nil {
				tc.before(&sc)
			}
			s := newTestServer(t, sc)
			db := openCache(t)
			cfg := testConfig(t, s, "alice", db)
			cfg.NoFAST = true // this test is about the password mechanisms
			c, err := client.Dial(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			if tc.after != nil {
				s.SetConfig(tc.after)
			}
			n := len(s.Conns())
			if tc.downgrade {
				_, err := client.Dial(ctx, cfg)
				var de *login.DowngradeError
				if !errors.As(err, &de) || !errors.Is(err, client.ErrInsecure) || !errors.Is(err, login.ErrPinned) {
					t.Fatalf("Dial below the pin = %v, want a *login.DowngradeError matching ErrInsecure and ErrPinned", err)
				}
				if de.Pinned != "SCRAM-SHA-256" || de.Mechanism != tc.wantMech {
					t.Errorf("DowngradeError = %+v", de)
				}
				if conns := len(s.Conns()) - n; conns != 2 {
					t.Errorf("%d connections before the alarm, want 2 (one clean retry with live features)", conns)
				}
				n = len(s.Conns())
				cfg.AllowDowngrade = true
			}
			c, err = client.Dial(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			cfg.AllowDowngrade = false // the pin moved down with the override
			info := c.Info()
			c.Close()
			if info.Path != tc.wantPath || info.Mechanism != tc.wantMech || info.Attempts != tc.wantAttempt {
				t.Errorf("path %s mechanism %s attempts %d; want %s %s %d", info.Path, info.Mechanism, info.Attempts, tc.wantPath, tc.wantMech, tc.wantAttempt)
			}
			if conns := len(s.Conns()) - n; conns != tc.wantAttempt {
				t.Errorf("%d connections for the second login, want %d", conns, tc.wantAttempt)
			}
			// The cache now describes the server: the next login is planned
			// from it in one attempt.
			c, err = client.Dial(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			info = c.Info()
			c.Close()
			if info.Attempts != 1 || info.Source != login.SourceCache || info.Stale {
				t.Errorf("third login: attempts %d source %s stale %v", info.Attempts, info.Source, info.Stale)
			}
		})
	}
}

// TestFailedLoginLeavesCache: a wrong password is ErrAuth and writes nothing
// into the cache.
func TestFailedLoginLeavesCache(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	db := openCache(t)
	cfg := testConfig(t, s, "alice", db)
	cfg.Password = "wrong"
	_, err := client.Dial(ctx, cfg)
	if !errors.Is(err, client.ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	if _, ok, err := db.Features(ctx, s.Domain()); ok || err != nil {
		t.Errorf("a failed login wrote features (ok=%v, err=%v)", ok, err)
	}
	if got := err.Error(); contains(got, "wrong") {
		t.Errorf("the error contains the password: %q", got)
	}
}

// TestStartTLSPipelined: STARTTLS with a cache hit sends the header and
// <starttls/> together (one round trip before TLS).
func TestStartTLSPipelined(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	cfg := testConfig(t, s, "alice", openCache(t))
	cfg.NoFAST = true // this test is about the password mechanisms
	cfg.Addr, cfg.TLS = s.StartTLSAddr(), client.TLSStartTLS
	for i, want := range []int{2, 1} {
		c, err := client.Dial(ctx, cfg)
		if err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
		info := c.Info()
		c.Close()
		if info.DirectTLS || info.StartTLSRoundTrips != want || (i == 1 && info.RoundTrips != 2) {
			t.Errorf("login %d: direct %v, %d STARTTLS round trips (want %d), %d after TLS", i, info.DirectTLS, info.StartTLSRoundTrips, want, info.RoundTrips)
		}
	}
	// With no mode given and no cache, Direct TLS is tried, then STARTTLS.
	cfg.TLS, cfg.Cache = client.TLSAuto, nil
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if c.Info().DirectTLS {
		t.Error("auto mode on a STARTTLS port reported Direct TLS")
	}
}

func contains(s, sub string) bool {
	return len(sub) > 0 && len(s) >= len(sub) && (func() bool {
		for i := 0; i+len(sub) <= len(s); i++ {
			if s[i:i+len(sub)] == sub {
				return true
			}
		}
		return false
	})()
}

// TestTLSVerification: an untrusted certificate is ErrTLS, and no password
// was sent; an unverified connection never carries PLAIN unless allowed.
func TestTLSVerification(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	cfg := testConfig(t, s, "alice", nil)
	cfg.TLSConfig = nil // system roots: the test CA is unknown
	_, err := client.Dial(ctx, cfg)
	if !errors.Is(err, client.ErrTLS) {
		t.Fatalf("untrusted certificate: err = %v, want ErrTLS", err)
	}
	if _, ok := lastConn(t, s).Received("authenticate"); ok {
		t.Error("credentials were sent over an unverified connection")
	}

	insecure := s.TLSConfig()
	insecure.RootCAs, insecure.InsecureSkipVerify = nil, true
	cfg.TLSConfig = insecure
	cfg.Mechanisms = []string{"PLAIN"}
	if _, err := client.Dial(ctx, cfg); !errors.Is(err, client.ErrInsecure) {
		t.Errorf("PLAIN over unverified TLS: err = %v, want ErrInsecure", err)
	}
	cfg.InsecureAllowPlain = true
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("PLAIN with the explicit insecure option: %v", err)
	}
	c.Close()

	// A certificate for another name, or one that has expired.
	wrongName := s.TLSConfig()
	wrongName.ServerName = "not-" + s.Domain()
	expired := s.TLSConfig()
	expired.Time = func() time.Time { return time.Now().Add(10 * 365 * 24 * time.Hour) }
	for name, tc := range map[string]*tls.Config{"wrong name": wrongName, "expired": expired} {
		cfg := testConfig(t, s, "alice", nil)
		cfg.TLSConfig = tc
		_, err := client.Dial(ctx, cfg)
		var le *login.Error
		if !errors.Is(err, client.ErrTLS) || !errors.As(err, &le) || le.Step != "tls" {
			t.Errorf("%s certificate: err = %v, want ErrTLS at step tls", name, err)
		}
	}

	// A FAST token is a password too: not sent over an unverified
	// connection without the explicit option.
	db := openCache(t)
	cfg = testConfig(t, s, "alice", db)
	c, err = client.Dial(ctx, cfg) // verified: obtains a token
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	cfg.TLSConfig = insecure
	cfg.Mechanisms = []string{"SCRAM-SHA-256"}
	c, err = client.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.Info().FAST {
		t.Error("the FAST token was used over an unverified connection")
	}
	c.Close()
}

// TestNoSecretsInLogs runs logins at debug level, a failing one included,
// and scans the log for the password and the SASL payloads.
func TestNoSecretsInLogs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	var buf bytes.Buffer
	cfg := testConfig(t, s, "alice", openCache(t))
	cfg.Logger = zerolog.New(&syncWriter{w: &buf}).Level(zerolog.DebugLevel)
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256"} {
		cfg.Mechanisms = []string{mech}
		for range 2 {
			c, err := client.Dial(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		}
	}
	bad := cfg
	bad.Password = "a-wrong-secret"
	bad.Cache = nil // cached SCRAM keys would stand in for the password
	_, err := client.Dial(ctx, bad)
	if err == nil {
		t.Fatal("wrong password accepted")
	}
	logs := buf.String() + err.Error()
	if !strings.Contains(logs, "logged in") {
		t.Fatalf("no debug log captured: %q", logs)
	}
	plain := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00alice-pw"))
	for _, secret := range []string{"alice-pw", "a-wrong-secret", plain, plain[:16]} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains a secret (%q)", secret[:4])
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// TestSMAckCountsEveryStanza: after messages and IQ results (which mellium
// routes to SendIQ callers, never to a handler), the client's answer to
// <r/> counts all of them.
func TestSMAckCountsEveryStanza(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	alice, err := client.Dial(ctx, testConfig(t, s, "alice", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if !alice.Info().SM.Enabled {
		t.Fatal("SM not enabled")
	}
	// Two IQs answered by the server (ping), each a stanza the client parses.
	for range 2 {
		resp, err := alice.SendIQ(ctx, stanza.IQ{Type: stanza.GetIQ, To: jid.MustParse(s.Domain())}.Wrap(
			xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "urn:xmpp:ping", Local: "ping"}})))
		if err != nil {
			t.Fatal(err)
		}
		resp.Close()
	}
	if got := client.StanzasIn(alice); got != 2 {
		t.Errorf("StanzasIn = %d after two IQ results, want 2", got)
	}
}

// TestScramKeysCached: the second SCRAM login with a cache derives no key
// (0 PBKDF2) and still verifies the server. Cached keys stand in for the
// password (as the issue asks: keyed by salt and iteration count); when the
// server refuses them they are forgotten and derived afresh.
func TestScramKeysCached(t *testing.T) {
	ctx := context.Background()
	s := newTestServer(t, xmpptest.Config{ScramIterations: 10000})
	cfg := testConfig(t, s, "alice", openCache(t))
	cfg.NoFAST = true // this test is about the password mechanisms
	cfg.Mechanisms = []string{"SCRAM-SHA-256"}
	cfg.NoSync = true
	for i, wantCached := range []bool{false, true} {
		before := kdfcount.PBKDF2()
		c, err := client.Dial(ctx, cfg)
		if err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
		c.Close()
		calls := kdfcount.PBKDF2() - before
		if c.Info().ScramKeysCached != wantCached || (wantCached && calls != 0) || (!wantCached && calls != 1) {
			t.Errorf("login %d: cached=%v, %d PBKDF2 calls", i, c.Info().ScramKeysCached, calls)
		}
	}
	// The password changes on the server: the cached keys are refused
	// (ErrAuth) and forgotten; the new password then derives new keys.
	s.AddUser("alice", "new-pw")
	if _, err := client.Dial(ctx, cfg); !errors.Is(err, client.ErrAuth) {
		t.Fatalf("old password after a server-side change: %v", err)
	}
	cfg.Password = "new-pw"
	before := kdfcount.PBKDF2()
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if c.Info().ScramKeysCached || kdfcount.PBKDF2()-before != 1 {
		t.Errorf("after a refused login the keys were not derived afresh")
	}
}
