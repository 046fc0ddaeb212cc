package wire

import (
	"fmt"
	"sync"
	"time"
)

// Flight is one round trip as the client saw it: when its first byte was
// written and when the first byte of the answer arrived.
type Flight struct {
	Sent     time.Time `json:"sent"`
	Answered time.Time `json:"answered"`
	BytesOut int64     `json:"bytes_out"`
}

// Metering is what a Meter counted.
type Metering struct {
	// Flights has one entry per round trip: a write followed by the first
	// read that returned data. A last write nobody answered is not one.
	Flights []Flight
	// BytesIn and BytesOut count the bytes read and written.
	BytesIn, BytesOut int64
}

// RoundTrips is len(m.Flights).
func (m Metering) RoundTrips() int { return len(m.Flights) }

// meter counts a login's round trips and bytes, and caps what the server may
// send before the login ends. A Conn has one until EndLogin; after that the
// read and write paths do not touch it.
type meter struct {
	maxIn int64

	mu      sync.Mutex
	pending bool
	cur     Flight
	m       Metering
}

// wrote records n bytes written.
func (m *meter) wrote(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.pending {
		m.pending = true
		m.cur = Flight{Sent: time.Now()}
	}
	m.cur.BytesOut += int64(n)
	m.m.BytesOut += int64(n)
}

// read records n bytes read from the network.
func (m *meter) read(n int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending {
		m.pending = false
		m.cur.Answered = time.Now()
		m.m.Flights = append(m.m.Flights, m.cur)
	}
	m.m.BytesIn += int64(n)
	if m.maxIn > 0 && m.m.BytesIn > m.maxIn {
		return fmt.Errorf("%w: the server's login answers exceed %d bytes", ErrTooLarge, m.maxIn)
	}
	return nil
}

func (m *meter) result() Metering {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m
}
