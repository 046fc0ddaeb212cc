package xmpptest

import (
	"net"
	"os"
	"sync"
	"time"
)

// latencyConn delays each direction of an accepted TCP connection (below
// TLS) by a fixed one-way latency, preserving order and chunk boundaries:
// a chunk written (or received) at t is delivered at t+latency, and chunks
// are pipelined, not serialized (Config.Latency). A goroutine per direction
// moves the chunks:
//
//   - writes are queued and return at once; the writer goroutine writes each
//     chunk to the socket when it is due. A socket error is returned by a
//     later Write.
//   - the reader goroutine stamps each chunk read from the socket; Read
//     returns it (at most one chunk per call) once it is due.
//
// Close makes Read and Write fail at once, lets the writer flush what was
// already written (each chunk at its due time, within closeFlush), closes the
// socket and waits for both goroutines. A read deadline is taken into account
// when Read starts; changing it during a blocked Read has no effect on that
// Read (Close does).
type latencyConn struct {
	net.Conn // the socket
	rlat     time.Duration
	wlat     time.Duration
	wg       sync.WaitGroup

	closing   chan struct{} // closed by Close
	closeOnce sync.Once

	// Writing.
	wmu    sync.Mutex
	wq     []delayedChunk
	werr   error
	notify chan struct{} // cap 1: the queue changed

	// Reading.
	rq    chan delayedChunk // closed by the reader goroutine at EOF/error
	rerr  error             // set before rq is closed
	rmu   sync.Mutex        // serializes Read
	cur   []byte
	curAt time.Time
	dlmu  sync.Mutex
	rdl   time.Time
}

type delayedChunk struct {
	data []byte
	due  time.Time
}

// closeFlush bounds how long Close waits for queued output to be written.
const closeFlush = 2 * time.Second

func newLatencyConn(nc net.Conn, read, write time.Duration) *latencyConn {
	l := &latencyConn{
		Conn:    nc,
		rlat:    read,
		wlat:    write,
		closing: make(chan struct{}),
		notify:  make(chan struct{}, 1),
		rq:      make(chan delayedChunk, 256),
	}
	l.wg.Add(2)
	go l.readLoop()
	go l.writeLoop()
	return l
}

func (l *latencyConn) readLoop() {
	defer l.wg.Done()
	for {
		buf := make([]byte, 32<<10)
		n, err := l.Conn.Read(buf)
		if n > 0 {
			select {
			case l.rq <- delayedChunk{buf[:n], time.Now().Add(l.rlat)}:
			case <-l.closing:
				return
			}
		}
		if err != nil {
			l.rerr = err
			close(l.rq)
			return
		}
	}
}

func (l *latencyConn) writeLoop() {
	defer l.wg.Done()
	defer l.Conn.Close()
	for {
		l.wmu.Lock()
		if len(l.wq) == 0 {
			l.wmu.Unlock()
			select {
			case <-l.notify:
				continue
			case <-l.closing:
			}
			l.wmu.Lock()
			empty := len(l.wq) == 0
			l.wmu.Unlock()
			if empty {
				return
			}
			continue
		}
		ch := l.wq[0]
		l.wq[0] = delayedChunk{}
		l.wq = l.wq[1:]
		failed := l.werr != nil
		l.wmu.Unlock()
		if failed {
			continue // drop: the socket is broken
		}
		if d := time.Until(ch.due); d > 0 {
			t := time.NewTimer(d)
			<-t.C
		}
		if _, err := l.Conn.Write(ch.data); err != nil {
			l.wmu.Lock()
			l.werr = err
			l.wmu.Unlock()
		}
	}
}

// Write queues a copy of p for delivery after the write latency.
func (l *latencyConn) Write(p []byte) (int, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	select {
	case <-l.closing:
		return 0, net.ErrClosed
	default:
	}
	if l.werr != nil {
		return 0, l.werr
	}
	l.wq = append(l.wq, delayedChunk{append([]byte(nil), p...), time.Now().Add(l.wlat)})
	select {
	case l.notify <- struct{}{}:
	default:
	}
	return len(p), nil
}

// Read returns bytes of the oldest chunk once it is due.
func (l *latencyConn) Read(p []byte) (int, error) {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	select {
	case <-l.closing:
		return 0, net.ErrClosed
	default:
	}
	l.dlmu.Lock()
	dl := l.rdl
	l.dlmu.Unlock()
	var timeout <-chan time.Time
	if !dl.IsZero() {
		t := time.NewTimer(time.Until(dl))
		defer t.Stop()
		timeout = t.C
	}
	if len(l.cur) == 0 {
		select {
		case ch, ok := <-l.rq:
			if !ok {
				return 0, l.rerr
			}
			l.cur, l.curAt = ch.data, ch.due
		case <-l.closing:
			return 0, net.ErrClosed
		case <-timeout:
			return 0, os.ErrDeadlineExceeded
		}
	}
	if d := time.Until(l.curAt); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-l.closing:
			return 0, net.ErrClosed
		case <-timeout:
			return 0, os.ErrDeadlineExceeded
		}
	}
	n := copy(p, l.cur)
	l.cur = l.cur[n:]
	return n, nil
}

// Close flushes queued output (see latencyConn), closes the socket and
// waits for the goroutines.
func (l *latencyConn) Close() error {
	l.closeOnce.Do(func() {
		l.wmu.Lock()
		close(l.closing)
		l.wmu.Unlock()
		// Bound the flush even if the peer does not read.
		_ = l.Conn.SetWriteDeadline(time.Now().Add(l.wlat + closeFlush))
	})
	l.wg.Wait()
	return nil
}

func (l *latencyConn) SetDeadline(t time.Time) error {
	_ = l.SetReadDeadline(t)
	return l.SetWriteDeadline(t)
}

func (l *latencyConn) SetReadDeadline(t time.Time) error {
	l.dlmu.Lock()
	defer l.dlmu.Unlock()
	l.rdl = t
	return nil
}

// SetWriteDeadline applies to the socket writes of queued chunks; it is
// ignored once Close has bounded the flush.
func (l *latencyConn) SetWriteDeadline(t time.Time) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	select {
	case <-l.closing:
		return nil
	default:
	}
	return l.Conn.SetWriteDeadline(t)
}
