package wire

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pipebind/pipebind/internal/testcert"
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

// tlsPair returns a client Conn over TLS on a loopback socket and the
// server's side of it.
func tlsPair(t *testing.T) (*Conn, *tls.Conn) {
	t.Helper()
	pki, err := testcert.New("wire", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pki.Server}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan *tls.Conn, 1)
	go func() {
		defer close(accepted)
		c, err := l.Accept()
		if err != nil {
			return
		}
		if err := c.(*tls.Conn).Handshake(); err != nil {
			c.Close()
			return
		}
		accepted <- c.(*tls.Conn)
	}()
	tc, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pki.Pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	srv, ok := <-accepted
	if !ok {
		t.Fatal("accept or server handshake failed")
	}
	t.Cleanup(func() { tc.Close(); srv.Close() })
	c := New(tc, Options{})
	c.EndLogin()
	return c, srv
}

// waitInput runs c.WaitInput on a goroutine and returns a channel closed
// when it returns.
func waitInput(c *Conn) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.WaitInput()
	}()
	return done
}

func readN(t *testing.T, c *Conn, n int) string {
	t.Helper()
	var b bytes.Buffer
	for range n {
		x, err := c.ReadByte()
		if err != nil {
			t.Fatalf("after %q: %v", b.String(), err)
		}
		b.WriteByte(x)
	}
	return b.String()
}

// TestWaitInput: WaitInput returns at once when TLS holds bytes the decoder
// has not read (no socket would wake it), waits on the socket otherwise,
// leaves the reading to the decoder, and returns when the connection ends
// or the read deadline set through Conn passes, which it keeps.
func TestWaitInput(t *testing.T) {
	long := "<message>" + strings.Repeat("x", 200) + "</message>"

	t.Run("held by TLS", func(t *testing.T) {
		c, srv := tlsPair(t)
		if _, err := srv.Write([]byte(long)); err != nil { // one record
			t.Fatal(err)
		}
		// The first byte takes a small read: TLS keeps the rest.
		if got := readN(t, c, idleReadSize); got != long[:idleReadSize] {
			t.Fatalf("read %q", got)
		}
		select {
		case <-waitInput(c):
		case <-time.After(10 * time.Second):
			t.Fatal("WaitInput waits on the socket while TLS holds the rest of a record")
		}
		if got := readN(t, c, len(long)-idleReadSize); got != long[idleReadSize:] {
			t.Fatalf("then read %q", got)
		}
	})

	t.Run("waits on the socket", func(t *testing.T) {
		c, srv := tlsPair(t)
		done := waitInput(c)
		select {
		case <-done:
			t.Fatal("WaitInput returned with nothing sent")
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := srv.Write([]byte(long)); err != nil {
			t.Fatal(err)
		}
		<-done
		if c.rb.buffered() != 0 {
			t.Error("WaitInput read from the socket; the decoder's read should")
		}
		if got := readN(t, c, len(long)); got != long {
			t.Fatalf("read %q", got)
		}
	})

	t.Run("connection ends", func(t *testing.T) {
		c, srv := tlsPair(t)
		done := waitInput(c)
		srv.Close()
		<-done
		if _, err := c.ReadByte(); err != io.EOF {
			t.Errorf("ReadByte after the peer closed: %v, want io.EOF", err)
		}
	})

	t.Run("read deadline", func(t *testing.T) {
		c, _ := tlsPair(t)
		if err := c.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		<-waitInput(c) // returns when the deadline passes: it was kept
		if _, err := c.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("ReadByte after the deadline: %v, want a timeout", err)
		}
	})
}
