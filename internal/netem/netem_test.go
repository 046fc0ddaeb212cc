package netem

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http/httptest"
	"testing"
	"time"
)

// echoServer echoes each read back as one write.
func echoServer(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func newProxy(t testing.TB, target string, cfg Config) *Proxy {
	p, err := New(target, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestRoundTripLatencyAndFlights(t *testing.T) {
	p := newProxy(t, echoServer(t), RTT(40*time.Millisecond))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	for i := range 3 {
		start := time.Now()
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:4]); err != nil {
			t.Fatal(err)
		}
		rtt := time.Since(start)
		if rtt < 40*time.Millisecond || rtt > 200*time.Millisecond {
			t.Errorf("round trip %d took %v, want about 40ms", i, rtt)
		}
	}
	st := p.Conns()[0].Stats()
	if st.Flights != 3 || st.BytesUp != 12 || st.BytesDown != 12 {
		t.Errorf("stats %+v, want 3 flights, 12 bytes each way", st)
	}
}

func TestPipelinedWritesAreOneFlight(t *testing.T) {
	cfg := RTT(60 * time.Millisecond)
	cfg.NoConnectDelay = true
	p := newProxy(t, echoServer(t), cfg)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	for range 5 {
		c.Write([]byte("abcde"))
		time.Sleep(2 * time.Millisecond)
	}
	buf := make([]byte, 25)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, bytes.Repeat([]byte("abcde"), 5)) {
		t.Fatalf("got %q", buf)
	}
	if d := time.Since(start); d > 150*time.Millisecond {
		t.Errorf("pipelined writes took %v, want about one RTT (60ms)", d)
	}
	if st := p.Conns()[0].Stats(); st.Flights != 1 {
		t.Errorf("flights %d, want 1", st.Flights)
	}
}

func TestConnectCostsOneRTT(t *testing.T) {
	p := newProxy(t, echoServer(t), RTT(40*time.Millisecond))
	start := time.Now()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	// Connect (1 RTT, charged to the first bytes) + 1 RTT.
	if d := time.Since(start); d < 80*time.Millisecond || d > 250*time.Millisecond {
		t.Errorf("connect + round trip took %v, want about 80ms", d)
	}
}

func TestOrderWithJitterAndBandwidth(t *testing.T) {
	p := newProxy(t, echoServer(t), Config{Latency: 5 * time.Millisecond, Jitter: 5 * time.Millisecond, Bandwidth: 1 << 20})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var want []byte
	go func() {
		for i := range 200 {
			b := bytes.Repeat([]byte{byte(i)}, 100+i)
			c.Write(b)
		}
	}()
	for i := range 200 {
		want = append(want, bytes.Repeat([]byte{byte(i)}, 100+i)...)
	}
	got := make([]byte, len(want))
	start := time.Now()
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes reordered or corrupted")
	}
	// 39,900 bytes each way at 1 MiB/s is at least ~38 ms.
	if d := time.Since(start); d < 35*time.Millisecond {
		t.Errorf("transfer took %v; bandwidth limit not applied", d)
	}
}

func TestTLS13HandshakeIsOneFlight(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.StartTLS()
	defer srv.Close()
	p := newProxy(t, ln.Addr().String(), RTT(20*time.Millisecond))
	c, err := tls.Dial("tcp", p.Addr(), &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Flight 1: ClientHello; flight 2: the client's Finished, joined by
	// the first application write.
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	buf := make([]byte, 1)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	if st := p.Conns()[0].Stats(); st.Flights != 2 {
		t.Errorf("flights after one request: %d, want 2", st.Flights)
	}
}

func TestCloseEndsConnections(t *testing.T) {
	p, err := New(echoServer(t), RTT(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("x"))
	for p.NumConns() == 0 {
		time.Sleep(time.Millisecond)
	}
	p.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("connection still open after the proxy closed: %v", err)
		}
	}
}

// BenchmarkProxyOverhead measures a 64-byte echo round trip directly and
// through a zero-latency proxy: the difference is the proxy's cost.
func BenchmarkProxyOverhead(b *testing.B) {
	target := echoServer(b)
	run := func(b *testing.B, addr string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		msg := make([]byte, 64)
		buf := make([]byte, 64)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			c.Write(msg)
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("direct", func(b *testing.B) { run(b, target) })
	b.Run("proxy", func(b *testing.B) { run(b, newProxy(b, target, Config{}).Addr()) })
}
