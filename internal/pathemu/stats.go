//go:build linux

package pathemu

import (
	"context"
	"encoding/binary"
	"net/netip"
	"sync"
	"time"
)

// Stats are the counters of one TCP connection, as seen in its packets.
// The package doc defines flights.
type Stats struct {
	// Client is the connection's endpoint in the client namespace, Server
	// the one in the server namespace.
	Client, Server netip.AddrPort
	// Start is when the forwarder saw the connection's first packet.
	Start time.Time

	// Flights counts the client's flights (round trips, handshake
	// included).
	Flights int
	// Answered is what Flights was when the server last sent a SYN-ACK,
	// payload or a FIN: the flights it had answered. A last write that no
	// answer follows (an XMPP client's initial presence, written as its
	// login ends) is in Flights but not in Answered, whether or not the
	// forwarder has seen it yet, until the server sends again.
	Answered int
	// BytesUp and BytesDown count the TCP payload the client and the
	// server sent into the path, retransmissions included.
	BytesUp, BytesDown int64
	// PacketsUp and PacketsDown count the packets they sent into the path.
	PacketsUp, PacketsDown int64
	// DeliveredUp and DeliveredDown count the packets written into the
	// far namespace, DroppedUp and DroppedDown those the emulator dropped
	// (loss, blackhole, SYN data, full queue). The rest are in flight.
	DeliveredUp, DeliveredDown int64
	DroppedUp, DroppedDown     int64

	// SYNs counts the client's SYNs (more than 1: retransmitted).
	SYNs int
	// SYNData reports that the client's first SYN carried payload (TCP
	// Fast Open), SYNDataLen how much.
	SYNData    bool
	SYNDataLen int
	// SYNDataAccepted reports that the server's first SYN-ACK acknowledged
	// that payload (RFC 7413 lets a server accept part of it; Linux takes
	// all or nothing).
	SYNDataAccepted bool
	// CookieRequested reports that the client's first SYN asked for a Fast
	// Open cookie (an empty TFO option); CookieGranted that the server's
	// first SYN-ACK carried one.
	CookieRequested, CookieGranted bool
}

// Conn is one TCP connection seen by the forwarder.
type Conn struct {
	done <-chan struct{} // closed when the Emulator closes

	mu         sync.Mutex
	st         Stats
	isn        uint32 // the client's initial sequence number
	synSeen    bool   // the client's first SYN
	synAckSeen bool   // the server's first SYN-ACK
	// lastAck is the highest acknowledgment number of the client's SYN or
	// payload packets so far, if one had the ACK flag (hasAck).
	lastAck uint32
	hasAck  bool
	changed signal
}

// Stats returns a snapshot of the connection's counters.
func (c *Conn) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

// Wait blocks until cond holds for the connection's counters (checked at
// once and after each packet of the connection) and returns them. It
// fails when ctx ends or the Emulator closes; cond must not block.
func (c *Conn) Wait(ctx context.Context, cond func(Stats) bool) (Stats, error) {
	var st Stats
	err := waitFor(ctx, c.done, &c.mu, &c.changed, func() bool {
		st = c.st
		return cond(st)
	})
	return st, err
}

// signal wakes goroutines waiting for a change of state guarded by a
// mutex; it is guarded by that mutex too.
type signal struct{ ch chan struct{} }

// fire wakes the waiters, if any.
func (s *signal) fire() {
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// waitFor blocks until check (called with mu held) returns true, ctx ends
// or done is closed; sig must fire, with mu held, after each change that
// check looks at.
func waitFor(ctx context.Context, done <-chan struct{}, mu *sync.Mutex, sig *signal, check func() bool) error {
	for {
		mu.Lock()
		if check() {
			mu.Unlock()
			return nil
		}
		if sig.ch == nil {
			sig.ch = make(chan struct{})
		}
		ch := sig.ch
		mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return ErrClosed
		}
	}
}

// TCP flags.
const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagACK = 0x10
)

// segment is what the forwarder reads from a TCP/IPv4 packet's headers.
type segment struct {
	src, dst netip.AddrPort
	seq, ack uint32
	flags    uint8
	payload  int
	// cookie is -1 without a Fast Open option, else the cookie's length
	// (0: a cookie request).
	cookie int
}

func (s *segment) syn() bool    { return s.flags&flagSYN != 0 }
func (s *segment) synAck() bool { return s.flags&(flagSYN|flagACK) == flagSYN|flagACK }
func (s *segment) pureSYN() bool {
	return s.flags&(flagSYN|flagACK) == flagSYN
}

// parseTCP reads the headers of an IPv4 packet carrying a TCP segment (the
// first fragment, or an unfragmented packet). ok is false for anything
// else, which the forwarder forwards without counting.
func parseTCP(p []byte) (s segment, ok bool) {
	if len(p) < 20 || p[0]>>4 != 4 || p[9] != 6 {
		return s, false
	}
	ihl := int(p[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(p[2:4]))
	if ihl < 20 || total < ihl+20 || total > len(p) || binary.BigEndian.Uint16(p[6:8])&0x1fff != 0 {
		return s, false
	}
	t := p[ihl:total]
	doff := int(t[12]>>4) * 4
	if doff < 20 || doff > len(t) {
		return s, false
	}
	src := netip.AddrFrom4([4]byte(p[12:16]))
	dst := netip.AddrFrom4([4]byte(p[16:20]))
	s = segment{
		src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(t[0:2])),
		dst:     netip.AddrPortFrom(dst, binary.BigEndian.Uint16(t[2:4])),
		seq:     binary.BigEndian.Uint32(t[4:8]),
		ack:     binary.BigEndian.Uint32(t[8:12]),
		flags:   t[13],
		payload: len(t) - doff,
		cookie:  -1,
	}
	if s.syn() {
		s.cookie = fastOpenCookie(t[20:doff])
	}
	return s, true
}

