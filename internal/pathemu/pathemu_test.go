//go:build linux

package pathemu

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRTTAccuracy checks connect and echo times against the RTT (see
// nearBest for why the best of several).
func TestRTTAccuracy(t *testing.T) {
	for _, rtt := range []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond} {
		t.Run(rtt.String(), func(t *testing.T) {
			e := newEmu(t, RTT(rtt))
			addr := echoServer(t, e, nil)
			var connects, echoes []time.Duration
			for range 3 {
				start := time.Now()
				c := dial(t, e, nil, addr)
				connects = append(connects, time.Since(start))
				echoes = append(echoes, echo(t, c, "ping"), echo(t, c, "pong"))
				c.Close()
			}
			t.Logf("RTT %v: connects %v, echoes %v", rtt, connects, echoes)
			nearBest(t, "connect", connects, rtt)
			nearBest(t, "echo", echoes, rtt)
		})
	}
}

// tfoSetup enables TCP Fast Open in both namespaces and starts an echo
// server whose listener accepts SYN data. It returns the server's address
// and a dialer that sends data in the SYN when it has a cookie.
func tfoSetup(t *testing.T, e *Emulator) (string, *net.Dialer) {
	for _, ns := range []*Namespace{e.Client(), e.Server()} {
		if err := ns.SetSysctl("net.ipv4.tcp_fastopen", "3"); err != nil {
			t.Fatal(err)
		}
	}
	addr := echoServer(t, e, &net.ListenConfig{Control: sockopt(unix.TCP_FASTOPEN, 16)})
	return addr, &net.Dialer{Control: sockopt(unix.TCP_FASTOPEN_CONNECT, 1)}
}

// firstResponse dials, writes a request and reads its echo; it returns
// the time from the dial to the response and the connection's stats.
func firstResponse(t *testing.T, e *Emulator, d *net.Dialer, addr string) (time.Duration, Stats) {
	return response(t, e, d, addr, "ping")
}

// response is firstResponse with the request req.
func response(t *testing.T, e *Emulator, d *net.Dialer, addr, req string) (time.Duration, Stats) {
	start := time.Now()
	c := dial(t, e, d, addr)
	echo(t, c, req)
	took := time.Since(start)
	st := connOf(t, e, c).Stats()
	c.Close()
	return took, st
}

func TestFastOpen(t *testing.T) {
	const rtt = 50 * time.Millisecond
	e := newEmu(t, RTT(rtt))
	addr, tfo := tfoSetup(t, e)

	took, st := firstResponse(t, e, tfo, addr)
	t.Logf("TFO without a cookie yet: first response after %v, %+v", took, st)
	if st.SYNData || !st.CookieRequested || !st.CookieGranted || st.Flights != 2 {
		t.Errorf("first connection: want a cookie request and grant, no SYN data, 2 flights; got %+v", st)
	}

	// A few tries each (see nearBest).
	var plain, fast []time.Duration
	for range 3 {
		took, st = firstResponse(t, e, &net.Dialer{}, addr)
		if st.SYNData || st.Flights != 2 {
			t.Errorf("without TFO: want no SYN data, 2 flights; got %+v", st)
		}
		plain = append(plain, took)
		took, st = firstResponse(t, e, tfo, addr)
		if !st.SYNData || st.SYNDataLen != 4 || !st.SYNDataAccepted || st.SYNs != 1 || st.Flights != 1 {
			t.Errorf("with a cookie: want 4 bytes of SYN data accepted in 1 flight; got %+v", st)
		}
		fast = append(fast, took)
	}
	t.Logf("first response at RTT %v: without TFO %v, with TFO %v", rtt, plain, fast)
	nearBest(t, "request without TFO", plain, 2*rtt)
	nearBest(t, "request with TFO", fast, rtt)

	// A request larger than a segment (a big ClientHello): the SYN carries
	// what fits in one MSS (1460 at MTU 1500, less the options), the rest
	// goes after the SYN-ACK, one more round trip, as on a real path.
	big := strings.Repeat("x", 4000)
	took, st = response(t, e, tfo, addr, big)
	t.Logf("TFO with %d bytes: response after %v, %+v", len(big), took, st)
	if !st.SYNData || st.SYNDataLen < 1000 || st.SYNDataLen > 1460 || !st.SYNDataAccepted || st.Flights != 2 {
		t.Errorf("big request: want one segment of SYN data accepted, then a second flight; got %+v", st)
	}
}

