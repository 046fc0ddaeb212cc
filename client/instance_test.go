package client_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
)

// TestInstancesShareOneCache (issue 14): two clients of one account on one
// cache file each get their own instance, user-agent id and resource
// (stable: a server binds <tag>~<hash of the user-agent id>), and the first
// is not thrown out when the second logs in. Before, both used the
// installation's id, bound the same resource and kicked each other out.
func TestInstancesShareOneCache(t *testing.T) {
	s := newTestServer(t, xmpptest.Config{StableResources: true})
	db := openCache(t)
	events, onEvent := eventsTo(16)
	cfg := testConfig(t, s, "alice", db)
	cfg.NoSync, cfg.Reconnect, cfg.OnEvent = true, true, onEvent
	first, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	a, b := first.Info(), second.Info()
	if a.Instance != "" || b.Instance != "2" || a.JID.Equal(b.JID) {
		t.Fatalf("instances %q and %q bound %s and %s; want the default and 2, two resources", a.Instance, b.Instance, a.JID, b.JID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []*client.Client{first, second} {
		if _, err := s.PingClient(ctx, c.Info().JID.String()); err != nil {
			t.Fatalf("%s after both logged in: %v", c.Info().JID, err)
		}
	}
	select {
	case e := <-events:
		t.Fatalf("event %v (%v): a client was disturbed", e.Kind, e.Err)
	default:
	}
	// Stable: the same instance logs in again with the same resource.
	second.Close()
	again, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if !again.Info().JID.Equal(b.JID) {
		t.Errorf("instance 2 came back as %s, was %s", again.Info().JID, b.JID)
	}
}

// TestInstanceInUse: an instance named in Config that another running
// client holds makes Dial fail with ErrInstanceInUse, before it logs in
// (the claim runs alongside the connect: nothing is written after TLS).
func TestInstanceInUse(t *testing.T) {
	s := newTestServer(t, xmpptest.Config{})
	cfg := testConfig(t, s, "alice", openCache(t))
	cfg.NoSync, cfg.Instance = true, "bot-1"
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := s.Logins("alice")
	if _, err := client.Dial(context.Background(), cfg); !errors.Is(err, client.ErrInstanceInUse) {
		t.Fatalf("a second client of instance bot-1: %v, want ErrInstanceInUse", err)
	}
	if after := s.Logins("alice"); after != before {
		t.Errorf("the server saw a login of the second client: %+v, then %+v", before, after)
	}
}

// TestConflictStopsReconnecting (issue 14): a session the server ends with
// a conflict stream error (another client bound its resource: here a copy
// of the cache file, with the same user-agent id) is not reconnected into
// the same conflict: the client stops with ErrConflict, and the other
// client stays. With ReconnectOnConflict it reconnects.
func TestConflictStopsReconnecting(t *testing.T) {
	for _, again := range []bool{false, true} {
		t.Run(map[bool]string{false: "stop", true: "reconnect"}[again], func(t *testing.T) {
			s := newTestServer(t, xmpptest.Config{StableResources: true})
			dir := t.TempDir()
			orig := filepath.Join(dir, "a.db")
			events, onEvent := eventsTo(16)
			cfg := testConfig(t, s, "alice", nil)
			cfg.CachePath, cfg.NoSync, cfg.Reconnect, cfg.OnEvent = orig, true, true, onEvent
			cfg.ReconnectOnConflict = again
			cfg.Backoff = client.Backoff{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond, MaxAttempts: 1}
			// Two files with one installation id: a copied cache.
			db, err := cache.Open(context.Background(), orig)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.InstallationID(context.Background()); err != nil {
				t.Fatal(err)
			}
			db.Close()
			copyFile(t, orig, filepath.Join(dir, "b.db"), 0o600)
			first, err := client.Dial(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			other := testConfig(t, s, "alice", nil)
			other.CachePath, other.NoSync = filepath.Join(dir, "b.db"), true
			second, err := client.Dial(context.Background(), other)
			if err != nil {
				t.Fatal(err)
			}
			defer second.Close()
			if !first.Info().JID.Equal(second.Info().JID) {
				t.Fatalf("the copy bound %s, not the same resource %s", second.Info().JID, first.Info().JID)
			}
			waitEvent(t, events, client.EventOffline, 10*time.Second)
			if !again {
				closed := waitEvent(t, events, client.EventClosed, 10*time.Second)
				if !errors.Is(closed.Err, client.ErrConflict) || !errors.Is(first.Err(), client.ErrConflict) {
					t.Fatalf("closed with %v (Err %v), want ErrConflict", closed.Err, first.Err())
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if _, err := s.PingClient(ctx, second.Info().JID.String()); err != nil {
					t.Fatalf("the other client was thrown out: %v", err)
				}
				return
			}
			waitEvent(t, events, client.EventConnecting, 10*time.Second)
		})
	}
}

// copyFile copies the file from to a new file to with mode.
func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
