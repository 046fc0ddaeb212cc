package xmpptest

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"sync"
	"time"
)

// arrivalReader reads the transport on its own goroutine so that the
// ConnLog learns when client bytes arrive, independent of when the
// connection's state machine gets round to decoding them. Without it a
// pipelined <authenticate/> sitting in a buffer would look as if it came after
// the server's features, which the server writes before decoding further.
type arrivalReader struct {
	src  io.Reader
	log  *ConnLog
	done chan struct{} // closed when the read loop returns

	mu   sync.Mutex
	cond sync.Cond
	buf  []byte
	err  error
}

// maxPending bounds bytes read ahead of the decoder.
const maxPending = 1 << 20

func newArrivalReader(src io.Reader, log *ConnLog) *arrivalReader {
	r := &arrivalReader{src: src, log: log, done: make(chan struct{})}
	r.cond.L = &r.mu
	go r.loop()
	return r
}

func (r *arrivalReader) loop() {
	defer close(r.done)
	p := make([]byte, 32<<10)
	for {
		n, err := r.src.Read(p)
		if n > 0 {
			r.log.arrived(n, time.Now())
		}
		r.mu.Lock()
		r.buf = append(r.buf, p[:n]...)
		if err != nil {
			r.err = err
		}
		r.cond.Broadcast()
		for len(r.buf) > maxPending && r.err == nil {
			r.cond.Wait()
		}
		stop := r.err != nil
		r.mu.Unlock()
		if stop {
			return
		}
	}
}

// stop makes the read loop and Read return; call it after closing src.
func (r *arrivalReader) stop() {
	r.mu.Lock()
	if r.err == nil {
		r.err = net.ErrClosed
	}
	r.cond.Broadcast()
	r.mu.Unlock()
}

// pending reports whether bytes other than whitespace were read from the
// transport and not yet consumed.
func (r *arrivalReader) pending() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(bytes.TrimSpace(r.buf)) > 0
}

// Read returns buffered client bytes, waiting for some if there are none.
func (r *arrivalReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.buf) == 0 && r.err == nil {
		r.cond.Wait()
	}
	if len(r.buf) == 0 {
		return 0, r.err
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	if len(r.buf) == 0 {
		r.buf = nil
	}
	r.cond.Broadcast()
	return n, nil
}

// byteCounter sits between the connection's single bufio.Reader and each
// xml.Decoder. It implements io.ByteReader, so encoding/xml reads through it
// byte by byte and buffers nothing itself: a new decoder after a stream
// restart continues exactly where the old one stopped. It also counts the
// stream offset (for ConnLog) and enforces the per-element size budget.
type byteCounter struct {
	r      *bufio.Reader
	off    int64 // bytes consumed since observation began
	budget int
}

func (c *byteCounter) ReadByte() (byte, error) {
	if c.budget <= 0 {
		return 0, errTooLarge
	}
	b, err := c.r.ReadByte()
	if err == nil {
		c.off++
		c.budget--
	}
	return b, err
}

func (c *byteCounter) Read(p []byte) (int, error) {
	if c.budget <= 0 {
		return 0, errTooLarge
	}
	if len(p) > c.budget {
		p = p[:c.budget]
	}
	n, err := c.r.Read(p)
	c.off += int64(n)
	c.budget -= n
	return n, err
}

// prefixConn replays bytes read before a TLS upgrade (a client that did not
// wait for <proceed/>) ahead of the rest of the connection.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
