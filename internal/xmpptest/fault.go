package xmpptest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Fault is what Config.Fault injects into one connection, for tests of how a
// client copes with a broken or unusual server during login. The zero Fault
// injects nothing. Byte counts are of the server's application data after
// the TLS handshake (the plaintext the server writes into TLS, stream
// headers included; for STARTTLS, from the handshake that follows
// <proceed/>). Faults apply to connections accepted after the Config that
// holds them was set. The ConnLog records what the server meant to write,
// including what a limit cut short or swallowed.
type Fault struct {
	// CloseAfter, when positive, closes the TCP connection (without a TLS
	// close_notify) once the server has written this many bytes: the write
	// that crosses the limit is cut short, so the client reads exactly
	// CloseAfter bytes and then end of file.
	CloseAfter int
	// StallAfter, when positive, stops all output once this many bytes have
	// been written (the write that crosses the limit is cut short). The
	// connection stays open; the server reads and discards whatever the
	// client sends until the client closes or the server is closed.
	StallAfter int
	// Garbage is written right after the first stream header after TLS,
	// instead of the stream features. The server then goes on reading.
	Garbage string
	// StreamError is a stream error condition (such as "system-shutdown"):
	// right after the first stream header and features after TLS the server
	// sends <stream:error><StreamError xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>,
	// closes the stream and the connection.
	StreamError string
	// RefusePipelined makes a server that refuses pipelining: if, when it is
	// about to write the features of a stream (any stream, before or after
	// TLS or authentication), the client has already sent something other
	// than whitespace beyond its stream header, it answers with a
	// policy-violation stream error and closes.
	RefusePipelined bool
	// ExtraFeatures sends a second, empty <stream:features/> right after the
	// features of the authenticated stream (after the classic SASL restart
	// or after the SASL2 <success/>).
	ExtraFeatures bool
	// UnexpectedElement is raw XML written right before <success/> (classic
	// SASL or SASL2), in its own write. It is not validated.
	UnexpectedElement string
	// CloseAfterSASL2Failure ends the stream right after a SASL2 <failure>
	// (a refused FAST token included) and closes the connection, as a
	// server that allows one authentication per connection does: the
	// client cannot fall back to the password on the same stream.
	CloseAfterSASL2Failure bool
}

var (
	errFaultClosed     = errors.New("xmpptest: connection closed by Fault.CloseAfter")
	errFaultStalled    = errors.New("xmpptest: output stalled by Fault.StallAfter")
	errFaultAuthClosed = errors.New("xmpptest: connection closed by Fault.CloseAfterSASL2Failure")
)

// faultLimit cuts data at the first CloseAfter or StallAfter limit it
// reaches, and says which one (nil when none). Called with wmu held.
func (c *conn) faultLimit(data []byte) ([]byte, error) {
	lim, hit := 0, error(nil)
	if n := c.fault.StallAfter; n > 0 {
		lim, hit = n, errFaultStalled
	}
	if n := c.fault.CloseAfter; n > 0 && (lim == 0 || n <= lim) {
		lim, hit = n, errFaultClosed
	}
	if hit == nil || c.written+len(data) < lim {
		return data, nil
	}
	return data[:max(lim-c.written, 0)], hit
}

// hitFault acts on a limit reached by the write that just finished. Called
// with wmu held.
func (c *conn) hitFault(hit error) error {
	if hit == nil {
		return nil
	}
	c.faultHit = hit
	if errors.Is(hit, errFaultStalled) {
		c.stalled.Store(true)
		return nil
	}
	// Close the TCP connection under TLS: no close_notify.
	c.wclosed = true
	_ = c.raw.Close()
	return hit
}

// drain reads and discards client input until it ends (the client closes,
// or the server does): what a stalled connection does instead of
// processing.
func (c *conn) drain() error {
	_, err := io.Copy(io.Discard, c.br)
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return errFaultStalled
	}
	return fmt.Errorf("%w; then %w", errFaultStalled, err)
}

// pipelined reports whether client data other than whitespace is waiting
// beyond what the decoder has consumed (Fault.RefusePipelined).
func (c *conn) pipelined() bool {
	if b, _ := c.br.Peek(c.br.Buffered()); len(bytes.TrimSpace(b)) > 0 {
		return true
	}
	return c.arr != nil && c.arr.pending()
}

// sendFeatures sends the stream features for the current state, and after
// those of the authenticated stream a second <stream:features/> when
// Fault.ExtraFeatures asks for it.
func (c *conn) sendFeatures() error {
	if err := c.send(c.features()); err != nil {
		return err
	}
	if c.fault.ExtraFeatures && !c.extraSent && (c.state == stateAuthed || c.state == stateBound) {
		c.extraSent = true
		return c.send(newElement(nsStream, "features"))
	}
	return nil
}

// beforeSuccess writes Fault.UnexpectedElement, if any, before a SASL or
// SASL2 <success/>.
func (c *conn) beforeSuccess() error {
	if x := c.fault.UnexpectedElement; x != "" {
		return c.writeRaw(rawName(x), false, []byte(x))
	}
	return nil
}

// WriteRaw writes data on l's connection as is, right after what the server
// has written so far, without validating or numbering it (XEP-0198): a
// fault knob for input the server itself never produces, such as a stanza
// that is not well-formed. It returns false when l's connection has ended.
func (s *Server) WriteRaw(l *ConnLog, data string) bool {
	c := s.liveConn(l)
	if c == nil {
		return false
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.emitLocked(outItem{name: xml.Name{Local: "raw"}, data: []byte(data)}) == nil
}

// Flood writes unit again and again on l's connection, total bytes in all
// (the last copy cut short), right after what the server has written so
// far: a hostile server's flood (white space, text, nesting) for tests of
// what the client holds meanwhile. It returns the bytes written and the
// error that stopped it early (the client closing the connection, most
// likely), nil once total were written.
func (s *Server) Flood(l *ConnLog, unit string, total int64) (int64, error) {
	c := s.liveConn(l)
	if c == nil {
		return 0, net.ErrClosed
	}
	chunk := bytes.Repeat([]byte(unit), max(64<<10/len(unit), 1))
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var n int64
	for n < total {
		p := chunk[:min(int64(len(chunk)), total-n)]
		_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		w, err := c.nc.Write(p)
		n += int64(w)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
