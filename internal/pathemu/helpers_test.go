//go:build linux

package pathemu

import (
	"context"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// newEmu starts an emulator closed at the end of the test. It fails the
// test (never skips it, except under -short) when emulators cannot run.
func newEmu(t testing.TB, cfg Config) *Emulator {
	t.Helper()
	if testing.Short() {
		t.Skip("needs root for network namespaces and TUN devices; not run with -short")
	}
	if err := Available(); err != nil {
		t.Fatal(err)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

// testCtx is a context for one test's network operations.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echoServer listens on ServerAddr in the server namespace (with lc, if
// not nil) and echoes each read back as one write, until the test ends.
func echoServer(t testing.TB, e *Emulator, lc *net.ListenConfig) string {
	t.Helper()
	if lc == nil {
		lc = &net.ListenConfig{}
	}
	ln, err := e.Server().ListenConfig(context.Background(), lc, "tcp", ServerAddr+":0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				// Not io.Copy: TCP to TCP, it splices through pipes that
				// the runtime keeps, which TestConcurrentEmulatorsReleaseEverything
				// would count as leaked fds.
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// dial dials addr from the client namespace (with d, if not nil) and
// closes the connection at the end of the test.
func dial(t testing.TB, e *Emulator, d *net.Dialer, addr string) net.Conn {
	t.Helper()
	if d == nil {
		d = &net.Dialer{}
	}
	c, err := e.Client().Dial(testCtx(t), d, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// connPair returns both ends of a connection from the client namespace to
// the server namespace, closed at the end of the test.
func connPair(t testing.TB, e *Emulator) (client, server net.Conn) {
	t.Helper()
	ln, err := e.Server().Listen("tcp", ServerAddr+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client = dial(t, e, nil, ln.Addr().String())
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}

// echo writes msg and reads it back, and returns how long that took.
func echo(t testing.TB, c net.Conn, msg string) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	if string(buf) != msg {
		t.Fatalf("echo: got %q, want %q", buf, msg)
	}
	return d
}

// connOf returns the emulator's record of a client-side connection.
func connOf(t testing.TB, e *Emulator, c net.Conn) *Conn {
	t.Helper()
	pc, err := e.WaitConn(testCtx(t), uint16(c.LocalAddr().(*net.TCPAddr).Port))
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// waitStats waits until cond holds for pc's stats.
func waitStats(t testing.TB, pc *Conn, what string, cond func(Stats) bool) Stats {
	t.Helper()
	st, err := pc.Wait(testCtx(t), cond)
	if err != nil {
		t.Fatalf("waiting for %s: %v (stats %+v)", what, err, st)
	}
	return st
}

// near fails the test unless got is within 5 ms + 10% of want.
func near(t testing.TB, what string, got, want time.Duration) {
	t.Helper()
	tol := 5*time.Millisecond + want/10
	if got < want-tol || got > want+tol {
		t.Errorf("%s took %v, want %v ± %v", what, got, want, tol)
	}
}

// nearBest checks timings of one kind against want: the best of them
// must be near want, and none may be early. Load elsewhere on the machine
// (other test binaries, compilers) can only add to a timing, so the best
// one shows the emulator's own error; a path that delivered early would
// show in every one.
func nearBest(t testing.TB, what string, got []time.Duration, want time.Duration) {
	t.Helper()
	near(t, what+" (best)", slices.Min(got), want)
	for _, d := range got {
		if d < want {
			t.Errorf("%s took %v, less than %v", what, d, want)
		}
	}
}

// sockopt returns a Control function that sets an IPPROTO_TCP option.
func sockopt(opt, value int) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, opt, value)
		})
		if err == nil {
			err = serr
		}
		return err
	}
}
