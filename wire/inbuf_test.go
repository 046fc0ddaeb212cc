package wire

import (
	"io"
	"strings"
	"testing"
)

// chunkReader returns its chunks one per Read (cut to the caller's
// buffer), records the size of every buffer it was given, then returns
// err.
type chunkReader struct {
	chunks []string
	err    error
	asked  []int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	r.asked = append(r.asked, len(p))
	if len(r.chunks) == 0 {
		return 0, r.err
	}
	n := copy(p, r.chunks[0])
	if r.chunks[0] = r.chunks[0][n:]; r.chunks[0] == "" {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

// TestInbufBorrowsWhileFlowing: an empty buffer waits in a small read; a
// read that fills what it was given is followed by one into a borrowed 4
// KiB buffer, given back once it has been read out and the last read did
// not fill it. Every byte comes out in order, then the error, once.
func TestInbufBorrowsWhileFlowing(t *testing.T) {
	long := strings.Repeat("x", 5000)
	src := &chunkReader{chunks: []string{"<a/>", long, "<b/>"}, err: io.EOF}
	var b inbuf
	var got []byte
	var borrowed []bool // per read: was a 4 KiB buffer held afterwards
	reads := 0
	for {
		c, err := b.readByte(src)
		if len(src.asked) != reads {
			reads = len(src.asked)
			borrowed = append(borrowed, b.big != nil)
		}
		if err != nil {
			if err != io.EOF {
				t.Fatalf("err %v, want io.EOF", err)
			}
			break
		}
		got = append(got, c)
	}
	if want := "<a/>" + long + "<b/>"; string(got) != want {
		t.Fatalf("read %d bytes, want %d in order", len(got), len(want))
	}
	if _, err := b.readByte(src); err != io.EOF {
		t.Errorf("after the error: %v, want it again from the source", err)
	}
	// <a/> (4 < 32), then 32 of long (full), then 4096 of it (full),
	// then the rest of long (872 < 4096), then <b/> in a small read, then
	// the end.
	want := []int{idleReadSize, idleReadSize, bufSize, bufSize, idleReadSize, idleReadSize}
	if !equalInts(src.asked[:len(want)], want) {
		t.Errorf("read sizes %v, want %v", src.asked, want)
	}
	wantBorrowed := []bool{false, false, true, true, false, false}
	for i, w := range wantBorrowed {
		if i < len(borrowed) && borrowed[i] != w {
			t.Errorf("after read %d (asked %d): 4 KiB buffer held %v, want %v", i+1, src.asked[i], borrowed[i], w)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
