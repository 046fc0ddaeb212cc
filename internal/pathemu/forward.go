//go:build linux

package pathemu

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Counters are the packet counts of one direction of the path.
type Counters struct {
	// Sent counts the packets that entered the path, Delivered those
	// written into the far namespace, Dropped those the emulator dropped
	// (loss, blackhole, SYN data, full queue, failed write). Sent minus
	// both is what is in flight.
	Sent, Delivered, Dropped int64
}

// maxQueued bounds the packets queued in one direction (about 48 MiB of
// buffers at MTU 1500), whatever the delay.
const maxQueued = 1 << 15

// readBatch bounds the packets read in a row before due ones are
// delivered.
const readBatch = 64

// forwarderNice is the nice value of the forwarders' threads: they do
// little work, but when they do it late, the path's delay is wrong.
const forwarderNice = -10

// packet is one IP packet waiting in a direction's queue.
type packet struct {
	due  time.Time
	seq  uint64 // arrival order, to break ties in due
	buf  []byte
	conn *Conn // nil when not TCP over IPv4
}

// pipe forwards one direction: it reads packets from in (the TUN of the
// sending namespace) and writes each into out (the TUN of the receiving
// namespace) when it is due. One goroutine runs it, locked to its thread,
// which sleeps in ppoll until a packet arrives, the next one is due (the
// only timer) or stop is signalled.
type pipe struct {
	up        bool // client to server
	in, out   int  // TUN fds (non-blocking)
	stop      int  // an eventfd, readable once the Emulator closes
	link      *atomic.Pointer[Link]
	blackhole *atomic.Bool
	gate      *sync.RWMutex // read-held while delivering (see SetBlackhole)
	conns     *table
	rng       *rand.Rand
	queueMax  int // bytes not yet serialized (with a Bandwidth)
	mtu       int

	q        []packet // a min-heap on (due, seq)
	seq      uint64
	free     [][]byte // buffers for reuse
	linkFree time.Time
	last     time.Time // the latest due time given so far

	sent, delivered, dropped atomic.Int64
}

func (p *pipe) counters() Counters {
	return Counters{Sent: p.sent.Load(), Delivered: p.delivered.Load(), Dropped: p.dropped.Load()}
}

// run forwards until stop is signalled, and returns the error that
// stopped it otherwise.
//
// It sleeps in ppoll rather than in the runtime's poller: ppoll's timeout
// is a high-resolution timer (with the thread's timer slack at 1 µs), where
// the runtime sleeps in whole milliseconds when idle, and a thread of its
// own can run at a higher priority, so that other processes on a busy
// machine delay the forwarding less. The thread is never unlocked: with
// its priority changed, it must not run other goroutines, so it ends with
// this goroutine.
func (p *pipe) run() error {
	runtime.LockOSThread()
	// Best effort: without CAP_SYS_NICE, forwarding is just less precise.
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), forwarderNice)
	fds := []unix.PollFd{{Fd: int32(p.in), Events: unix.POLLIN}, {Fd: int32(p.stop), Events: unix.POLLIN}}
	var ts unix.Timespec
	for {
		p.flush(time.Now())
		timeout := (*unix.Timespec)(nil)
		if len(p.q) > 0 {
			ts = unix.NsecToTimespec(max(int64(time.Until(p.q[0].due)), 0))
			timeout = &ts
		}
		if _, err := unix.Ppoll(fds, timeout, nil); err != nil && err != unix.EINTR {
			return fmt.Errorf("pathemu: ppoll: %w", err)
		}
		switch {
		case fds[1].Revents != 0:
			return nil
		case fds[0].Revents&unix.POLLIN != 0:
			if err := p.read(); err != nil {
				return err
			}
		case fds[0].Revents != 0:
			return fmt.Errorf("pathemu: TUN device: poll events %#x", fds[0].Revents)
		}
	}
}

// read admits the packets waiting in the TUN device, up to readBatch.
func (p *pipe) read() error {
	for range readBatch {
		buf := p.alloc()
		n, err := unix.Read(p.in, buf)
		if err != nil {
			p.free = append(p.free, buf)
			if err == unix.EAGAIN {
				return nil
			}
			if err == unix.EINTR {
				continue
			}
			return fmt.Errorf("pathemu: read from the TUN device: %w", err)
		}
		p.admit(buf[:n], time.Now())
	}
	return nil
}

