package client_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/ejabberdtest"
	"github.com/pipebind/pipebind/internal/kdfcount"
	"github.com/pipebind/pipebind/internal/prosodytest"
	"github.com/pipebind/pipebind/login"
)

// realPeer is what the FAST and resume integration tests need of Prosody or
// ejabberd.
type realPeer struct {
	domain, addr string
	tls          *tls.Config
	password     func(user string) string
	register     func(ctx context.Context, user, password string) error
	// forgetTokens deletes every FAST token the server stores; nil for
	// ejabberd 24.12, which has no command for it (mnesia_table_clear is
	// internal, and no account command touches mod_auth_fast's table).
	forgetTokens func(t *testing.T)
	// passwordRevokes: a password change revokes the account's FAST
	// tokens (Prosody). ejabberd 24.12 keeps them: its mod_auth_fast has
	// no set_password hook yet.
	passwordRevokes bool
}

// realPeers starts Prosody 13 or ejabberd 24.12 for a subtest.
var realPeers = []struct {
	name  string
	start func(t *testing.T) realPeer
}{
	{"prosody", func(t *testing.T) realPeer {
		s := prosodytest.StartT(t, prosodytest.Options{})
		return realPeer{
			domain: s.Domain, addr: s.DirectTLSAddr, tls: s.TLSConfig(),
			password:        func(u string) string { return s.Users[u] },
			register:        s.Register,
			passwordRevokes: true,
			forgetTokens: func(t *testing.T) {
				t.Helper()
				// mod_sasl2_fast keeps tokens in the "fast_tokens" map store;
				// internal storage reads its files on every access, so
				// removing them makes the running server forget the tokens.
				dirs, err := filepath.Glob(filepath.Join(s.Dir, "data", "*", "fast*tokens"))
				if err != nil || len(dirs) != 1 {
					t.Fatalf("prosody's fast_tokens store: %v (found %q)", err, dirs)
				}
				if err := os.RemoveAll(dirs[0]); err != nil {
					t.Fatal(err)
				}
			},
		}
	}},
	{"ejabberd", func(t *testing.T) realPeer {
		s := ejabberdtest.StartT(t, ejabberdtest.Options{})
		return realPeer{
			domain: s.Domain, addr: s.DirectTLSAddr, tls: s.TLSConfig(),
			password: func(u string) string { return s.Users[u] },
			register: s.Register,
		}
	}},
}

// realLogger logs the client's debug events to the test (shown with -v or
// on failure). Secrets never reach the logger.
func realLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel).With().Timestamp().Logger()
}

