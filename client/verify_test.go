package client_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/kdfcount"
	"github.com/pipebind/pipebind/internal/xmpptest"
	"github.com/pipebind/pipebind/login"
)

// TestVerifyPassword (issue 16, item 1): a cached FAST token or cached SCRAM
// keys carry a login whatever the password, and Info says the password was
// not checked; VerifyPassword uses the password itself, so a wrong one
// fails and a right one is checked (PBKDF2 runs).
func TestVerifyPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name       string
		noFAST     bool
		credential string
	}{{"FAST token", false, "fast-token"}, {"SCRAM keys", true, "scram-keys"}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, xmpptest.Config{})
			cfg := testConfig(t, s, "alice", openCache(t))
			cfg.NoSync, cfg.NoPresence, cfg.NoFAST = true, true, tc.noFAST
			cfg.Mechanisms = []string{"SCRAM-SHA-256"}
			if first := fastDial(t, ctx, cfg); !first.PasswordChecked() || first.Credential() != "password" {
				t.Fatalf("first login: checked %v, credential %s", first.PasswordChecked(), first.Credential())
			}
			cfg.Password = "wrong"
			info := fastDial(t, ctx, cfg)
			if info.PasswordChecked() || info.Credential() != tc.credential {
				t.Errorf("cached login with a wrong password: checked %v, credential %s; want unchecked, %s",
					info.PasswordChecked(), info.Credential(), tc.credential)
			}
			cfg.VerifyPassword = true
			if _, err := client.Dial(ctx, cfg); !errors.Is(err, client.ErrAuth) {
				t.Fatalf("VerifyPassword with a wrong password: %v, want ErrAuth", err)
			}
			cfg.Password = "alice-pw"
			pbkdf2 := kdfcount.PBKDF2()
			info = fastDial(t, ctx, cfg)
			if !info.PasswordChecked() || info.FAST || info.ScramKeysCached || kdfcount.PBKDF2() == pbkdf2 {
				t.Errorf("VerifyPassword: checked %v, FAST %v, keys cached %v, PBKDF2 %d; want the password checked",
					info.PasswordChecked(), info.FAST, info.ScramKeysCached, kdfcount.PBKDF2()-pbkdf2)
			}
		})
	}
}

// TestPasswordFuncLazy (issue 16, item 8): PasswordFunc is not called while
// a cached FAST token carries the login (a bot without a terminal logs in
// on its token); it is called, once, when the token is refused or cannot
// be used on this server; an empty password is the caller's error and
// never sent.
func TestPasswordFuncLazy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	cfg := testConfig(t, s, "alice", openCache(t))
	cfg.NoSync, cfg.NoPresence = true, true
	fastDial(t, ctx, cfg) // a password login: the token is stored
	var calls atomic.Int32
	pw := "alice-pw"
	cfg.Password = ""
	cfg.PasswordFunc = func(context.Context) (string, error) {
		calls.Add(1)
		return pw, nil
	}
	if info := fastDial(t, ctx, cfg); !info.FAST || calls.Load() != 0 {
		t.Fatalf("token login: FAST %v, PasswordFunc called %d times; want FAST, 0", info.FAST, calls.Load())
	}

	s.FailNextFAST("alice", "credentials-expired")
	if info := fastDial(t, ctx, cfg); info.FAST || calls.Load() != 1 || info.Attempts != 2 {
		t.Fatalf("refused token: FAST %v, PasswordFunc called %d times, %d attempts; want the password, 1, 2",
			info.FAST, calls.Load(), info.Attempts)
	}
	// The refused token was replaced; this server no longer offers its
	// mechanism: the password is asked, and the features read afresh.
	fastDial(t, ctx, cfg)
	calls.Store(0)
	s.SetConfig(func(c *xmpptest.Config) { c.FASTMechanisms = []string{"HT-SHA-512-NONE"} })
	if info := fastDial(t, ctx, cfg); info.FAST || calls.Load() != 1 || info.Source != login.SourceNetwork {
		t.Fatalf("unusable token: FAST %v, PasswordFunc called %d times, features from %s", info.FAST, calls.Load(), info.Source)
	}

	cfg.Cache = nil
	pw = ""
	before := len(s.Conns())
	if _, err := client.Dial(ctx, cfg); !errors.Is(err, client.ErrConfig) || len(s.Conns()) != before {
		t.Fatalf("empty password: %v, %d connections; want ErrConfig before connecting", err, len(s.Conns())-before)
	}
}

// TestConfigErrors (issue 16, item 10): mistakes in the Config are
// ErrConfig, found before connecting, never ErrRefused.
func TestConfigErrors(t *testing.T) {
	s := newTestServer(t, xmpptest.Config{})
	for name, f := range map[string]func(*client.Config){
		"unknown mechanism": func(c *client.Config) { c.Mechanisms = []string{"FOO-BAR"} },
		"no mechanism":      func(c *client.Config) { c.Mechanisms = []string{} },
		"no password":       func(c *client.Config) { c.Password = "" },
		"negative page":     func(c *client.Config) { c.SyncPageSize = -1 },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, s, "alice", nil)
			f(&cfg)
			_, err := client.Dial(context.Background(), cfg)
			if !errors.Is(err, client.ErrConfig) || errors.Is(err, client.ErrRefused) {
				t.Errorf("Dial: %v, want ErrConfig", err)
			}
		})
	}
	if n := len(s.Conns()); n != 0 {
		t.Errorf("the server saw %d connections", n)
	}
}