func TestFastOpenSYNDataDropped(t *testing.T) {
	const rtt = 20 * time.Millisecond
	e := newEmu(t, RTT(rtt))
	addr, d := tfoSetup(t, e)
	if _, st := firstResponse(t, e, d, addr); !st.CookieGranted {
		t.Fatalf("no cookie granted: %+v", st)
	}
	up, down := e.Links()
	up.DropSYNData = true
	if err := e.SetLinks(up, down); err != nil {
		t.Fatal(err)
	}
	// The kernel retransmits the SYN without data after its initial RTO
	// (1 s), then the data once the SYN-ACK did not acknowledge it.
	took, st := firstResponse(t, e, d, addr)
	t.Logf("SYN data dropped: first response after %v, %+v", took, st)
	if !st.SYNData || st.SYNDataAccepted || st.SYNs < 2 || st.DroppedUp < 1 {
		t.Errorf("want SYN data sent, dropped, not accepted, and the SYN retransmitted; got %+v", st)
	}
}

func TestLoss(t *testing.T) {
	e := newEmu(t, Config{Up: Link{Delay: 5 * time.Millisecond}, Down: Link{Delay: 5 * time.Millisecond}, Seed: 1})
	c, s := connPair(t, e)
	// Losses from now on: the handshake is done (a lost SYN costs 1 s).
	lossy := Link{Delay: 5 * time.Millisecond, Loss: 0.05}
	if err := e.SetLinks(lossy, lossy); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 256<<10/16)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		errc <- err
	}()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the data arrived corrupted")
	}
	st := connOf(t, e, c).Stats()
	up, down := e.Totals()
	t.Logf("5%% loss: %+v; totals up %+v down %+v", st, up, down)
	if st.DroppedUp+st.DroppedDown == 0 {
		t.Error("no packet of the connection was dropped")
	}
	if st.DroppedUp != up.Dropped || st.DroppedDown != down.Dropped {
		t.Errorf("the connection's drops (%d up, %d down) differ from the totals (%d, %d)", st.DroppedUp, st.DroppedDown, up.Dropped, down.Dropped)
	}
	if st.BytesUp < int64(len(data)) {
		t.Errorf("BytesUp = %d, want at least %d", st.BytesUp, len(data))
	}
}

func TestBlackhole(t *testing.T) {
	const rtt = 20 * time.Millisecond
	e := newEmu(t, RTT(rtt))
	c := dial(t, e, nil, echoServer(t, e, nil))
	echo(t, c, "before")
	pc := connOf(t, e, c)

	e.SetBlackhole(true)
	up0, down0 := e.Totals()
	if _, err := c.Write([]byte("during")); err != nil {
		t.Fatal(err)
	}
	waitStats(t, pc, "the write to be dropped", func(s Stats) bool { return s.DroppedUp > 0 })
	// Nothing answers: the connection stays silent for many RTTs.
	c.SetReadDeadline(time.Now().Add(15 * rtt))
	buf := make([]byte, 6)
	if n, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read through the blackhole: %q, %v", buf[:n], err)
	}
	up, down := e.Totals()
	if up.Delivered != up0.Delivered || down.Delivered != down0.Delivered {
		t.Errorf("packets passed the blackhole: up %+v -> %+v, down %+v -> %+v", up0, up, down0, down)
	}

	// Off: the kernel's next retransmission gets through.
	e.SetBlackhole(false)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "during" {
		t.Fatalf("after the blackhole: %q, %v", buf, err)
	}
	c.SetReadDeadline(time.Time{})
	echo(t, c, "after")
}

func TestFlights(t *testing.T) {
	e := newEmu(t, RTT(10*time.Millisecond))
	c, s := connPair(t, e)
	pc := connOf(t, e, c)
	flights := func(want int, when string) {
		t.Helper()
		if got := pc.Stats().Flights; got != want {
			t.Errorf("%s: %d flights, want %d", when, got, want)
		}
	}
	answered := func(want int, when string) {
		t.Helper()
		if got := pc.Stats().Answered; got != want {
			t.Errorf("%s: %d flights answered, want %d", when, got, want)
		}
	}
	write := func(conn net.Conn, msg string) {
		t.Helper()
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	read := func(conn net.Conn, want string) {
		t.Helper()
		buf := make([]byte, len(want))
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != want {
			t.Fatalf("read %q, %v; want %q", buf, err, want)
		}
	}

	flights(1, "after connect (the SYN)")
	write(c, "a") // after the SYN-ACK: flight 2
	read(s, "a")
	flights(2, "after the first request")
	answered(1, "before the first answer (the SYN-ACK answered the SYN)")
	write(s, "A")
	read(c, "A")
	answered(2, "after the first answer")
	down := pc.Stats().DeliveredDown
	write(c, "b") // after server data: flight 3...
	write(c, "c") // ...and back to back, the same flight
	read(s, "bc")
	flights(3, "after two writes back to back")
	// The server sends no data now, only an ACK (delayed, at most 40 ms).
	// Once the client has it, "d" is still flight 3.
	waitStats(t, pc, "the server's ACK", func(s Stats) bool { return s.DeliveredDown > down })
	write(c, "d")
	read(s, "d")
	flights(3, "after a write answered by an ACK only")
	answered(2, "after a write answered by an ACK only")
	write(s, "BCD")
	read(c, "BCD")
	write(c, "e") // flight 4
	read(s, "e")
	c.Close() // a FIN is no flight
	read(s, "")
	if _, err := s.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("server read after the client's close: %v", err)
	}
	st := pc.Stats()
	if st.Flights != 4 || st.Answered != 3 || st.BytesUp != 5 || st.BytesDown != 4 || st.SYNs != 1 || st.SYNData {
		t.Errorf("want 4 flights (3 answered), 5 bytes up, 4 down, one SYN without data; got %+v", st)
	}
}