func realOpenCache(t *testing.T, ctx context.Context) *cache.DB {
	t.Helper()
	db, err := cache.Open(ctx, filepath.Join(t.TempDir(), "cache.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// realStoredToken returns the account's FAST token in the cache (ok false when
// there is none).
func realStoredToken(t *testing.T, ctx context.Context, db *cache.DB, account string) (cache.FastToken, bool) {
	t.Helper()
	tok, ok, err := db.FastTokenFor(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	return tok, ok
}

func realDialOnce(t *testing.T, ctx context.Context, cfg client.Config) client.Info {
	t.Helper()
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	info := c.Info()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return info
}

// TestIntegrationFAST runs XEP-0484 against Prosody 13 and ejabberd 24.12:
// a password login obtains a token that the cache stores; the next login
// uses it in one round trip after TLS with no password hashing; a token the
// server no longer accepts (Prosody: password changed, token store deleted;
// both: superseded by a newer token of the same installation) costs a
// password login on the same stream without an error, is deleted from the
// cache and replaced by the token the server issues with that login.
// ejabberd 24.12 keeps tokens across a password change: that login still
// uses the token.
func TestIntegrationFAST(t *testing.T) {
	for _, peer := range realPeers {
		t.Run(peer.name, func(t *testing.T) {
			p := peer.start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			config := func(t *testing.T, user string, db *cache.DB) client.Config {
				return client.Config{
					JID: jid.MustParse(user + "@" + p.domain), Password: p.password(user),
					Addr: p.addr, TLS: client.TLSDirect, TLSConfig: p.tls,
					Cache: db, NoSync: true, Logger: realLogger(t),
				}
			}

			t.Run("token-obtained-then-used", func(t *testing.T) {
				db := realOpenCache(t, ctx)
				cfg := config(t, "alice", db)
				account := cfg.JID.Bare().String()

				first := realDialOnce(t, ctx, cfg)
				nt := first.NewToken
				if first.FAST || nt == nil {
					t.Fatalf("password login: FAST %v, new token %v; want a token requested and issued", first.FAST, nt)
				}
				if !strings.HasPrefix(nt.Mechanism, "HT-SHA-256-") || nt.Mechanism == "HT-SHA-256-UNIQ" {
					t.Errorf("token mechanism %q: want HT-SHA-256-* and never UNIQ on %s", nt.Mechanism, first.TLSVersion)
				}
				if len(nt.Secret) != 0 {
					t.Error("Info().NewToken carries the secret; the application's copy must not")
				}
				if !nt.Expiry.After(time.Now()) {
					t.Errorf("token expiry %v is not in the future", nt.Expiry)
				}
				toks, err := db.ListFastTokens(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(toks) != 1 || toks[0].Account != account || toks[0].Mechanism != nt.Mechanism ||
					!toks[0].Expiry.Equal(nt.Expiry.Truncate(time.Second)) {
					t.Fatalf("cached tokens %+v; want one for %s, %s, expiring %v", toks, account, nt.Mechanism, nt.Expiry)
				}
				t.Logf("password login: %s, %d round trips; token %s expiring %v",
					first.Mechanism, first.RoundTrips, nt.Mechanism, nt.Expiry)

				before := kdfcount.PBKDF2()
				second := realDialOnce(t, ctx, cfg)
				calls := kdfcount.PBKDF2() - before
				t.Logf("token login: %s, %d round trips, login %v, %d PBKDF2", second.Mechanism, second.RoundTrips, second.Timings.Login, calls)
				if !second.FAST || second.Mechanism != nt.Mechanism || second.TokenRejected != "" {
					t.Errorf("second login: FAST %v mechanism %s rejected %q; want FAST with %s",
						second.FAST, second.Mechanism, second.TokenRejected, nt.Mechanism)
				}
				if second.RoundTrips != 1 || second.Source != login.SourceCache || second.Attempts != 1 {
					t.Errorf("second login: %d round trips after TLS (source %s, %d attempts); want 1 from the cache in 1 attempt",
						second.RoundTrips, second.Source, second.Attempts)
				}
				if calls != 0 || second.ScramKeysCached {
					t.Errorf("second login: %d PBKDF2 derivations, SCRAM keys used %v; want none", calls, second.ScramKeysCached)
				}
				if second.JID.Resourcepart() == "" || !second.SM.Enabled {
					t.Errorf("second login: bound %s, SM %+v; want a bound, SM-enabled session", second.JID, second.SM)
				}
				if _, ok := realStoredToken(t, ctx, db, account); !ok {
					t.Error("the token is no longer cached after it was used")
				}
			})

			// fallback checks a login whose cached token the server no
			// longer accepts: no error, the token rejected, the old token
			// deleted, a new one stored when issued and usable next time.
			fallback := func(t *testing.T, db *cache.DB, cfg client.Config, old cache.FastToken) {
				t.Helper()
				account := cfg.JID.Bare().String()
				info := realDialOnce(t, ctx, cfg)
				t.Logf("after invalidation: rejected %q, mechanism %s, %d round trips, %d attempts, new token %v",
					info.TokenRejected, info.Mechanism, info.RoundTrips, info.Attempts, info.NewToken)
				if info.TokenRejected == "" || info.FAST || strings.HasPrefix(info.Mechanism, "HT-") {
					t.Fatalf("login: rejected %q FAST %v mechanism %s; want the token rejected and a password mechanism",
						info.TokenRejected, info.FAST, info.Mechanism)
				}
				if info.Attempts != 1 {
					// Prosody 13 and ejabberd 24.12 keep the stream open
					// after refusing a token (XEP-0388 allows the retry).
					t.Errorf("fallback took %d connections; want the password on the same stream", info.Attempts)
				}
				if c := info.TokenRejected; c != "not-authorized" && c != "credentials-expired" {
					t.Errorf("token refused with %q; XEP-0484 names not-authorized or credentials-expired", c)
				}
				tok, ok := realStoredToken(t, ctx, db, account)
				switch {
				case info.NewToken == nil && ok:
					t.Fatal("the refused token is still cached")
				case info.NewToken != nil && !ok:
					t.Fatal("the server issued a new token but the cache holds none")
				case ok && bytes.Equal(tok.Token, old.Token):
					t.Fatal("the cache still holds the refused token")
				case ok && tok.Mechanism != info.NewToken.Mechanism:
					t.Errorf("cached token for %s, issued for %s", tok.Mechanism, info.NewToken.Mechanism)
				}
				if info.NewToken == nil {
					return
				}
				next := realDialOnce(t, ctx, cfg)
				if !next.FAST || next.TokenRejected != "" || next.RoundTrips != 1 {
					t.Errorf("login with the new token: FAST %v rejected %q, %d round trips; want FAST in 1",
						next.FAST, next.TokenRejected, next.RoundTrips)
				}
			}

			t.Run("password-changed", func(t *testing.T) {
				db := realOpenCache(t, ctx)
				if err := p.register(ctx, "carol", "carol-pw-1"); err != nil {
					t.Fatal(err)
				}
				cfg := config(t, "carol", db)
				first := realDialOnce(t, ctx, cfg)
				issued := time.Now()
				old, ok := realStoredToken(t, ctx, db, cfg.JID.Bare().String())
				if first.NewToken == nil || !ok {
					t.Fatalf("password login: new token %v, cached %v; want one", first.NewToken, ok)
				}
				// Prosody compares the token's issue time with the
				// password's change time in whole seconds (os.time()): a
				// change within the second of issue would not invalidate it.
				// Wait for the clock to pass that second (at most 1 s).
				tick := time.NewTimer(time.Until(issued.Truncate(time.Second).Add(time.Second)))
				select {
				case <-tick.C:
				case <-ctx.Done():
					t.Fatal(ctx.Err())
				}
				if err := p.register(ctx, "carol", "carol-pw-2"); err != nil {
					t.Fatal(err)
				}
				cfg.Password = "carol-pw-2"
				if !p.passwordRevokes {
					// The token outlives the password change: the login
					// uses it, without an error.
					info := realDialOnce(t, ctx, cfg)
					if !info.FAST || info.TokenRejected != "" {
						t.Errorf("login after a password change: FAST %v rejected %q; ejabberd 24.12 keeps tokens across password changes",
							info.FAST, info.TokenRejected)
					}
					return
				}
				fallback(t, db, cfg, old)
			})

			if p.forgetTokens != nil {
				t.Run("token-forgotten", func(t *testing.T) {
					db := realOpenCache(t, ctx)
					if err := p.register(ctx, "dave", "dave-pw-1"); err != nil {
						t.Fatal(err)
					}
					cfg := config(t, "dave", db)
					first := realDialOnce(t, ctx, cfg)
					old, ok := realStoredToken(t, ctx, db, cfg.JID.Bare().String())
					if first.NewToken == nil || !ok {
						t.Fatalf("password login: new token %v, cached %v; want one", first.NewToken, ok)
					}
					p.forgetTokens(t)
					fallback(t, db, cfg, old)
				})
			}

			// A password login of the same installation obtains a newer
			// token, which replaces the unused older one on the server (both
			// keep one pending token per installation): the stored token is
			// then refused. This is what a crash between the server's
			// <success> and the cache's commit leaves behind.
			t.Run("token-superseded", func(t *testing.T) {
				db := realOpenCache(t, ctx)
				if err := p.register(ctx, "erin", "erin-pw-1"); err != nil {
					t.Fatal(err)
				}
				cfg := config(t, "erin", db)
				account := cfg.JID.Bare().String()
				if first := realDialOnce(t, ctx, cfg); first.NewToken == nil {
					t.Fatal("password login: no token issued")
				}
				old, ok := realStoredToken(t, ctx, db, account)
				if !ok {
					t.Fatal("no token cached")
				}
				if err := db.ForgetFastToken(ctx, account); err != nil {
					t.Fatal(err)
				}
				if second := realDialOnce(t, ctx, cfg); second.FAST || second.NewToken == nil {
					t.Fatalf("second password login: FAST %v, new token %v; want a new token", second.FAST, second.NewToken)
				}
				// Put the superseded token back, as the crashed process
				// would have left it.
				if err := db.RecordLogin(ctx, cache.LoginRecord{Account: account, Token: &old}); err != nil {
					t.Fatal(err)
				}
				fallback(t, db, cfg, old)
			})
		})
	}
}

// TestIntegrationAheadRefusedToken (issue 15) runs the catch-up carried in
// the login's write against Prosody 13 and ejabberd 24.12: a warm FAST login
// writes the presence, the archive's first page and the marker fetch behind
// <authenticate> and is ready in that round trip; when the server refuses
// the token, what rode with it is answered with errors or ignored, the
// password follows, the sync asks again and every message is stored and
// delivered exactly once.
func TestIntegrationAheadRefusedToken(t *testing.T) {
	for _, peer := range realPeers {
		t.Run(peer.name, func(t *testing.T) {
			p := peer.start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			if err := p.register(ctx, "frank", "frank-pw-1"); err != nil {
				t.Fatal(err)
			}
			db := realOpenCache(t, ctx)
			got := newDeliveries()
			cfg := client.Config{
				JID: jid.MustParse("frank@" + p.domain), Password: "frank-pw-1",
				Addr: p.addr, TLS: client.TLSDirect, TLSConfig: p.tls, Cache: db,
				OnMessage: got.on, Logger: realLogger(t), KeepAlive: client.KeepAlive{Idle: -1},
			}
			bob, err := client.Dial(ctx, client.Config{
				JID: jid.MustParse("bob@" + p.domain), Password: p.password("bob"),
				Addr: p.addr, TLS: client.TLSDirect, TLSConfig: p.tls,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer bob.Close()
			sent := 0
			send := func(n int) {
				for range n {
					if err := sendChat(bob, cfg.JID.String(), fmt.Sprintf("%s %d", peer.name, sent)); err != nil {
						t.Fatal(err)
					}
					sent++
				}
				if err := pingServer(ctx, bob, p.domain); err != nil {
					t.Fatal(err)
				}
			}
			login := func(want string) client.Info {
				t.Helper()
				c, err := client.Dial(ctx, cfg)
				if err != nil {
					t.Fatalf("%s: %v", want, err)
				}
				defer c.Close()
				rep, err := c.SyncReport(ctx)
				if err != nil {
					t.Fatalf("%s: sync: %v", want, err)
				}
				got.waitFor(t, sent, c.Done())
				info := c.Info()
				t.Logf("%s: FAST %v, rejected %q, after-auth sent %v, %d round trips, %d pages, stored %d, ready %v",
					want, info.FAST, info.TokenRejected, info.AfterAuthSent, info.RoundTrips, rep.Pages, rep.Stored, info.Timings.Ready)
				return info
			}
			send(5)
			login("password login") // cold: a token is issued, not used yet
			// Revoke it: a newer password login of the same installation
			// supersedes an unused token on both servers.
			account := cfg.JID.Bare().String()
			old, ok := realStoredToken(t, ctx, db, account)
			if !ok {
				t.Fatal("no token cached")
			}
			if err := db.ForgetFastToken(ctx, account); err != nil {
				t.Fatal(err)
			}
			login("password login issuing a newer token")
			if err := db.RecordLogin(ctx, cache.LoginRecord{Account: account, Token: &old}); err != nil {
				t.Fatal(err)
			}
			send(7)
			// Prosody 13 refuses and lets the password follow on the stream
			// (whose catch-up is then asked again after the login);
			// ejabberd 24.12, with stanzas waiting behind the refused
			// <authenticate>, closes it: one more connection.
			if info := login("refused token"); info.TokenRejected == "" || info.FAST {
				t.Errorf("refused token: rejected %q, FAST %v; want the token refused and a password login", info.TokenRejected, info.FAST)
			}
			send(3)
			if info := login("token login"); !info.FAST || !info.AfterAuthSent || info.RoundTrips != 1 {
				t.Errorf("token login: FAST %v, after-auth sent %v, %d round trips; want the catch-up in the login's one round trip", info.FAST, info.AfterAuthSent, info.RoundTrips)
			}
			checkBodies(t, db, account, bodiesOf(peer.name, sent))
		})
	}
}

func bodiesOf(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s %d", prefix, i)
	}
	return out
}
