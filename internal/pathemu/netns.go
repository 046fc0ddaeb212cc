//go:build linux

package pathemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrClosed is returned by operations on a closed Emulator or Namespace.
var ErrClosed = errors.New("pathemu: closed")

// errGoexit reports a function run by Do that called runtime.Goexit (for
// example t.FailNow) instead of returning.
var errGoexit = errors.New("pathemu: function run in a namespace called runtime.Goexit")

// threadNetNS names the network namespace of the calling thread.
const threadNetNS = "/proc/thread-self/ns/net"

// Namespace is one of an Emulator's two network namespaces. Its methods
// are safe for concurrent use.
type Namespace struct {
	name string
	addr netip.Addr

	mu sync.RWMutex
	fd int // the namespace (an fd of /proc/thread-self/ns/net); -1 once closed
}

// Name is "client" or "server".
func (n *Namespace) Name() string { return n.name }

// Addr is the namespace's address on the emulated path.
func (n *Namespace) Addr() netip.Addr { return n.addr }

// Path is a file naming the namespace while the Emulator is open, for
// tools run by hand: nsenter --net=PATH ss -tin.
func (n *Namespace) Path() string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.fd < 0 {
		return ""
	}
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), n.fd)
}

// newNamespace creates a network namespace and runs setup inside it.
func newNamespace(name string, addr netip.Addr, setup func() error) (*Namespace, error) {
	n := &Namespace{name: name, addr: addr, fd: -1}
	err := onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("pathemu: unshare(CLONE_NEWNET): %w", err)
		}
		fd, err := unix.Open(threadNetNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("pathemu: %w", err)
		}
		n.fd = fd
		if setup != nil {
			return setup()
		}
		return nil
	})
	if err != nil {
		n.close()
		return nil, err
	}
	return n, nil
}

// close drops the package's handle on the namespace. The kernel removes
// the namespace when nothing else (a socket, a process) holds it.
func (n *Namespace) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fd >= 0 {
		unix.Close(n.fd)
		n.fd = -1
	}
}

// Do runs f on an OS thread inside the namespace and returns its error.
// Sockets and files that f opens keep the namespace; use them from any
// goroutine afterwards. Goroutines that f starts do not run inside the
// namespace. A panic in f is raised again in the caller.
func (n *Namespace) Do(f func() error) error {
	return onThread(func() error {
		n.mu.RLock()
		if n.fd < 0 {
			n.mu.RUnlock()
			return ErrClosed
		}
		err := unix.Setns(n.fd, unix.CLONE_NEWNET)
		n.mu.RUnlock()
		if err != nil {
			return fmt.Errorf("pathemu: setns to the %s namespace: %w", n.name, err)
		}
		return f()
	})
}

// onThread runs f on a new goroutine locked to its OS thread, which f may
// move to another network namespace. The thread is put back in its
// original network namespace afterwards, and the goroutine ends still
// locked, so the runtime ends the thread rather than reuse it; the thread
// never runs another goroutine.
func onThread(f func() error) error {
	type result struct {
		err      error
		panicked bool
		panicVal any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked, on purpose (see above)
		var r result
		returned := false
		home, herr := unix.Open(threadNetNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		defer func() {
			if p := recover(); p != nil {
				r = result{panicked: true, panicVal: p}
			} else if !returned {
				r.err = errGoexit
			}
			if herr == nil {
				_ = unix.Setns(home, unix.CLONE_NEWNET) // the thread ends anyway
				unix.Close(home)
			}
			done <- r
		}()
		if herr != nil {
			r.err = fmt.Errorf("pathemu: %w", herr)
		} else {
			r.err = f()
		}
		returned = true
	}()
	r := <-done
	if r.panicked {
		panic(r.panicVal)
	}
	return r.err
}

// DialContext dials address (a literal ip:port: nothing is resolved)
// from inside the namespace with a zero net.Dialer. It has the signature
// of net.Dialer.DialContext, so it can serve as a client's dial hook.
func (n *Namespace) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return n.Dial(ctx, &net.Dialer{}, network, address)
}

// Dial dials address (a literal ip:port) with d from inside the
// namespace. d.Control runs there after the socket is created, so it can
// set socket options such as TCP_FASTOPEN_CONNECT.
func (n *Namespace) Dial(ctx context.Context, d *net.Dialer, network, address string) (net.Conn, error) {
	if _, err := netip.ParseAddrPort(address); err != nil {
		return nil, fmt.Errorf("pathemu: dial %s in the %s namespace: want a literal ip:port (no name is resolved there): %w", address, n.name, err)
	}
	var c net.Conn
	err := n.Do(func() error {
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// Listen listens on address (":port" or a literal ip:port) inside the
// namespace.
func (n *Namespace) Listen(network, address string) (net.Listener, error) {
	return n.ListenConfig(context.Background(), &net.ListenConfig{}, network, address)
}

// ListenConfig listens on address (":port" or a literal ip:port) with lc
// inside the namespace; lc.Control runs there (to set TCP_FASTOPEN, say).
func (n *Namespace) ListenConfig(ctx context.Context, lc *net.ListenConfig, network, address string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(address)
	if err == nil && host != "" {
		_, err = netip.ParseAddr(host)
	}
	if err != nil {
		return nil, fmt.Errorf("pathemu: listen on %s in the %s namespace: want :port or a literal ip:port: %w", address, n.name, err)
	}
	var ln net.Listener
	err = n.Do(func() error {
		var err error
		ln, err = lc.Listen(ctx, network, address)
		return err
	})
	return ln, err
}

// Start starts cmd inside the namespace: it calls cmd.Start on a thread
// that is in the namespace, and a forked child inherits the network
// namespace of the thread that forks it. Wait, signals and pipes work as
// usual from any goroutine. cmd.SysProcAttr.Pdeathsig is refused: Linux
// sends it when the forking thread ends, which is right after Start.
func (n *Namespace) Start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr != nil && cmd.SysProcAttr.Pdeathsig != 0 {
		return errors.New("pathemu: Start: SysProcAttr.Pdeathsig would fire at once (the forking thread ends after Start)")
	}
	return n.Do(cmd.Start)
}

// SetSysctl sets a network sysctl (a name under "net.", as sysctl(8)
// writes it: "net.ipv4.tcp_fastopen") inside the namespace only.
func (n *Namespace) SetSysctl(name, value string) error {
	path, err := sysctlPath(name)
	if err != nil {
		return err
	}
	return n.Do(func() error { return writeProcSys(path, value) })
}

// Sysctl reads a network sysctl (a name under "net.") inside the
// namespace, without the trailing newline.
func (n *Namespace) Sysctl(name string) (string, error) {
	path, err := sysctlPath(name)
	if err != nil {
		return "", err
	}
	var v string
	err = n.Do(func() error {
		b, err := os.ReadFile(path)
		v = strings.TrimSpace(string(b))
		return err
	})
	return v, err
}

// sysctlPath maps "net.ipv4.tcp_fastopen" to its /proc/sys file. Only
// names under net. are accepted: most others are not per namespace, and
// writing them would change the host.
func sysctlPath(name string) (string, error) {
	if !strings.HasPrefix(name, "net.") || strings.ContainsAny(name, "/ ") || strings.Contains(name, "..") {
		return "", fmt.Errorf("pathemu: sysctl %q: only network sysctls (net.*) are set per namespace", name)
	}
	return filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/")), nil
}

// writeProcSys writes value to a /proc/sys file of the calling thread's
// namespace.
func writeProcSys(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
