package client_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
)

// TestIdleSessionWaitsShallow: an idle session's reading goroutine waits
// for input on the socket without reading (wire.Conn.WaitInput's
// readable wait), not inside crypto/tls's read under the decoder, so that
// the runtime can shrink its stack to 4 KiB: a fleet of idle bots pays
// that per session, not 8.
func TestIdleSessionWaitsShallow(t *testing.T) {
	s := newTestServer(t, xmpptest.Config{})
	cfg := testConfig(t, s, "alice", openCache(t))
	cfg.NoSync, cfg.NoPresence = true, true
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The serve goroutine reaches its wait soon after Dial returns.
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := waitingInput()
		if g != "" {
			if !strings.Contains(g, "wire.waitReadable") || strings.Contains(g, "crypto/tls.(*Conn).Read") {
				t.Fatalf("the idle session's goroutine waits deep, in a read:\n%s", g)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no goroutine waits in wire.Conn.WaitInput")
		}
		runtime.Gosched()
	}
}

// waitingInput is the stack of a goroutine inside wire.Conn.WaitInput and
// blocked in the network poller, "" if none.
func waitingInput() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "(*Conn).WaitInput") && strings.Contains(g, "runtime_pollWait") {
			return g
		}
	}
	return ""
}
