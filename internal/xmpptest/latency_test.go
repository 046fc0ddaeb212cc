package xmpptest

import (
	"errors"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestLatency(t *testing.T) {
	const lat = 20 * time.Millisecond
	s := newTestServer(t, Config{Latency: lat})
	start := time.Now()
	// TLS 1.3 handshake (one round trip before the client's Finished) and a
	// pipelined SASL2 PLAIN login (one more): at least 2 RTT = 4×lat.
	c, full := login(t, s, "alice", "secret", "lat")
	if d := time.Since(start); d < 4*lat {
		t.Errorf("login took %v, want ≥ %v", d, 4*lat)
	}
	if full == "" {
		t.Fatal("no JID")
	}
	// One more round trip through the bound session.
	start = time.Now()
	c.write("<message to='" + full + "' type='chat' id='m'><body>self</body></message>")
	if m := c.expect(nsClient, "message"); m.attr("id") != "m" {
		t.Errorf("got %s", m.String())
	}
	if d := time.Since(start); d < 2*lat {
		t.Errorf("round trip took %v, want ≥ %v", d, 2*lat)
	}
	c.close()
	waitDone(t, onlyConn(t, s))
	if err := onlyConn(t, s).Err(); err != nil {
		t.Errorf("Err = %v", err)
	}
}

// Separate directions: only server-to-client output is delayed.
func TestWriteLatencyOnly(t *testing.T) {
	const lat = 30 * time.Millisecond
	s := newTestServer(t, Config{WriteLatency: lat})
	start := time.Now()
	c, _ := login(t, s, "alice", "secret", "w")
	if d := time.Since(start); d < 2*lat {
		t.Errorf("login took %v, want ≥ %v", d, 2*lat)
	}
	c.close()
}

// Close with a connection that never reads and output still queued must
// return and leave no goroutine (checked by the package's goroutine test
// style: Close waits for everything).
func TestLatencyClose(t *testing.T) {
	s := NewServer(Config{Users: testUsers, Latency: 50 * time.Millisecond})
	c, _ := login(t, s, "alice", "secret", "x")
	c.write("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(testTimeout):
		t.Fatal("Close hung")
	}
	buf := make([]byte, 1<<20)
	var stacks string
	for deadline := time.Now().Add(time.Second); ; time.Sleep(10 * time.Millisecond) {
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "xmpptest.(*latencyConn)") || time.Now().After(deadline) {
			break
		}
	}
	if strings.Contains(stacks, "xmpptest.(*latencyConn)") {
		t.Errorf("a latencyConn goroutine survived Close:\n%s", stacks)
	}
}

// Chunks are pipelined (not serialized), ordered and keep their boundaries,
// in both directions.
func TestLatencyConnPipelines(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	const lat = 40 * time.Millisecond
	lc := newLatencyConn(<-accepted, lat, lat)

	// Server to peer.
	start := time.Now()
	for i := range 5 {
		if _, err := lc.Write([]byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	_ = peer.SetReadDeadline(time.Now().Add(testTimeout))
	got := make([]byte, 0, 5)
	buf := make([]byte, 16)
	for len(got) < 5 {
		n, err := peer.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if d := time.Since(start); d < lat || d > lat+lat*3/2 {
		t.Errorf("5 writes delivered after %v, want about %v", d, lat)
	}
	if string(got) != "abcde" {
		t.Errorf("got %q", got)
	}

	// Peer to server: one Read per chunk.
	start = time.Now()
	for _, s := range []string{"xy", "z"} {
		if _, err := peer.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // separate TCP segments
	}
	_ = lc.SetReadDeadline(time.Now().Add(testTimeout))
	var reads []string
	for len(reads) < 2 {
		n, err := lc.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		reads = append(reads, string(buf[:n]))
	}
	if d := time.Since(start); d < lat {
		t.Errorf("read after %v, want ≥ %v", d, lat)
	}
	if reads[0] != "xy" || reads[1] != "z" {
		t.Errorf("reads = %q", reads)
	}

	// Read deadline.
	_ = lc.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := lc.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read past deadline: %v", err)
	}
	if err := lc.Close(); err != nil {
		t.Error(err)
	}
	if _, err := lc.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
	if _, err := lc.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
}
