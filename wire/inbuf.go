package wire

import (
	"io"
	"sync"
)

// bufSize is the size of the read buffer a Conn borrows while data flows.
const bufSize = 4096

// idleReadSize is the size of the read a Conn waits on when data is not
// flowing.
const idleReadSize = 32

// bufPool holds the read buffers of the connections that are not reading.
var bufPool = sync.Pool{New: func() any { return new([bufSize]byte) }}

// inbuf is a Conn's read buffer: bufio.Reader's job, without holding 4 KiB
// for the life of every connection. An idle connection (a bot that has
// nothing to read for hours) waits for the next bytes in a read of
// idleReadSize into a few bytes of its own; the 4 KiB buffer is borrowed
// from a pool when a read filled what it was given (more is likely
// waiting, as in a MAM catch-up), and given back when it has been read out
// and the last read did not fill it. Either way a read is made only once
// everything read before has been consumed, as with bufio, so nothing
// waits for data while holding bytes the decoder has not seen.
type inbuf struct {
	big   *[bufSize]byte // borrowed from bufPool; nil when not
	small [idleReadSize]byte
	r, w  int32 // buf()[r:w] is unread
	onBig bool  // the bytes are in big, not small
	full  bool  // the last read filled the buffer: read the next into big
	err   error // the read error, returned once buf()[r:w] is consumed
}

// buf returns the buffer the bytes are in.
func (b *inbuf) buf() []byte {
	if b.onBig {
		return b.big[:]
	}
	return b.small[:]
}

// maxEmptyReads bounds the reads in a row that return nothing and no error
// (as bufio does).
const maxEmptyReads = 100

// fill reads once more from src into an empty buffer (r == w).
func (b *inbuf) fill(src io.Reader) {
	if b.full {
		if b.big == nil {
			b.big = bufPool.Get().(*[bufSize]byte)
		}
	} else {
		b.release()
	}
	b.onBig = b.full
	b.r, b.w = 0, 0
	buf := b.buf()
	for range maxEmptyReads {
		n, err := src.Read(buf)
		b.w = int32(n)
		b.full = n == len(buf)
		if n > 0 || err != nil {
			b.err = err
			return
		}
	}
	b.err = io.ErrNoProgress
}

// release gives the borrowed buffer back; buf must be read out.
func (b *inbuf) release() {
	if b.big != nil {
		bufPool.Put(b.big)
		b.big, b.onBig = nil, false
	}
}

// buffered returns how many bytes can be read without reading more.
func (b *inbuf) buffered() int { return int(b.w - b.r) }

// readErr returns the pending read error, once.
func (b *inbuf) readErr() error {
	err := b.err
	b.err = nil
	return err
}

// readByte returns the next byte, reading from src when none is buffered.
func (b *inbuf) readByte(src io.Reader) (byte, error) {
	for b.r == b.w {
		if b.err != nil {
			return 0, b.readErr()
		}
		b.fill(src)
	}
	c := b.buf()[b.r]
	b.r++
	return c, nil
}

// unreadByte puts back the byte readByte just returned.
func (b *inbuf) unreadByte() { b.r-- }

// peek returns the buffered bytes, reading from src first when none are;
// it returns the read error when nothing could be read.
func (b *inbuf) peek(src io.Reader) ([]byte, error) {
	for b.r == b.w {
		if b.err != nil {
			return nil, b.readErr()
		}
		b.fill(src)
	}
	return b.buf()[b.r:b.w], nil
}

// discard drops n buffered bytes (n <= buffered()).
func (b *inbuf) discard(n int) { b.r += int32(n) }
