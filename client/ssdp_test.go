package client_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
	"github.com/pipebind/pipebind/login"
)

// XEP-0474 SCRAM Downgrade Protection end to end: the in-process server
// puts the hash of what it advertised into its server-first-message
// (xmpptest.Config.SSDP), and Config.SSDPHashLists makes it cover other
// lists, which is what the client sees when a man in the middle removed
// -PLUS mechanisms or channel-binding types from the features.

// countingLists returns an SSDPHashLists that changes nothing and counts
// its calls: each is one server-first-message with an "h" attribute.
func countingLists(n *atomic.Int32) func(mechs, cbs []string) ([]string, []string) {
	return func(mechs, cbs []string) ([]string, []string) {
		n.Add(1)
		return mechs, cbs
	}
}

// TestSSDPMatchingLists: with SSDP on and honest lists the password login
// works cold and warm (features from the cache, SCRAM keys from the cache),
// with and without a -PLUS mechanism on offer.
func TestSSDPMatchingLists(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name     string
		mechs    []string // server's; nil is the default
		wantMech string
	}{
		{"default mechanisms", nil, "SCRAM-SHA-256"},
		{"with -PLUS", []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"}, "SCRAM-SHA-256-PLUS"},
		{"SHA-1 only", []string{"SCRAM-SHA-1"}, "SCRAM-SHA-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hashed atomic.Int32
			s := newTestServer(t, xmpptest.Config{Mechanisms: tc.mechs, SSDP: true, SSDPHashLists: countingLists(&hashed)})
			db := openCache(t)
			cfg := testConfig(t, s, "alice", db)
			cfg.NoFAST = true // the second login must use SCRAM, not a token
			cfg.NoSync, cfg.NoPresence = true, true
			for i, want := range []struct {
				source login.Source
				cached bool
			}{{login.SourceNetwork, false}, {login.SourceCache, true}} {
				c, err := client.Dial(ctx, cfg)
				if err != nil {
					t.Fatalf("login %d: %v", i, err)
				}
				info := c.Info()
				c.Close()
				if info.Mechanism != tc.wantMech || info.Source != want.source || info.ScramKeysCached != want.cached || info.Attempts != 1 {
					t.Errorf("login %d: mechanism %s source %s keys cached %v attempts %d", i, info.Mechanism, info.Source, info.ScramKeysCached, info.Attempts)
				}
				if got := int(hashed.Load()); got != i+1 {
					t.Errorf("login %d: the server sent %d SSDP hashes in all, want %d", i, got, i+1)
				}
			}
			if st := s.Logins("alice"); st.Password != 2 || st.FAST != 0 {
				t.Errorf("server counted %+v, want 2 password logins", st)
			}
		})
	}
}

// cacheState is what a login may write into the cache for the account and
// the server.
type cacheState struct {
	features   cache.Features
	haveFeat   bool
	scramKeys  []cache.StoredKey
	fastTokens []cache.StoredToken
	pin        string
}

