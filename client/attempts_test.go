package client_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
	"github.com/pipebind/pipebind/login"
)

// faultsFrom gives the server's connections from the next one on the
// faults in order (the first to the next connection), none after them.
func faultsFrom(s *xmpptest.Server, faults ...xmpptest.Fault) {
	first := len(s.Conns())
	s.SetConfig(func(c *xmpptest.Config) {
		c.Fault = func(n int) xmpptest.Fault {
			if i := n - first; i >= 0 && i < len(faults) {
				return faults[i]
			}
			return xmpptest.Fault{}
		}
	})
}

// TestAttempts reaches every count Info.Attempts documents, each with the
// retries that make it, and checks that each attempt was a connection.
func TestAttempts(t *testing.T) {
	refusePipelined := xmpptest.Fault{RefusePipelined: true}
	closeOnFailure := xmpptest.Fault{CloseAfterSASL2Failure: true}
	for _, tc := range []struct {
		name string
		// prepare runs after a first login that stored features and a
		// FAST token, before the login under test.
		prepare  func(t *testing.T, s *xmpptest.Server, cfg client.Config)
		attempts int
		// tokenRefused: the login under test used the password because
		// the token was refused, and obtained a new one.
		tokenRefused bool
	}{
		{"first attempt", func(*testing.T, *xmpptest.Server, client.Config) {}, 1, false},
		{"pipelining refused", func(_ *testing.T, s *xmpptest.Server, _ client.Config) {
			faultsFrom(s, refusePipelined)
		}, 2, false},
		{"stale cache", func(_ *testing.T, s *xmpptest.Server, _ client.Config) {
			s.SetConfig(func(c *xmpptest.Config) { c.NoSASL2 = true })
		}, 2, false},
		{"token refused, stream closed", func(_ *testing.T, s *xmpptest.Server, _ client.Config) {
			s.FailNextFAST("alice", "credentials-expired")
			faultsFrom(s, closeOnFailure)
		}, 2, true},
		{"pipelining refused, then token refused", func(_ *testing.T, s *xmpptest.Server, _ client.Config) {
			s.FailNextFAST("alice", "credentials-expired")
			faultsFrom(s, refusePipelined, closeOnFailure)
		}, 3, true},
		{"stale cache, then token refused", func(t *testing.T, s *xmpptest.Server, cfg client.Config) {
			// The cache must plan a password login while the token is
			// kept: FAST goes away for one login (stale: the token is
			// not offered; the features without FAST are stored, the
			// token kept), then comes back, so the next login finds the
			// cache stale again and tries the token from the live
			// features, which the server refuses.
			s.SetConfig(func(c *xmpptest.Config) { c.NoFAST = true })
			if info := fastDial(t, context.Background(), cfg); info.Attempts != 2 || info.FAST {
				t.Fatalf("FAST withdrawn: attempts %d FAST %v, want a password login in 2", info.Attempts, info.FAST)
			}
			s.SetConfig(func(c *xmpptest.Config) { c.NoFAST = false })
			s.FailNextFAST("alice", "credentials-expired")
			faultsFrom(s, xmpptest.Fault{}, closeOnFailure)
		}, 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s := newTestServer(t, xmpptest.Config{})
			db := openCache(t)
			cfg := testConfig(t, s, "alice", db)
			cfg.NoSync, cfg.NoPresence = true, true
			fastDial(t, ctx, cfg) // features and a FAST token in the cache
			old, ok := storedToken(t, db)
			if !ok {
				t.Fatal("no FAST token stored by the first login")
			}
			tc.prepare(t, s, cfg)
			conns, before := len(s.Conns()), s.Logins("alice")
			info := fastDial(t, ctx, cfg)
			if info.Attempts != tc.attempts {
				t.Errorf("Attempts = %d, want %d", info.Attempts, tc.attempts)
			}
			if n := len(s.Conns()) - conns; n != tc.attempts {
				t.Errorf("%d connections for %d attempts", n, tc.attempts)
			}
			if tc.attempts > 1 && info.Source != login.SourceNetwork {
				t.Errorf("Source = %s after a retry, want network", info.Source)
			}
			if !tc.tokenRefused {
				return
			}
			if n := s.Logins("alice").FASTFailed - before.FASTFailed; n != 1 {
				t.Errorf("the server refused %d FAST authentications, want 1", n)
			}
			now, ok := storedToken(t, db)
			if info.FAST || !ok || bytes.Equal(now.Token, old.Token) || info.NewToken == nil {
				t.Errorf("FAST %v, new token %v, stored %v (the refused one: %v); want a password login that replaced the token",
					info.FAST, info.NewToken, ok, bytes.Equal(now.Token, old.Token))
			}
		})
	}
}
