package client_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
	"github.com/pipebind/pipebind/login"
)

// TestCacheReadOverlapsConnect: a warm Direct-TLS login reads its cache
// while it connects (proposal P1), so a slow connect hides the read: the
// login waits for the cache (Timings.CacheWait) far less than the connect
// takes, and the cached features, installation id and FAST token still
// make the one-write FAST login.
func TestCacheReadOverlapsConnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	db := openCache(t)
	cfg := testConfig(t, s, "alice", db)
	cfg.NoSync, cfg.NoPresence = true, true
	const delay = 200 * time.Millisecond
	for i := range 3 {
		c, err := dialDelayed(ctx, cfg, delay)
		if err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
		info := c.Info()
		c.Close()
		<-lastConn(t, s).Done()
		tm := info.Timings
		if tm.Cache <= 0 || tm.CacheWait < 0 || tm.CacheWait > tm.Cache {
			t.Errorf("login %d: Timings.Cache %v, CacheWait %v", i, tm.Cache, tm.CacheWait)
		}
		if tm.CacheWait >= delay/2 {
			t.Errorf("login %d: waited %v for the cache behind a %v connect", i, tm.CacheWait, delay)
		}
		if lastConn(t, s).UserAgent().ID == "" {
			t.Errorf("login %d: no user-agent id", i)
		}
		if i > 0 && (info.Source != login.SourceCache || !info.FAST || info.RoundTrips != 1) {
			t.Errorf("login %d: %s, FAST %v, %d round trips; want a cached one-write FAST login", i, info.Source, info.FAST, info.RoundTrips)
		}
	}
}

func dialDelayed(ctx context.Context, cfg client.Config, delay time.Duration) (*client.Client, error) {
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return client.Dial(ctx, cfg)
}