func readCache(t *testing.T, ctx context.Context, db *cache.DB, domain, account string) cacheState {
	t.Helper()
	var st cacheState
	var err error
	if st.features, st.haveFeat, err = db.Features(ctx, domain); err != nil {
		t.Fatal(err)
	}
	if st.scramKeys, err = db.ListScramKeys(ctx); err != nil {
		t.Fatal(err)
	}
	if st.fastTokens, err = db.ListFastTokens(ctx); err != nil {
		t.Fatal(err)
	}
	if st.pin, _, err = db.MechanismPin(ctx, account); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestSSDPMismatch: when the server's hash covers other lists than the
// features the client read, the login fails with ErrInsecure and
// login.ErrDowngrade after at most one clean retry, writes nothing into
// the cache, and works again once the server is honest.
func TestSSDPMismatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addMech := func(m string) func(mechs, cbs []string) ([]string, []string) {
		return func(mechs, cbs []string) ([]string, []string) { return append(mechs, m), cbs }
	}
	for _, tc := range []struct {
		name  string
		lists func(mechs, cbs []string) ([]string, []string)
		warm  bool // a good login filled the cache before the attack
		mechs []string
	}{
		{"plus stripped, cold", addMech("SCRAM-SHA-256-PLUS"), false, nil},
		{"plus stripped, warm", addMech("SCRAM-SHA-256-PLUS"), true, nil},
		{"channel binding stripped, warm", func(mechs, cbs []string) ([]string, []string) {
			return mechs, append(cbs, "tls-server-end-point")
		}, true, nil},
		{"sha-1 only, plus stripped, cold", addMech("SCRAM-SHA-1-PLUS"), false, []string{"SCRAM-SHA-1", "PLAIN"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, xmpptest.Config{Mechanisms: tc.mechs, SSDP: true})
			db := openCache(t)
			cfg := testConfig(t, s, "alice", db)
			cfg.NoSync, cfg.NoPresence = true, true
			// Cold: FAST on, so that a token would be requested and stored
			// if the login got that far. Warm: FAST off, or the cached
			// token would log in without SCRAM.
			cfg.NoFAST = tc.warm
			account := cfg.JID.Bare().String()
			if tc.warm {
				c, err := client.Dial(ctx, cfg)
				if err != nil {
					t.Fatalf("login before the attack: %v", err)
				}
				c.Close()
			}
			before := readCache(t, ctx, db, s.Domain(), account)
			if tc.warm != before.haveFeat || tc.warm != (len(before.scramKeys) == 1) {
				t.Fatalf("cache before the attack: features %v, %d SCRAM keys", before.haveFeat, len(before.scramKeys))
			}
			logins := s.Logins("alice").Password

			s.SetConfig(func(c *xmpptest.Config) { c.SSDPHashLists = tc.lists })
			n := len(s.Conns())
			_, err := client.Dial(ctx, cfg)
			if !errors.Is(err, client.ErrInsecure) || !errors.Is(err, login.ErrDowngrade) {
				t.Fatalf("Dial = %v, want ErrInsecure and login.ErrDowngrade", err)
			}
			if strings.Contains(err.Error(), cfg.Password) {
				t.Errorf("the error holds the password: %q", err)
			}
			if conns := len(s.Conns()) - n; conns < 1 || conns > 2 {
				t.Errorf("%d connections for the refused login, want 1 or 2 (at most one clean retry)", conns)
			}
			if got := s.Logins("alice").Password; got != logins {
				t.Errorf("the server completed %d password logins during the attack", got-logins)
			}
			after := readCache(t, ctx, db, s.Domain(), account)
			if !reflect.DeepEqual(after, before) {
				t.Errorf("the refused login changed the cache:\nbefore %+v\nafter  %+v", before, after)
			}

			// The server is honest again: the next login works and fills
			// the cache.
			s.SetConfig(func(c *xmpptest.Config) { c.SSDPHashLists = nil })
			c, err := client.Dial(ctx, cfg)
			if err != nil {
				t.Fatalf("login after the fix: %v", err)
			}
			info := c.Info()
			c.Close()
			if !strings.HasPrefix(info.Mechanism, "SCRAM-") || info.FAST {
				t.Errorf("login after the fix used %s (FAST %v)", info.Mechanism, info.FAST)
			}
			fixed := readCache(t, ctx, db, s.Domain(), account)
			if !fixed.haveFeat || len(fixed.scramKeys) != 1 || fixed.pin != info.Mechanism {
				t.Errorf("cache after the fix: features %v, SCRAM keys %+v, pin %q", fixed.haveFeat, fixed.scramKeys, fixed.pin)
			}
			if wantToken := !tc.warm; (len(fixed.fastTokens) == 1) != wantToken {
				t.Errorf("FAST tokens after the fix: %+v, want one: %v", fixed.fastTokens, wantToken)
			}
			if got := s.Logins("alice").Password; got != logins+1 {
				t.Errorf("%d password logins after the fix, want 1", got-logins)
			}
		})
	}
}

// TestSSDPOverFAST: XEP-0474 protects SCRAM; a login with a cached FAST
// token is not affected by a hash it never receives, and falls back to a
// refused SCRAM login only when the token is refused.
func TestSSDPOverFAST(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{SSDP: true})
	db := openCache(t)
	cfg := testConfig(t, s, "alice", db)
	cfg.NoSync, cfg.NoPresence = true, true
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	s.SetConfig(func(c *xmpptest.Config) {
		c.SSDPHashLists = func(mechs, cbs []string) ([]string, []string) {
			return append(slices.Clone(mechs), "SCRAM-SHA-256-PLUS"), cbs
		}
	})
	c, err = client.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("FAST login: %v", err)
	}
	info := c.Info()
	c.Close()
	if !info.FAST {
		t.Fatalf("second login used %s, want a FAST token", info.Mechanism)
	}
	// The token is refused: the password login that follows meets the
	// lying hash and is refused as a downgrade.
	s.InvalidateFASTTokens("alice")
	if _, err := client.Dial(ctx, cfg); !errors.Is(err, client.ErrInsecure) || !errors.Is(err, login.ErrDowngrade) {
		t.Fatalf("Dial after the token was refused = %v, want ErrInsecure and login.ErrDowngrade", err)
	}
}
