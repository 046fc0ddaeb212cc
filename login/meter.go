package login

import (
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// meterConn counts round trips (a write followed by the first read that
// returns data), flights and bytes on the connection while the login runs.
type meterConn struct {
	net.Conn
	mu      sync.Mutex
	stopped bool
	pending bool
	cur     Flight
	fl      []Flight
	in, out int64
}

func newMeterConn(c net.Conn) *meterConn { return &meterConn{Conn: c} }

func (c *meterConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if !c.stopped {
		if !c.pending {
			c.pending = true
			c.cur = Flight{Sent: time.Now()}
		}
		c.cur.BytesOut += int64(len(p))
		c.out += int64(len(p))
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *meterConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		if !c.stopped {
			if c.pending {
				c.pending = false
				c.cur.Answered = time.Now()
				c.fl = append(c.fl, c.cur)
			}
			c.in += int64(n)
		}
		c.mu.Unlock()
	}
	return n, err
}

// flights stops counting and returns the round trips seen.
func (c *meterConn) flights() (int, []Flight) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	return len(c.fl), c.fl
}

func (c *meterConn) bytes() (in, out int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.in, c.out
}

// ConnectionState passes the TLS state through, so mellium (and SASL channel
// binding) see it.
func (c *meterConn) ConnectionState() tls.ConnectionState {
	if tc, ok := c.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}
