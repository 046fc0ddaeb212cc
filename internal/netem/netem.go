// Package netem is a loopback TCP proxy that emulates a network path
// without root: each direction is delayed by a one-way latency (plus
// optional jitter and a bandwidth limit), in order and with the boundaries
// of what each side wrote (one read from the source becomes one write to
// the destination; Nagle is off on both sockets).
//
// The proxy also counts, per connection, the bytes each way and the
// client's flights: a flight starts when the client sends bytes after the
// proxy has delivered server bytes to it since the client's previous
// bytes (a direction turnaround). The first client bytes start flight 1.
// Flights counted when a login completes are its round trips on the wire
// after the TCP handshake; a TLS 1.3 full handshake accounts for exactly
// one of them (the ClientHello flight: the client's Finished and its first
// application data go out together in flight 2), so the round trips after
// TLS are Flights-1 for TLS 1.3 over Direct TLS.
package netem

import (
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes the emulated path. The zero Config forwards at once.
type Config struct {
	// Latency is the one-way delay of each direction (RTT = 2×Latency).
	Latency time.Duration
	// Jitter adds a uniform random delay in [-Jitter, +Jitter] to each
	// chunk; chunks never overtake each other (a chunk is never due before
	// the previous one of its direction).
	Jitter time.Duration
	// Bandwidth limits each direction to this many bytes per second
	// (serialization delay before the latency); zero means unlimited.
	Bandwidth int64
	// NoConnectDelay turns off the emulation of the TCP handshake. By
	// default the client's first bytes are not delivered before the
	// connection was accepted plus 2×Latency (the SYN/SYN-ACK round trip)
	// plus Latency: the client's connect returns at once on loopback, so
	// the handshake's round trip is charged to its first bytes instead, and
	// a connect-then-send costs 1.5 RTT as on a real path.
	NoConnectDelay bool
}

// RTT returns a Config with Latency = rtt/2.
func RTT(rtt time.Duration) Config { return Config{Latency: rtt / 2} }

// Stats are the counters of one connection (or of several, summed).
type Stats struct {
	// Flights counts the client's flights (see the package doc).
	Flights int `json:"flights"`
	// BytesUp counts client-to-server bytes, BytesDown server-to-client
	// bytes, as read by the proxy (TLS records included).
	BytesUp   int64 `json:"bytes_up"`
	BytesDown int64 `json:"bytes_down"`
}

// Add returns the sum of s and o.
func (s Stats) Add(o Stats) Stats {
	return Stats{s.Flights + o.Flights, s.BytesUp + o.BytesUp, s.BytesDown + o.BytesDown}
}

// Proxy accepts on a loopback port and forwards each connection to its
// target through the emulated path. It is safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string
	cfg    Config

	mu     sync.Mutex
	conns  []*Conn
	closed bool
	wg     sync.WaitGroup
}

// New listens on 127.0.0.1 (a free port) and proxies to target.
func New(target string, cfg Config) (*Proxy, error) {
	if cfg.Latency < 0 || cfg.Jitter < 0 || cfg.Bandwidth < 0 {
		return nil, errors.New("netem: negative Latency, Jitter or Bandwidth")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, cfg: cfg}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listening address (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Config returns the emulated path.
func (p *Proxy) Config() Config { return p.cfg }

// NumConns returns how many connections the proxy has accepted.
func (p *Proxy) NumConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Conns returns the connections accepted so far, in accept order.
func (p *Proxy) Conns() []*Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Conn(nil), p.conns...)
}

// StatsSince sums the stats of the connections accepted after the first n
// (as returned by NumConns before an operation) and reports how many
// there were.
func (p *Proxy) StatsSince(n int) (Stats, int) {
	var s Stats
	cs := p.Conns()
	if n > len(cs) {
		n = len(cs)
	}
	for _, c := range cs[n:] {
		s = s.Add(c.Stats())
	}
	return s, len(cs) - n
}

// Close stops accepting, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	cs := p.conns
	p.mu.Unlock()
	err := p.ln.Close()
	for _, c := range cs {
		c.Close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		cc, err := p.ln.Accept()
		if err != nil {
			return
		}
		sc, err := net.Dial("tcp", p.target)
		if err != nil {
			cc.Close()
			continue
		}
		for _, c := range []net.Conn{cc, sc} {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetNoDelay(true)
			}
		}
		c := &Conn{client: cc, server: sc, Accepted: time.Now()}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			cc.Close()
			sc.Close()
			return
		}
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			c.run(p.cfg)
		}()
	}
}

