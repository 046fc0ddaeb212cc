//go:build linux

package pathemu

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The addresses of the two namespaces (RFC 2544 benchmarking range).
const (
	ClientAddr = "198.18.0.1"
	ServerAddr = "198.18.0.2"
)

var (
	clientIP = netip.MustParseAddr(ClientAddr)
	serverIP = netip.MustParseAddr(ServerAddr)
)

// Link describes one direction of the path. The zero Link forwards at
// once and loses nothing.
type Link struct {
	// Delay is the one-way delay (propagation), added after
	// serialization.
	Delay time.Duration
	// Jitter adds a uniform random delay in [-Jitter, +Jitter] to each
	// packet (never making it due before it arrived). Packets keep their
	// order (a packet is never due before the previous one of its
	// direction) unless Reorder is set.
	Jitter  time.Duration
	Reorder bool
	// Loss is the probability that a packet is dropped, from 0 to 1.
	Loss float64
	// Bandwidth is the link's rate in bytes per second (whole IP packets):
	// each packet waits until the previous one is serialized, then for its
	// own len/Bandwidth, before the Delay. Zero means unlimited.
	Bandwidth int64
	// DropSYNData drops SYNs that carry payload (TCP Fast Open data), as
	// some middleboxes do; SYNs without payload pass.
	DropSYNData bool
}

func (l Link) validate() error {
	if l.Delay < 0 || l.Jitter < 0 || l.Bandwidth < 0 || !(l.Loss >= 0 && l.Loss <= 1) {
		return fmt.Errorf("pathemu: invalid Link %+v: negative Delay, Jitter or Bandwidth, or Loss outside [0, 1]", l)
	}
	return nil
}

// Config describes an emulated path.
type Config struct {
	// Up is the client-to-server direction, Down the other one.
	Up, Down Link
	// MTU of both TUN devices; zero means 1500.
	MTU int
	// QueueBytes is the buffer of a direction's link when it has a
	// Bandwidth: a packet is dropped (tail drop) when it and the bytes not
	// yet serialized ahead of it exceed QueueBytes. Zero means 256 KiB.
	QueueBytes int
	// Seed seeds the random source of losses and jitter (one per
	// direction); zero means a random seed.
	Seed uint64
}

// RTT returns a symmetric Config with a one-way Delay of rtt/2.
func RTT(rtt time.Duration) Config {
	l := Link{Delay: rtt / 2}
	return Config{Up: l, Down: l}
}

// Emulator is a running emulated path between two network namespaces. Its
// methods are safe for concurrent use.
type Emulator struct {
	client, server *Namespace
	tuns           []int                   // client's, server's
	stop           int                     // eventfd that stops the pipes
	links          [2]atomic.Pointer[Link] // up, down
	blackhole      atomic.Bool
	gate           sync.RWMutex // see SetBlackhole
	conns          *table
	pipes          [2]*pipe // up, down
	done           chan struct{}

	wg        sync.WaitGroup
	errs      [2]error // what stopped each pipe, if not Close
	closeOnce sync.Once
}

// New creates the namespaces and devices and starts forwarding. Close
// releases them.
func New(cfg Config) (*Emulator, error) {
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.QueueBytes == 0 {
		cfg.QueueBytes = 256 << 10
	}
	if cfg.MTU < 576 || cfg.MTU > 65535 || cfg.QueueBytes < 0 {
		return nil, fmt.Errorf("pathemu: MTU %d outside [576, 65535] or negative QueueBytes", cfg.MTU)
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	e := &Emulator{done: make(chan struct{}), stop: -1}
	if err := e.SetLinks(cfg.Up, cfg.Down); err != nil {
		return nil, err
	}
	e.conns = newTable(e.done)
	var err error
	e.stop, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("pathemu: eventfd: %w", err)
	}
	e.client, err = e.newSide("client", clientIP, serverIP, cfg.MTU)
	if err == nil {
		e.server, err = e.newSide("server", serverIP, clientIP, cfg.MTU)
	}
	if err != nil {
		e.release()
		return nil, err
	}
	for i := range e.pipes {
		in, out := e.tuns[i], e.tuns[1-i]
		e.pipes[i] = &pipe{
			up:        i == 0,
			in:        in,
			out:       out,
			stop:      e.stop,
			link:      &e.links[i],
			blackhole: &e.blackhole,
			gate:      &e.gate,
			conns:     e.conns,
			rng:       rand.New(rand.NewPCG(cfg.Seed, uint64(i))),
			queueMax:  cfg.QueueBytes,
			mtu:       cfg.MTU,
		}
	}
	e.wg.Add(len(e.pipes))
	for i, p := range e.pipes {
		go func() {
			defer e.wg.Done()
			e.errs[i] = p.run()
		}()
	}
	return e, nil
}