// fastOpenCookie returns the length of the TCP Fast Open cookie in TCP
// options (kind 34, RFC 7413, or the experimental kind 254 with magic
// 0xF989), or -1 when there is no such option.
func fastOpenCookie(opts []byte) int {
	for len(opts) > 0 {
		switch opts[0] {
		case 0: // end of options
			return -1
		case 1: // no-op
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || int(opts[1]) < 2 || int(opts[1]) > len(opts) {
			return -1
		}
		o := opts[:opts[1]]
		switch {
		case o[0] == 34:
			return len(o) - 2
		case o[0] == 254 && len(o) >= 4 && o[2] == 0xF9 && o[3] == 0x89:
			return len(o) - 4
		}
		opts = opts[len(o):]
	}
	return -1
}

// connKey is a connection's 4-tuple, client side first.
type connKey struct{ client, server netip.AddrPort }

// table holds the connections seen by both directions' forwarders.
type table struct {
	done <-chan struct{}

	mu      sync.Mutex
	conns   map[connKey]*Conn
	byPort  map[uint16]*Conn // the latest connection of each client port
	all     []*Conn
	changed signal // fires when a connection is added
}

func newTable(done <-chan struct{}) *table {
	return &table{done: done, conns: map[connKey]*Conn{}, byPort: map[uint16]*Conn{}}
}

// seen records a segment that entered the path (up: from the client
// namespace) and returns its connection.
func (t *table) seen(s *segment, up bool, now time.Time) *Conn {
	k := connKey{s.src, s.dst}
	if !up {
		k = connKey{s.dst, s.src}
	}
	t.mu.Lock()
	c := t.conns[k]
	if c == nil || up && s.pureSYN() && c.reusedBy(s.seq) {
		c = &Conn{done: t.done, st: Stats{Client: k.client, Server: k.server, Start: now}}
		t.conns[k] = c
		t.byPort[k.client.Port()] = c
		t.all = append(t.all, c)
		t.changed.fire()
	}
	t.mu.Unlock()

	c.mu.Lock()
	defer c.mu.Unlock()
	if up {
		c.sentUpLocked(s)
	} else {
		c.sentDownLocked(s)
	}
	c.changed.fire()
	return c
}

// reusedBy reports that a SYN with initial sequence number isn opens a new
// connection on the 4-tuple of c (not a retransmission of c's SYN).
func (c *Conn) reusedBy(isn uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.synSeen && c.isn != isn
}

func (c *Conn) sentUpLocked(s *segment) {
	st := &c.st
	st.PacketsUp++
	st.BytesUp += int64(s.payload)
	if s.pureSYN() {
		st.SYNs++
		if !c.synSeen {
			c.synSeen = true
			c.isn = s.seq
			st.SYNData = s.payload > 0
			st.SYNDataLen = s.payload
			st.CookieRequested = s.cookie == 0
		}
	}
	if s.syn() || s.payload > 0 {
		// A new flight if the client acknowledges more of the server's
		// sequence space than in its previous such packet: it has
		// received a SYN-ACK, payload or a FIN since (see the package
		// doc). Retransmissions and writes in a row repeat the ack.
		newer := s.flags&flagACK != 0 && (!c.hasAck || int32(s.ack-c.lastAck) > 0)
		if st.Flights == 0 || newer {
			st.Flights++
		}
		if newer {
			c.lastAck, c.hasAck = s.ack, true
		}
	}
}

func (c *Conn) sentDownLocked(s *segment) {
	st := &c.st
	st.PacketsDown++
	st.BytesDown += int64(s.payload)
	if s.synAck() || s.payload > 0 || s.flags&flagFIN != 0 {
		st.Answered = st.Flights
	}
	if s.synAck() && !c.synAckSeen {
		c.synAckSeen = true
		st.SYNDataAccepted = st.SYNData && int32(s.ack-(c.isn+1)) > 0
		st.CookieGranted = s.cookie > 0
	}
}

// delivered counts a packet of c written into the far namespace.
func (c *Conn) delivered(up bool) {
	c.count(up, &c.st.DeliveredUp, &c.st.DeliveredDown)
}

// dropped counts a packet of c dropped by the emulator.
func (c *Conn) dropped(up bool) {
	c.count(up, &c.st.DroppedUp, &c.st.DroppedDown)
}

func (c *Conn) count(up bool, ifUp, ifDown *int64) {
	c.mu.Lock()
	if up {
		*ifUp++
	} else {
		*ifDown++
	}
	c.changed.fire()
	c.mu.Unlock()
}

// lookup returns the latest connection of a client port, or nil.
func (t *table) lookup(port uint16) *Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byPort[port]
}

// wait blocks until a connection of the client port exists.
func (t *table) wait(ctx context.Context, port uint16) (*Conn, error) {
	var c *Conn
	err := waitFor(ctx, t.done, &t.mu, &t.changed, func() bool {
		c = t.byPort[port]
		return c != nil
	})
	return c, err
}

// list returns every connection seen, in order of first packet.
func (t *table) list() []*Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]*Conn(nil), t.all...)
}
