package client_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
	"github.com/pipebind/pipebind/login"
)

// faultOnce makes the server's next connection (only) carry f.
func faultOnce(s *xmpptest.Server, f xmpptest.Fault) {
	target := len(s.Conns())
	s.SetConfig(func(c *xmpptest.Config) {
		c.Fault = func(n int) xmpptest.Fault {
			if n == target {
				return f
			}
			return xmpptest.Fault{}
		}
	})
}

// typed reports whether err is one of the login's typed failures.
func typed(err error) bool {
	var le *login.Error
	return errors.As(err, &le) && (errors.Is(err, client.ErrConnection) || errors.Is(err, client.ErrProtocol) ||
		errors.Is(err, client.ErrRefused) || errors.Is(err, client.ErrTimeout) || errors.Is(err, client.ErrTLS))
}

// TestFaultCloseAtEveryOffset cuts the connection at offsets spread over the
// server's whole login reply, for each path, cold and warm: the user gets a
// typed error, the cache is unchanged, the next login succeeds.
func TestFaultCloseAtEveryOffset(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cfg  xmpptest.Config
		path login.Path
		warm bool
	}{
		{"sasl2 warm", xmpptest.Config{}, login.PathSASL2, true},
		{"sasl2 cold", xmpptest.Config{}, login.PathSASL2, false},
		{"bind2-draft warm", xmpptest.Config{Bind2Draft: true}, login.PathBind2Draft, true},
		{"classic warm", xmpptest.Config{}, login.PathClassic, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, tc.cfg)
			db := openCache(t)
			cfg := testConfig(t, s, "alice", db)
			cfg.NoFAST = true // this test is about the password mechanisms
			cfg.Path, cfg.NoSync, cfg.NoPresence = tc.path, true, true
			if !tc.warm {
				cfg.Cache = nil
			}
			c, err := client.Dial(ctx, cfg) // fills the cache; measures the reply
			if err != nil {
				t.Fatal(err)
			}
			total := int(c.Info().BytesIn)
			c.Close()
			before, _, _ := db.Features(ctx, s.Domain())
			step := max(total/40, 1)
			for off := 1; off < total; off += step {
				faultOnce(s, xmpptest.Fault{CloseAfter: off})
				_, err := client.Dial(ctx, cfg)
				if err == nil {
					t.Fatalf("closed after %d of %d bytes: the login succeeded", off, total)
				}
				if !typed(err) {
					t.Fatalf("closed after %d bytes: untyped error %v", off, err)
				}
				if after, _, _ := db.Features(ctx, s.Domain()); !after.Equal(before) {
					t.Fatalf("closed after %d bytes: the cache changed", off)
				}
			}
			c, err = client.Dial(ctx, cfg)
			if err != nil {
				t.Fatalf("healthy again: %v", err)
			}
			c.Close()
		})
	}
}

func TestFaultMatrix(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		fault xmpptest.Fault
		want  error
	}{
		{"garbage", xmpptest.Fault{Garbage: "<<<not xml at all"}, client.ErrProtocol},
		{"stream error", xmpptest.Fault{StreamError: "system-shutdown"}, &login.StreamError{Condition: "system-shutdown"}},
		{"unexpected element", xmpptest.Fault{UnexpectedElement: "<surprise xmlns='urn:example'/>"}, client.ErrProtocol},
		{"second features", xmpptest.Fault{ExtraFeatures: true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, xmpptest.Config{})
			db := openCache(t)
			cfg := testConfig(t, s, "alice", db)
			cfg.NoSync, cfg.NoPresence = true, true
			c, err := client.Dial(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			before, _, _ := db.Features(ctx, s.Domain())
			faultOnce(s, tc.fault)
			c, err = client.Dial(ctx, cfg)
			switch {
			case tc.want == nil:
				// A second <stream:features/> after the login is not the
				// login's: the session gets it and must end cleanly with an
				// error, not hang or panic.
				if err != nil {
					t.Fatalf("login: %v", err)
				}
				select {
				case <-c.Done():
				case <-time.After(5 * time.Second):
					t.Fatal("the session did not end on an unexpected second features element")
				}
				c.Close()
			case !errors.Is(err, tc.want) || !typed(err):
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if after, _, _ := db.Features(ctx, s.Domain()); !after.Equal(before) {
				t.Error("the cache changed")
			}
			c, err = client.Dial(ctx, cfg)
			if err != nil {
				t.Fatalf("healthy again: %v", err)
			}
			c.Close()
		})
	}
}

// TestFaultStall: a server that stops answering costs the configured
// timeout, a typed error, and no goroutine left behind.
func TestFaultStall(t *testing.T) {
	s := newTestServer(t, xmpptest.Config{})
	cfg := testConfig(t, s, "alice", openCache(t))
	cfg.NoSync, cfg.NoPresence = true, true
	for _, at := range []int{1, 200, 600} {
		faultOnce(s, xmpptest.Fault{StallAfter: at})
		cfg.Timeout = 300 * time.Millisecond
		start := time.Now()
		_, err := client.Dial(context.Background(), cfg)
		if !errors.Is(err, client.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("stall after %d bytes: err = %v, want ErrTimeout", at, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("stall after %d bytes: Dial took %s", at, d)
		}
	}
	cfg.Timeout = 0
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("healthy again: %v", err)
	}
	c.Close()
	if leaked := clientGoroutines(); leaked != "" {
		t.Errorf("goroutines left behind:\n%s", leaked)
	}
}

// clientGoroutines returns the stacks of goroutines still running client or
// login code, waiting (bounded) for exiting ones to finish.
func clientGoroutines() string {
	deadline := time.Now().Add(2 * time.Second)
	for {
		leaked := runningClientCode()
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond)
	}
}

var _ = cache.Features{}

// TestFaultRefusePipelined: a server that refuses pipelined data costs one
// reconnect, once; the cache then remembers it and later logins read the
// features first.
func TestFaultRefusePipelined(t *testing.T) {
	ctx := context.Background()
	s := newTestServer(t, xmpptest.Config{Fault: func(int) xmpptest.Fault { return xmpptest.Fault{RefusePipelined: true} }})
	db := openCache(t)
	cfg := testConfig(t, s, "alice", db)
	cfg.NoSync, cfg.NoPresence, cfg.Mechanisms = true, true, []string{"PLAIN"}
	for i, want := range []struct{ attempts, rt int }{{1, 2}, {2, 2}, {1, 2}} {
		c, err := client.Dial(ctx, cfg)
		if err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
		info := c.Info()
		c.Close()
		if info.Attempts != want.attempts || info.RoundTrips != want.rt {
			t.Errorf("login %d: %d attempts, %d round trips; want %d, %d", i, info.Attempts, info.RoundTrips, want.attempts, want.rt)
		}
	}
	f, ok, err := db.Features(ctx, s.Domain())
	if err != nil || !ok || !f.NoPipeline {
		t.Errorf("cache: %+v %v %v, want NoPipeline", f, ok, err)
	}
}
