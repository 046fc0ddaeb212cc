package client_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/kdfcount"
	"github.com/pipebind/pipebind/internal/xmpptest"
	"github.com/pipebind/pipebind/login"
)

// fastDial logs alice in and returns her Info (the client is closed).
func fastDial(t *testing.T, ctx context.Context, cfg client.Config) client.Info {
	t.Helper()
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	info := c.Info()
	c.Close()
	return info
}

func storedToken(t *testing.T, db *cache.DB) (cache.FastToken, bool) {
	t.Helper()
	tok, ok, err := db.FastTokenFor(context.Background(), "alice@localhost")
	if err != nil {
		t.Fatal(err)
	}
	return tok, ok
}

// TestFASTTokenFlow: the first (password) login obtains a token, stored with
// the login; the next one uses it pipelined: one round trip after TLS, no
// PBKDF2, mutual authentication checked.
func TestFASTTokenFlow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	db := openCache(t)
	cfg := testConfig(t, s, "alice", db)
	cfg.NoSync, cfg.NoPresence = true, true

	first := fastDial(t, ctx, cfg)
	if first.FAST || first.NewToken == nil {
		t.Fatalf("first login: FAST %v, NewToken %v; want a password login that obtains a token", first.FAST, first.NewToken)
	}
	if first.NewToken.Secret != nil {
		t.Fatal("Info.NewToken carries the secret")
	}
	tok, ok := storedToken(t, db)
	if !ok || tok.Mechanism != first.NewToken.Mechanism || !tok.Expiry.After(time.Now()) {
		t.Fatalf("stored token = %+v, %v", tok, ok)
	}
	if st := s.Logins("alice"); st.Password != 1 || st.TokensIssued != 1 {
		t.Fatalf("server stats after the first login: %+v", st)
	}

	pbkdf2 := kdfcount.PBKDF2()
	second := fastDial(t, ctx, cfg)
	if !second.FAST || second.Mechanism != tok.Mechanism || second.RoundTrips != 1 || second.Source != login.SourceCache {
		t.Fatalf("second login: FAST %v mechanism %s round trips %d source %s; want FAST %s in 1 from the cache",
			second.FAST, second.Mechanism, second.RoundTrips, second.Source, tok.Mechanism)
	}
	if n := kdfcount.PBKDF2() - pbkdf2; n != 0 {
		t.Fatalf("%d PBKDF2 calls on the FAST login", n)
	}
	if st := s.Logins("alice"); st.FAST != 1 || st.Password != 1 {
		t.Fatalf("server stats after the FAST login: %+v", st)
	}
	if got := lastConn(t, s).ClientFlights(); got != 2 { // the burst, then </stream:stream>
		t.Errorf("the server saw %d client flights, want 2", got)
	}
}

// TestFASTRotation: a token the server rotates replaces the stored one, and
// the next login uses the new one.
func TestFASTRotation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{FASTRotate: true})
	db := openCache(t)
	cfg := testConfig(t, s, "alice", db)
	cfg.NoSync, cfg.NoPresence = true, true
	fastDial(t, ctx, cfg)
	t1, _ := storedToken(t, db)
	info := fastDial(t, ctx, cfg)
	if !info.FAST || info.NewToken == nil {
		t.Fatalf("second login: FAST %v NewToken %v; want FAST with a rotated token", info.FAST, info.NewToken)
	}
	t2, ok := storedToken(t, db)
	if !ok || bytes.Equal(t1.Token, t2.Token) {
		t.Fatal("the rotated token did not replace the stored one")
	}
	if info := fastDial(t, ctx, cfg); !info.FAST {
		t.Fatal("third login did not use the rotated token")
	}
	if st := s.Logins("alice"); st.FAST != 2 || st.FASTFailed != 0 || st.Password != 1 {
		t.Fatalf("server stats: %+v", st)
	}
}

// TestFASTRejectedFallsBack: a token the server refuses (credentials-expired
// or not-authorized) is deleted, and the password login follows on the same
// stream without an error; a new token is obtained on the way.
func TestFASTRejectedFallsBack(t *testing.T) {
	for _, tc := range []struct {
		name     string
		reject   func(*xmpptest.Server)
		wantCond string
	}{
		{"credentials-expired", func(s *xmpptest.Server) { s.FailNextFAST("alice", "credentials-expired") }, "credentials-expired"},
		{"invalidated server-side", func(s *xmpptest.Server) { s.InvalidateFASTTokens("alice") }, "not-authorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s := newTestServer(t, xmpptest.Config{})
			db := openCache(t)
			cfg := testConfig(t, s, "alice", db)
			cfg.NoSync, cfg.NoPresence = true, true
			fastDial(t, ctx, cfg)
			old, _ := storedToken(t, db)
			tc.reject(s)
			conns := len(s.Conns())
			info := fastDial(t, ctx, cfg)
			if info.FAST || info.TokenRejected != tc.wantCond {
				t.Fatalf("FAST %v, TokenRejected %q; want a password login after %s", info.FAST, info.TokenRejected, tc.wantCond)
			}
			if n := len(s.Conns()) - conns; n != 1 {
				t.Errorf("%d connections; the fallback must happen on the same stream", n)
			}
			if info.RoundTrips != 3 || info.Mechanism != "SCRAM-SHA-256" {
				t.Errorf("%s in %d round trips, want SCRAM-SHA-256 in 3 (the token refused, then SCRAM's two)", info.Mechanism, info.RoundTrips)
			}
			now, ok := storedToken(t, db)
			if !ok || bytes.Equal(now.Token, old.Token) || info.NewToken == nil {
				t.Fatalf("after the fallback: stored %v (same as the refused one: %v), NewToken %v", ok, bytes.Equal(now.Token, old.Token), info.NewToken)
			}
			if info := fastDial(t, ctx, cfg); !info.FAST {
				t.Fatal("the login after the fallback did not use the new token")
			}
		})
	}
}

// TestFASTExpiredNotTried: an expired token is never sent.
func TestFASTExpiredNotTried(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	db := openCache(t)
	cfg := testConfig(t, s, "alice", db)
	cfg.NoSync, cfg.NoPresence = true, true
	fastDial(t, ctx, cfg)
	tok, _ := storedToken(t, db)
	tok.Expiry = time.Now().Add(-time.Minute)
	if err := db.RecordLogin(ctx, cache.LoginRecord{Account: "alice@localhost", Token: &tok}); err != nil {
		t.Fatal(err)
	}
	info := fastDial(t, ctx, cfg)
	if info.FAST || info.TokenRejected != "" {
		t.Fatalf("FAST %v TokenRejected %q; an expired token must not be tried", info.FAST, info.TokenRejected)
	}
	if st := s.Logins("alice"); st.FAST != 0 || st.FASTFailed != 0 || st.Password != 2 {
		t.Fatalf("server stats: %+v", st)
	}
}

// TestFASTNoFAST: Config.NoFAST neither requests nor uses tokens.
func TestFASTNoFAST(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	db := openCache(t)
	cfg := testConfig(t, s, "alice", db)
	cfg.NoSync, cfg.NoPresence, cfg.NoFAST = true, true, true
	fastDial(t, ctx, cfg)
	fastDial(t, ctx, cfg)
	if _, ok := storedToken(t, db); ok {
		t.Fatal("a token was stored with NoFAST")
	}
	if st := s.Logins("alice"); st.TokensIssued != 0 || st.FAST != 0 {
		t.Fatalf("server stats: %+v", st)
	}
}