// newSide creates a namespace with its TUN device and appends the device
// to e.tuns.
func (e *Emulator) newSide(name string, local, peer netip.Addr, mtu int) (*Namespace, error) {
	var tun int
	ns, err := newNamespace(name, local, func() error {
		var err error
		tun, err = setupSide(local, peer, mtu)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w (setting up the %s namespace)", err, name)
	}
	e.tuns = append(e.tuns, tun)
	return ns, nil
}

// Client is the client-side namespace (address ClientAddr).
func (e *Emulator) Client() *Namespace { return e.client }

// Server is the server-side namespace (address ServerAddr).
func (e *Emulator) Server() *Namespace { return e.server }

// SetLinks changes both directions of the path; packets already queued
// keep their due times.
func (e *Emulator) SetLinks(up, down Link) error {
	if err := up.validate(); err != nil {
		return err
	}
	if err := down.validate(); err != nil {
		return err
	}
	e.links[0].Store(&up)
	e.links[1].Store(&down)
	return nil
}

// Links returns the current Up and Down links.
func (e *Emulator) Links() (up, down Link) {
	return *e.links[0].Load(), *e.links[1].Load()
}

// SetBlackhole turns the blackhole on or off. While it is on, every packet
// of both directions is dropped, those already queued included (when
// they fall due): the path is dead, but nothing is closed or reset, and
// forwarding resumes when it is turned off. Once SetBlackhole(true) has
// returned, no packet is delivered until SetBlackhole(false).
func (e *Emulator) SetBlackhole(on bool) {
	e.gate.Lock() // waits for a delivery in progress
	e.blackhole.Store(on)
	e.gate.Unlock()
}

// Blackhole reports whether the blackhole is on.
func (e *Emulator) Blackhole() bool { return e.blackhole.Load() }

// Totals returns the packet counts of the Up and Down directions.
func (e *Emulator) Totals() (up, down Counters) {
	return e.pipes[0].counters(), e.pipes[1].counters()
}

// Lookup returns the latest TCP connection whose client port is port, or
// nil if none has sent a packet yet.
func (e *Emulator) Lookup(port uint16) *Conn { return e.conns.lookup(port) }

// WaitConn waits until a TCP connection of the client port has sent a
// packet and returns it. (A socket with TCP_FASTOPEN_CONNECT sends its
// SYN at its first write, not at connect.)
func (e *Emulator) WaitConn(ctx context.Context, port uint16) (*Conn, error) {
	return e.conns.wait(ctx, port)
}

// Conns returns every TCP connection seen, in order of first packet.
func (e *Emulator) Conns() []*Conn { return e.conns.list() }

// Close stops forwarding, removes the TUN devices and drops the
// namespaces (the kernel frees each when the last socket or process in it
// is gone). It returns what stopped forwarding early, if anything.
func (e *Emulator) Close() error {
	e.closeOnce.Do(func() {
		close(e.done)
		e.release()
	})
	return errors.Join(e.errs[0], e.errs[1])
}

func (e *Emulator) release() {
	if e.stop >= 0 {
		// Readable from now on: both pipes' ppoll return.
		_, _ = unix.Write(e.stop, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
	e.wg.Wait()
	for _, fd := range append(e.tuns, e.stop) {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	for _, ns := range []*Namespace{e.client, e.server} {
		if ns != nil {
			ns.close()
		}
	}
}