func TestBandwidth(t *testing.T) {
	const size = 1_000_000
	e := newEmu(t, Config{
		Up:   Link{Delay: 5 * time.Millisecond, Bandwidth: 1_000_000},
		Down: Link{Delay: 5 * time.Millisecond},
	})
	c, s := connPair(t, e)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if n, err := io.CopyN(io.Discard, s, size); err != nil {
			t.Errorf("server read %d bytes: %v", n, err)
		}
		s.Write([]byte{1})
	}()
	start := time.Now()
	if _, err := c.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	wg.Wait()
	st := connOf(t, e, c).Stats()
	t.Logf("1 MB at 1 MB/s: %v, %+v", took, st)
	// Headers add 52 bytes per 1448 of payload (3.6%); the answer one RTT.
	if took < time.Second || took > 1200*time.Millisecond {
		t.Errorf("1 MB at 1 MB/s took %v, want 1-1.2 s", took)
	}
}

func TestNoRouteElsewhere(t *testing.T) {
	e := newEmu(t, Config{})
	// 198.18.0.3 is in the range but not on the path: no route, and so
	// no packet, anywhere.
	_, err := e.Client().DialContext(testCtx(t), "tcp", "198.18.0.3:7")
	if !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("dial 198.18.0.3 from the client namespace: %v, want ENETUNREACH", err)
	}
	if _, err := e.Client().DialContext(testCtx(t), "tcp", "localhost:7"); err == nil || !strings.Contains(err.Error(), "literal") {
		t.Errorf("dial localhost: %v, want a refusal to resolve names", err)
	}
	up, down := e.Totals()
	if up.Sent != 0 || down.Sent != 0 {
		t.Errorf("packets on the path: up %+v, down %+v", up, down)
	}
}

func TestSysctlIsPerNamespace(t *testing.T) {
	e := newEmu(t, Config{})
	host, err := os.ReadFile("/proc/sys/net/ipv4/tcp_fastopen")
	if err != nil {
		t.Fatal(err)
	}
	want := "3"
	if strings.TrimSpace(string(host)) == want {
		want = "2"
	}
	if err := e.Server().SetSysctl("net.ipv4.tcp_fastopen", want); err != nil {
		t.Fatal(err)
	}
	if v, err := e.Server().Sysctl("net.ipv4.tcp_fastopen"); err != nil || v != want {
		t.Errorf("server namespace: %q, %v; want %q", v, err, want)
	}
	if v, err := e.Client().Sysctl("net.ipv4.tcp_fastopen"); err != nil || v == want {
		t.Errorf("client namespace: %q, %v; want its own value", v, err)
	}
	if now, err := os.ReadFile("/proc/sys/net/ipv4/tcp_fastopen"); err != nil || !bytes.Equal(now, host) {
		t.Errorf("the host's value changed: %q -> %q (%v)", host, now, err)
	}
	if err := e.Server().SetSysctl("kernel.hostname", "x"); err == nil {
		t.Error("a non-network sysctl was accepted")
	}
}

// netNSOfThreads returns the network namespace of each thread of the
// process.
func netNSOfThreads(t *testing.T) map[string]string {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, ent := range ents {
		ns, err := os.Readlink("/proc/self/task/" + ent.Name() + "/ns/net")
		if err == nil { // a thread may end meanwhile
			m[ent.Name()] = ns
		}
	}
	return m
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestConcurrentEmulatorsReleaseEverything(t *testing.T) {
	home, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	// Three emulators at the same time (parallel subtests of a group).
	run := func(t *testing.T) {
		for range 3 {
			t.Run("emulator", func(t *testing.T) {
				t.Parallel()
				e := newEmu(t, RTT(10*time.Millisecond))
				c := dial(t, e, nil, echoServer(t, e, nil))
				echo(t, c, "ping")
			})
		}
	}
	t.Run("warm-up", run)
	fds := openFDs(t)
	t.Run("measured", run)
	if n := openFDs(t); n != fds {
		t.Errorf("%d open fds after the emulators closed, %d before", n, fds)
	}
	for tid, ns := range netNSOfThreads(t) {
		if ns != home {
			t.Errorf("thread %s is in %s, not in the process's namespace %s", tid, ns, home)
		}
	}
}