// Conn is one proxied connection.
type Conn struct {
	// Accepted is when the proxy accepted the client's connection.
	Accepted time.Time

	client, server net.Conn

	mu        sync.Mutex
	flights   int
	delivered bool    // server bytes delivered to the client since its last bytes
	events    []event // the first maxEvents reads, for StatsBefore
	up, down  atomic.Int64
	closeOnce sync.Once
}

// ClientAddr is the client's address as seen by the proxy (the client
// connection's local address).
func (c *Conn) ClientAddr() string { return c.client.RemoteAddr().String() }

// Stats returns the connection's counters so far.
func (c *Conn) Stats() Stats {
	c.mu.Lock()
	f := c.flights
	c.mu.Unlock()
	return Stats{Flights: f, BytesUp: c.up.Load(), BytesDown: c.down.Load()}
}

// Close closes both sockets.
func (c *Conn) Close() {
	c.closeOnce.Do(func() {
		c.client.Close()
		c.server.Close()
	})
}

// event is one read by the proxy.
type event struct {
	at     time.Time
	n      int
	up     bool
	flight bool // the read started a client flight
}

// maxEvents bounds the per-connection log behind StatsBefore.
const maxEvents = 4096

// StatsBefore returns the counters of what the proxy read before t (a
// login's end, say, to leave out what the client sends after it). It is
// exact for the first 4096 reads of a connection; after them it returns
// Stats.
func (c *Conn) StatsBefore(t time.Time) Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.events) >= maxEvents {
		return Stats{Flights: c.flights, BytesUp: c.up.Load(), BytesDown: c.down.Load()}
	}
	var s Stats
	for _, e := range c.events {
		if !e.at.Before(t) {
			break
		}
		if e.flight {
			s.Flights++
		}
		if e.up {
			s.BytesUp += int64(e.n)
		} else {
			s.BytesDown += int64(e.n)
		}
	}
	return s
}

// StatsSinceBefore is StatsSince counted with StatsBefore(t).
func (p *Proxy) StatsSinceBefore(n int, t time.Time) (Stats, int) {
	var s Stats
	cs := p.Conns()
	if n > len(cs) {
		n = len(cs)
	}
	for _, c := range cs[n:] {
		s = s.Add(c.StatsBefore(t))
	}
	return s, len(cs) - n
}

type chunk struct {
	data []byte
	due  time.Time
}

func (c *Conn) run(cfg Config) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.pipe(cfg, c.client, c.server, true) }()
	go func() { defer wg.Done(); c.pipe(cfg, c.server, c.client, false) }()
	wg.Wait()
	c.Close()
}

// pipe forwards src to dst through the emulated path: a reader stamps
// each chunk with its due time, a writer writes it to dst when due.
func (c *Conn) pipe(cfg Config, src, dst net.Conn, up bool) {
	q := make(chan chunk, 512)
	done := make(chan struct{})
	go func() {
		defer close(done)
		failed := false
		for ch := range q {
			if failed {
				continue
			}
			if d := time.Until(ch.due); d > 0 {
				time.Sleep(d)
			}
			if !up {
				// Marked before the write: the client cannot answer bytes
				// it has not received, and after the write it may answer
				// before this goroutine runs again.
				c.mu.Lock()
				c.delivered = true
				c.mu.Unlock()
			}
			if _, err := dst.Write(ch.data); err != nil {
				failed = true
				c.Close()
				continue
			}
		}
		if !failed {
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			} else {
				c.Close()
			}
		}
	}()
	var last, linkFree time.Time
	if up && !cfg.NoConnectDelay {
		last = c.Accepted.Add(3 * cfg.Latency)
	}
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			now := time.Now()
			c.mu.Lock()
			flight := false
			if up {
				c.up.Add(int64(n))
				if c.flights == 0 || c.delivered {
					c.flights++
					c.delivered = false
					flight = true
				}
			} else {
				c.down.Add(int64(n))
			}
			if len(c.events) < maxEvents {
				c.events = append(c.events, event{now, n, up, flight})
			}
			c.mu.Unlock()
			due := now
			if cfg.Bandwidth > 0 {
				start := now
				if linkFree.After(start) {
					start = linkFree
				}
				linkFree = start.Add(time.Duration(int64(n) * int64(time.Second) / cfg.Bandwidth))
				due = linkFree
			}
			due = due.Add(cfg.Latency)
			if cfg.Jitter > 0 {
				due = due.Add(time.Duration(rand.Int64N(2*int64(cfg.Jitter)+1)) - cfg.Jitter)
			}
			if due.Before(last) {
				due = last
			}
			last = due
			q <- chunk{append([]byte(nil), buf[:n]...), due}
		}
		if err != nil {
			break
		}
	}
	close(q)
	<-done
}
