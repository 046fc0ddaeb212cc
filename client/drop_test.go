package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
)

// TestDropsTyped (issue 14): a connection lost during the login, during the
// sync or during the session matches ErrConnection (and is safe to retry);
// a deadline matches ErrTimeout. Before, a peer closing during the login
// was ErrProtocol and a drop mid-sync matched no sentinel.
func TestDropsTyped(t *testing.T) {
	t.Run("login", func(t *testing.T) {
		s := newTestServer(t, xmpptest.Config{Fault: func(int) xmpptest.Fault { return xmpptest.Fault{CloseAfter: 300} }})
		_, err := client.Dial(context.Background(), testConfig(t, s, "alice", nil))
		if !errors.Is(err, client.ErrConnection) || errors.Is(err, client.ErrProtocol) {
			t.Fatalf("closed mid-login: %v, want ErrConnection", err)
		}
	})
	t.Run("session", func(t *testing.T) {
		s := newTestServer(t, xmpptest.Config{})
		events, onEvent := eventsTo(16)
		cfg := testConfig(t, s, "alice", nil)
		cfg.OnEvent = onEvent
		c, err := client.Dial(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s.CutConnection(lastConn(t, s))
		off := waitEvent(t, events, client.EventOffline, 10*time.Second)
		if !errors.Is(off.Err, client.ErrConnection) || !client.SafeToRetry(off.Err) {
			t.Fatalf("offline with %v, want ErrConnection, safe to retry", off.Err)
		}
	})
	t.Run("sync", func(t *testing.T) {
		s := newTestServer(t, xmpptest.Config{Fault: func(int) xmpptest.Fault { return xmpptest.Fault{CloseAfter: 60000} }})
		s.InjectArchiveBulk("alice", "bob@localhost", 2000, true)
		cfg := testConfig(t, s, "alice", openCache(t))
		c, err := client.Dial(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err = c.SyncReport(ctx)
		if !errors.Is(err, client.ErrConnection) || !client.SafeToRetry(err) {
			t.Fatalf("dropped mid-sync: %v, want ErrConnection, safe to retry", err)
		}
	})
	t.Run("sync deadline", func(t *testing.T) {
		s := newTestServer(t, xmpptest.Config{Fault: func(int) xmpptest.Fault { return xmpptest.Fault{StallAfter: 60000} }})
		s.InjectArchiveBulk("alice", "bob@localhost", 2000, true)
		cfg := testConfig(t, s, "alice", openCache(t))
		cfg.RequestTimeout = 300 * time.Millisecond
		cfg.KeepAlive = client.KeepAlive{Idle: -1} // the request's own deadline, not liveness
		c, err := client.Dial(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		short, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		<-short.Done()
		if _, err := c.SyncReport(short); !errors.Is(err, client.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("SyncReport past its deadline: %v, want ErrTimeout and context.DeadlineExceeded", err)
		}
		ctx, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel2()
		if _, err := c.SyncReport(ctx); !errors.Is(err, client.ErrTimeout) {
			t.Fatalf("a page that never came: %v, want ErrTimeout", err)
		}
	})
}
