//go:build linux

package pathemu

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testPipe is a pipe without devices, to test its scheduling with admit
// and pop.
func testPipe(l Link, queueBytes int) *pipe {
	var link atomic.Pointer[Link]
	link.Store(&l)
	return &pipe{
		link:      &link,
		blackhole: new(atomic.Bool),
		gate:      new(sync.RWMutex),
		conns:     newTable(nil),
		rng:       rand.New(rand.NewPCG(1, 2)),
		queueMax:  queueBytes,
		mtu:       1500,
	}
}

// notTCP is a packet the pipe forwards without parsing (an IPv6 header).
func notTCP(size int) []byte {
	b := make([]byte, size)
	b[0] = 0x60
	return b
}

func TestJitterOrder(t *testing.T) {
	const (
		delay  = 20 * time.Millisecond
		jitter = 10 * time.Millisecond
		gap    = 100 * time.Microsecond
		n      = 1000
	)
	for _, reorder := range []bool{false, true} {
		p := testPipe(Link{Delay: delay, Jitter: jitter, Reorder: reorder}, 0)
		t0 := time.Now()
		for i := range n {
			p.admit(notTCP(100), t0.Add(time.Duration(i)*gap))
		}
		var prev packet
		inversions := 0
		for i := range n {
			pk := p.pop()
			arrived := t0.Add(time.Duration(pk.seq) * gap)
			if pk.due.Before(arrived.Add(delay-jitter)) || pk.due.After(t0.Add(time.Duration(n)*gap+delay+jitter)) {
				t.Fatalf("reorder=%v: packet %d due %v after its arrival", reorder, pk.seq, pk.due.Sub(arrived))
			}
			if !reorder && pk.due.After(arrived.Add(delay+jitter)) && !pk.due.Equal(prev.due) {
				t.Fatalf("packet %d held back %v beyond its jitter without waiting for the previous one", pk.seq, pk.due.Sub(arrived))
			}
			if i > 0 && pk.due.Before(prev.due) {
				t.Fatalf("reorder=%v: the heap popped due times out of order", reorder)
			}
			if i > 0 && pk.seq < prev.seq {
				inversions++
			}
			prev = pk
		}
		if reorder != (inversions > 0) {
			t.Errorf("reorder=%v: %d packets overtaken", reorder, inversions)
		}
	}
}

func TestBandwidthSchedule(t *testing.T) {
	// 1000-byte packets at 1 MB/s: 1 ms each; a 5000-byte buffer holds 5.
	p := testPipe(Link{Delay: 10 * time.Millisecond, Bandwidth: 1_000_000}, 5000)
	t0 := time.Now()
	for range 10 {
		p.admit(notTCP(1000), t0)
	}
	if got := p.counters(); got.Sent != 10 || got.Dropped != 5 {
		t.Errorf("counters %+v, want 10 sent and 5 dropped", got)
	}
	for i := range 5 {
		pk := p.pop()
		if want := time.Duration(i+1)*time.Millisecond + 10*time.Millisecond; pk.due.Sub(t0) != want {
			t.Errorf("packet %d due after %v, want %v", i, pk.due.Sub(t0), want)
		}
	}
}

func TestInvalidConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Up: Link{Delay: -1}},
		{Down: Link{Loss: 1.5}},
		{Up: Link{Bandwidth: -1}},
		{MTU: 100},
	} {
		if e, err := New(cfg); err == nil {
			e.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}
