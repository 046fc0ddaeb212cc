package client_test

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
)

// TestStatus (issue 16, item 10): online after Dial, reconnecting while a
// reconnection is held at its TCP connect, online again once it is let
// through, closed after Close.
func TestStatus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	gate := make(chan struct{})
	dials := 0
	ev := make(events, 64)
	cfg := testConfig(t, s, "alice", openCache(t))
	cfg.NoSync, cfg.Reconnect, cfg.OnEvent = true, true, ev.on
	cfg.Backoff = client.Backoff{Min: time.Millisecond, Max: 2 * time.Millisecond}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials++ // one login at a time: no race
		if dials > 1 {
			select {
			case <-gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st := c.Status(); st != client.StatusOnline {
		t.Fatalf("after Dial: %s", st)
	}
	s.CutConnection(lastConn(t, s))
	ev.wait(t, client.EventConnecting)
	if st := c.Status(); st != client.StatusReconnecting {
		t.Errorf("while reconnecting: %s", st)
	}
	close(gate)
	ev.wait(t, client.EventResumed)
	if st := c.Status(); st != client.StatusOnline {
		t.Errorf("after resuming: %s", st)
	}
	c.Close()
	if st := c.Status(); st != client.StatusClosed {
		t.Errorf("after Close: %s", st)
	}
	if b, _ := client.StatusReconnecting.MarshalText(); string(b) != "reconnecting" {
		t.Errorf("MarshalText = %s", b)
	}
}

// TestFlush (issue 16, item 10): when Flush returns, the server has
// processed every message sent before it (here: archived it for bob).
func TestFlush(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	cfg := testConfig(t, s, "alice", nil)
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bodies := []string{"one", "two", "three"}
	for _, b := range bodies {
		if err := c.Send(ctx, chatMessage("bob@"+s.Domain(), b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range s.Archive("bob") {
		got = append(got, m.Body)
	}
	if !slices.Equal(got, bodies) {
		t.Errorf("bob's archive after Flush: %q, want %q", got, bodies)
	}
	c.Close()
	if err := c.Flush(ctx); err == nil {
		t.Error("Flush after Close succeeded")
	}
}