func (p *pipe) alloc() []byte {
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b[:cap(b)]
	}
	return make([]byte, p.mtu)
}

// admit decides the fate of a packet read at now: dropped, or queued with
// its due time.
func (p *pipe) admit(b []byte, now time.Time) {
	p.sent.Add(1)
	l := p.link.Load()
	pk := packet{buf: b}
	seg, isTCP := parseTCP(b)
	if isTCP {
		pk.conn = p.conns.seen(&seg, p.up, now)
	}
	if p.blackhole.Load() ||
		l.DropSYNData && isTCP && seg.syn() && seg.payload > 0 ||
		l.Loss > 0 && p.rng.Float64() < l.Loss ||
		l.Bandwidth > 0 && p.backlog(now, l.Bandwidth)+len(b) > p.queueMax ||
		len(p.q) >= maxQueued {
		p.drop(&pk)
		return
	}
	due := now
	if l.Bandwidth > 0 {
		if p.linkFree.After(due) {
			due = p.linkFree
		}
		due = due.Add(time.Duration(int64(len(b)) * int64(time.Second) / l.Bandwidth))
		p.linkFree = due
	}
	due = due.Add(l.Delay)
	if l.Jitter > 0 {
		due = due.Add(time.Duration(p.rng.Int64N(2*int64(l.Jitter)+1)) - l.Jitter)
		if due.Before(now) {
			due = now
		}
	}
	if !l.Reorder && due.Before(p.last) {
		due = p.last
	}
	if due.After(p.last) {
		p.last = due
	}
	pk.due = due
	pk.seq = p.seq
	p.seq++
	p.push(pk)
}

// backlog returns how many bytes are not serialized yet at now (queued,
// or on the link).
func (p *pipe) backlog(now time.Time, bandwidth int64) int {
	wait := p.linkFree.Sub(now)
	if wait <= 0 {
		return 0
	}
	return int(int64(wait) * bandwidth / int64(time.Second))
}

// flush delivers the packets due by now.
func (p *pipe) flush(now time.Time) {
	if len(p.q) == 0 || p.q[0].due.After(now) {
		return
	}
	p.gate.RLock()
	defer p.gate.RUnlock()
	for len(p.q) > 0 && !p.q[0].due.After(now) {
		pk := p.pop()
		if p.blackhole.Load() || !p.write(pk.buf) {
			p.drop(&pk)
			continue
		}
		p.delivered.Add(1)
		if pk.conn != nil {
			pk.conn.delivered(p.up)
		}
		p.free = append(p.free, pk.buf)
	}
}

// write writes a packet into the far namespace. A TUN device takes a
// whole packet or refuses it; a refused one counts as dropped.
func (p *pipe) write(b []byte) bool {
	for {
		_, err := unix.Write(p.out, b)
		if !errors.Is(err, unix.EINTR) {
			return err == nil
		}
	}
}

func (p *pipe) drop(pk *packet) {
	p.dropped.Add(1)
	if pk.conn != nil {
		pk.conn.dropped(p.up)
	}
	p.free = append(p.free, pk.buf)
}

func (p *pipe) less(i, j int) bool {
	a, b := &p.q[i], &p.q[j]
	if a.due.Equal(b.due) {
		return a.seq < b.seq
	}
	return a.due.Before(b.due)
}

func (p *pipe) push(pk packet) {
	p.q = append(p.q, pk)
	for i := len(p.q) - 1; i > 0; {
		parent := (i - 1) / 2
		if !p.less(i, parent) {
			break
		}
		p.q[i], p.q[parent] = p.q[parent], p.q[i]
		i = parent
	}
}

func (p *pipe) pop() packet {
	top := p.q[0]
	n := len(p.q) - 1
	p.q[0] = p.q[n]
	p.q[n] = packet{}
	p.q = p.q[:n]
	for i := 0; ; {
		small, l, r := i, 2*i+1, 2*i+2
		if l < n && p.less(l, small) {
			small = l
		}
		if r < n && p.less(r, small) {
			small = r
		}
		if small == i {
			break
		}
		p.q[i], p.q[small] = p.q[small], p.q[i]
		i = small
	}
	return top
}
