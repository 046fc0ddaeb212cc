package wire

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Default limits of a Conn (Options zero values).
const (
	// DefaultMaxBytes bounds one top-level element (Prosody's own default
	// limit is 256 KiB).
	DefaultMaxBytes = 1 << 20
	// DefaultMaxDepth bounds the nesting inside one.
	DefaultMaxDepth = 128
	// DefaultMaxLoginBytes bounds everything the server sends before the
	// login ends.
	DefaultMaxLoginBytes = 1 << 20
)

// Options configure a Conn. The zero value is the defaults.
type Options struct {
	// Limits bound each top-level element the server sends, during the
	// login and after; zero fields mean DefaultMaxBytes and
	// DefaultMaxDepth.
	Limits Limits
	// MaxLoginBytes bounds what the server may send before EndLogin; zero
	// means DefaultMaxLoginBytes.
	MaxLoginBytes int64
	// OnStanzaOut, if set, is called after EndLogin with every complete
	// stanza (message, presence, iq) written on the connection, in write
	// order, on the writing goroutine: stream management's unacked queue.
	// raw is only valid during the call.
	OnStanzaOut func(raw []byte, k Kind)
	// Trace, if set, is called with every top-level unit of the stream as
	// it crosses the connection, in each direction: the XML declaration,
	// the stream header, each element (also those the tap takes), the
	// stream's end. in tells the direction. It runs on the reading
	// goroutine for what is read and on the writing one for what is
	// written, and must not retain element. It sees everything, secrets
	// included: redact before showing it (login.Redact).
	Trace func(in bool, element []byte)
}

// Conn is the stream layer: it sits between a (TLS) connection and
// mellium's XML decoder, frames both directions into top-level elements
// with a Lexer, and stacks small parts on that framing:
//
//   - limits: every top-level element the server sends is bounded in size
//     and depth, from the first byte; white space between elements is
//     dropped before the decoder sees it and other text there is an error,
//     so nothing a server sends between elements is buffered; a DTD is
//     refused (ErrRestrictedXML).
//   - login metering, until EndLogin: round trips, bytes, and a cap on
//     what the server may send before the login ends. After EndLogin the
//     read and write paths no longer touch it.
//   - stanza counting, after EndLogin: the stanzas the decoder consumed
//     (XEP-0198's inbound h), and the stanzas and messages written, each
//     complete one handed to Options.OnStanzaOut.
//   - the inbound tap (SetInboundTap): each complete top-level <message>
//     is offered, as received, before the decoder sees it.
//   - the features filter (DropStrayFeatures).
//
// Conn implements io.ByteReader, so encoding/xml reads from its buffer
// byte by byte and adds none of its own: the Lexer sees exactly the bytes
// the decoder consumed, and a stanza counts as handled when the decoder
// has read its last byte. Reads belong to one goroutine (the decoder's);
// writes may come from any.
type Conn struct {
	net.Conn
	rb    inbuf // the read buffer (the reading goroutine's)
	meter atomic.Pointer[meter]
	live  atomic.Bool // EndLogin has run

	// The reading goroutine's.
	in        Lexer
	replay    []byte // bytes read ahead for the tap, which the decoder reads next
	replayEnd Kind   // the element that ends with the last replay byte
	replayErr error  // the read error that ended the capture, after replay
	captured  []byte // the capture buffer, reused
	skipLeft  int    // top-level elements still checked by DropStrayFeatures
	inCount   atomic.Uint32
	counting  bool // stanzas read count (CountStanzas, EndLogin)
	tap       atomic.Pointer[func([]byte) bool]

	// The writers'.
	outMu     sync.Mutex
	out       Lexer
	onOut     func([]byte, Kind)
	trace     func(bool, []byte)
	traceIn   []byte // the unit being read, while tracing (reading goroutine)
	traceOut  []byte // the unit being written, while tracing (under outMu)
	outTaking bool   // inside a top-level element written
	outBuf    []byte // its bytes so far
	sent      atomic.Uint32
	sentMsgs  atomic.Uint32

	lastRead atomic.Int64 // when bytes last arrived (Unix nanoseconds)

	writing atomic.Int32 // writes in progress
	dead    atomic.Bool  // Abort: deadlines stay in the past
	dlMu    sync.Mutex   // the read deadline: set through Conn, and WaitInput's probe
	readDL  int64        // the read deadline set through Conn (Unix ns; 0: none)
	refused sync.Once    // the stream error for bad input is sent once
}

// New returns a Conn over c, metering a login until EndLogin.
func New(c net.Conn, o Options) *Conn {
	lim := o.Limits
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = DefaultMaxBytes
	}
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = DefaultMaxDepth
	}
	maxIn := o.MaxLoginBytes
	if maxIn <= 0 {
		maxIn = DefaultMaxLoginBytes
	}
	w := &Conn{Conn: c, in: NewLexer(lim), onOut: o.OnStanzaOut, trace: o.Trace}
	w.meter.Store(&meter{maxIn: maxIn})
	return w
}

// EndLogin ends the login: it returns what the meter counted and turns on
// stanza counting (if CountStanzas has not), the outbound hook and the tap.
// Call it on the reading goroutine when the decoder has consumed exactly the
// login's last element, before anything else is written.
func (c *Conn) EndLogin() Metering {
	m := c.meter.Swap(nil)
	c.counting = true
	c.live.Store(true)
	if m == nil {
		return Metering{}
	}
	return m.result()
}

// CountStanzas starts counting the stanzas read before the login ends: call
// it on the reading goroutine when the decoder has consumed the <enabled/>
// of stream management, from which XEP-0198 counts (a classic login may
// read an IQ answer after it).
func (c *Conn) CountStanzas() { c.counting = true }

// Metering returns what the login's meter has counted so far (zero after
// EndLogin).
func (c *Conn) Metering() Metering {
	if m := c.meter.Load(); m != nil {
		return m.result()
	}
	return Metering{}
}

// LastRead returns when bytes last arrived from the server (the zero Time
// before any): a liveness check asks for an answer after a silence.
func (c *Conn) LastRead() time.Time {
	if ns := c.lastRead.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// StanzasIn returns how many top-level stanzas (message, presence, iq) the
// session has consumed since EndLogin, those the tap took included: the
// inbound counter "h" of XEP-0198 for this connection. IQ results that
// mellium routes to SendIQ callers count too.
func (c *Conn) StanzasIn() uint32 { return c.inCount.Load() }

// StanzasOut returns how many top-level stanzas, and of them how many
// messages, were written since EndLogin.
func (c *Conn) StanzasOut() (stanzas, messages uint32) {
	return c.sent.Load(), c.sentMsgs.Load()
}

// SetInboundTap makes tap see each complete top-level <message>, as
// received, before the decoder does, from the next one on (after
// EndLogin): when tap returns true the message is consumed (counted in
// StanzasIn) and the decoder never sees it; when it returns false the
// decoder reads it as usual. tap runs on the reading goroutine, in stream
// order, and must not retain raw. Nil removes it.
func (c *Conn) SetInboundTap(tap func(raw []byte) bool) {
	if tap == nil {
		c.tap.Store(nil)
		return
	}
	c.tap.Store(&tap)
}

// maxStrayWindow bounds how many top-level elements DropStrayFeatures
// checks.
const maxStrayWindow = 64

// DropStrayFeatures drops one <stream:features> element among the next
// top-level elements. XEP-0198 says nothing follows a SASL2 <success/> that
// resumed a session, but Prosody 13 sends features anyway (after the
// stanzas it retransmits); left in the stream they would end mellium's
// Serve. Call it on the reading goroutine (the login's).
func (c *Conn) DropStrayFeatures() { c.skipLeft = maxStrayWindow }

// WaitInput waits until the server has sent something the decoder has not
// read, or the connection has failed (the decoder's next read then says
// how). Call it on the reading goroutine before it starts decoding: an idle
// connection's goroutine then waits a few frames deep instead of under the
// decoder's (mellium's Serve, encoding/xml, crypto/tls: about 5 KiB), and
// the runtime shrinks a waiting goroutine's stack to what it uses, 4 KiB
// instead of 8 or 16.
//
// Over TLS on a socket, it first takes what TLS already holds, reading with
// a deadline in the past (TLS then hands over a buffered record and touches
// no socket; a timeout leaves the connection usable); with nothing there,
// it waits until the socket is readable, and leaves the reading to the
// decoder. Otherwise it waits in a small read.
func (c *Conn) WaitInput() {
	if len(c.replay) > 0 || c.replayErr != nil || c.rb.buffered() > 0 || c.rb.err != nil {
		return
	}
	tc, ok := c.Conn.(*tls.Conn)
	if !ok || !canWaitReadable(tc.NetConn()) {
		c.rb.fill(netReader{c})
		return
	}
	c.dlMu.Lock()
	_ = tc.SetReadDeadline(time.Unix(1, 0))
	c.rb.fill(netReader{c})
	_ = tc.SetReadDeadline(c.readDeadline())
	c.dlMu.Unlock()
	if c.rb.buffered() > 0 || !errors.Is(c.rb.err, os.ErrDeadlineExceeded) {
		return // what TLS held, or the connection's error
	}
	c.rb.err = nil
	_ = waitReadable(tc.NetConn())
}

// netReader reads from the network and feeds the login's meter.
type netReader struct{ c *Conn }

func (r netReader) Read(p []byte) (int, error) {
	n, err := r.c.Conn.Read(p)
	if n > 0 {
		r.c.lastRead.Store(time.Now().UnixNano())
		if m := r.c.meter.Load(); m != nil {
			if merr := m.read(n); merr != nil {
				return n, r.c.refuse(merr)
			}
		}
	}
	return n, err
}

// ReadByte implements io.ByteReader for encoding/xml.
func (c *Conn) ReadByte() (byte, error) {
	for c.in.AtTop() || len(c.replay) > 0 || c.replayErr != nil {
		if len(c.replay) > 0 || c.replayErr != nil {
			return c.readReplay()
		}
		b, err := c.rb.readByte(netReader{c})
		if err != nil {
			return 0, err
		}
		if isSpace(b) {
			continue // white space between elements: nobody needs it
		}
		if b == '<' && c.tapping() {
			c.rb.unreadByte()
			if err := c.offer(); err != nil {
				return 0, err
			}
			continue
		}
		if err := c.feed(b); err != nil {
			return 0, err
		}
		return b, nil
	}
	b, err := c.rb.readByte(netReader{c})
	if err != nil {
		return 0, err
	}
	if err := c.feed(b); err != nil {
		return 0, err
	}
	return b, nil
}

// Read reads what is buffered (at least one byte, waiting for it) through
// ReadByte.
func (c *Conn) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if n > 0 && len(c.replay) == 0 && c.rb.buffered() == 0 {
			break
		}
		b, err := c.ReadByte()
		if err != nil {
			return n, err
		}
		p[n] = b
		n++
	}
	return n, nil
}

// lexIn passes one byte read through the lexer (and the trace).
func (c *Conn) lexIn(b byte) Kind {
	k := c.in.Feed(b)
	if c.trace != nil {
		c.traceIn = append(c.traceIn, b)
		if c.in.AtTop() || k == KindError {
			c.trace(true, c.traceIn)
			c.traceIn = c.traceIn[:0]
		}
	}
	return k
}

// feed passes one byte the decoder reads through the lexer.
func (c *Conn) feed(b byte) error {
	switch k := c.lexIn(b); {
	case k == KindError:
		return c.refuse(c.in.Err())
	case k.Stanza():
		c.handled()
	}
	return nil
}

// handled counts a stanza the session consumed.
func (c *Conn) handled() {
	if c.counting {
		c.inCount.Add(1)
	}
}

func (c *Conn) readReplay() (byte, error) {
	if len(c.replay) == 0 {
		err := c.replayErr
		c.replayErr = nil
		return 0, err
	}
	b := c.replay[0]
	c.replay = c.replay[1:]
	if len(c.replay) == 0 && c.replayEnd.Stanza() {
		c.replayEnd = KindNone
		c.handled()
	}
	return b, nil
}

// streamErrorTimeout bounds the write of the stream error that ends a
// stream whose input broke the rules.
const streamErrorTimeout = 2 * time.Second

// refuse ends the stream after input that broke the rules: it sends the
// stream error RFC 6120 §4.9.3 names for it (once; a server that does not
// read cannot hold it for more than streamErrorTimeout) and returns err.
func (c *Conn) refuse(err error) error {
	c.refused.Do(func() {
		cond := "policy-violation" // ErrTooLarge: beyond the client's limits
		switch {
		case errors.Is(err, ErrRestrictedXML):
			cond = "restricted-xml"
		case errors.Is(err, ErrText):
			cond = "bad-format"
		}
		c.outMu.Lock()
		defer c.outMu.Unlock()
		_ = c.Conn.SetWriteDeadline(time.Now().Add(streamErrorTimeout))
		_, _ = c.Conn.Write([]byte("<stream:error><" + cond + " xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"))
	})
	return err
}

// Write writes p, counting it for the login's meter or, after EndLogin,
// framing it into stanzas for the counters and Options.OnStanzaOut.
func (c *Conn) Write(p []byte) (int, error) {
	if m := c.meter.Load(); m != nil {
		m.wrote(len(p))
	}
	c.writing.Add(1)
	defer c.writing.Add(-1)
	if !c.live.Load() && c.trace == nil {
		return c.Conn.Write(p)
	}
	c.outMu.Lock()
	defer c.outMu.Unlock() // stanzas reach onOut, and the wire, in order
	c.frameOut(p)
	return c.Conn.Write(p)
}

// frameOut follows written bytes (under outMu): after EndLogin it counts
// stanzas and hands them to the outbound hook; with a trace, it traces.
func (c *Conn) frameOut(p []byte) {
	live := c.live.Load()
	for _, b := range p {
		if live && c.onOut != nil && c.out.AtTop() && b == '<' {
			c.outTaking, c.outBuf = true, c.outBuf[:0]
		}
		k := c.out.Feed(b)
		if c.trace != nil && (len(c.traceOut) > 0 || !isSpace(b)) {
			c.traceOut = append(c.traceOut, b)
			if c.out.AtTop() {
				c.trace(false, c.traceOut)
				c.traceOut = c.traceOut[:0]
			}
		}
		if !live {
			continue
		}
		if c.outTaking {
			c.outBuf = append(c.outBuf, b)
		}
		if k == KindNone {
			continue
		}
		if k.Stanza() {
			c.sent.Add(1)
			if k == KindMessage {
				c.sentMsgs.Add(1)
			}
		}
		if c.outTaking {
			c.outTaking = false
			if k.Stanza() {
				c.onOut(c.outBuf, k)
			}
			if cap(c.outBuf) > 64<<10 {
				c.outBuf = nil // do not keep one huge stanza's buffer
			}
		}
	}
}

// Abort makes every pending and future read and write fail at once (the
// login's context ended).
func (c *Conn) Abort() {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	c.dead.Store(true)
	_ = c.Conn.SetDeadline(time.Unix(1, 0))
}

// SetDeadline keeps an aborted connection's deadline in the past. mellium's
// own context watcher sets a past deadline and at once clears it; if the
// clear lands before the blocked read notices, the read blocks again.
func (c *Conn) SetDeadline(t time.Time) error {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	c.readDL = unixNano(t)
	if c.dead.Load() {
		return c.Conn.SetDeadline(time.Unix(1, 0))
	}
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline: see SetDeadline.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	c.readDL = unixNano(t)
	if c.dead.Load() {
		return c.Conn.SetReadDeadline(time.Unix(1, 0))
	}
	return c.Conn.SetReadDeadline(t)
}

// readDeadline is the read deadline to restore (c.dlMu held).
func (c *Conn) readDeadline() time.Time {
	switch {
	case c.dead.Load():
		return time.Unix(1, 0)
	case c.readDL == 0:
		return time.Time{}
	}
	return time.Unix(0, c.readDL)
}

// unixNano is t in Unix nanoseconds, 0 for the zero Time (no deadline).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// SetWriteDeadline ignores a deadline in the past while no write is in
// progress. mellium's Send arms a goroutine that, when the send's context
// ends, sets a past write deadline and then clears it; if that goroutine
// runs after the write has finished (the caller cancels its context right
// after Send returns), the past deadline would make the NEXT write fail with
// a timeout, and a TLS connection never recovers from a timed-out write.
// There is nothing to interrupt when no write is running, so the deadline is
// dropped.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.dead.Load() {
		return c.Conn.SetWriteDeadline(time.Unix(1, 0))
	}
	if !t.IsZero() && time.Until(t) <= 0 && c.writing.Load() == 0 {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// ConnectionState passes the TLS state through, so that mellium and SASL
// channel binding see it.
func (c *Conn) ConnectionState() tls.ConnectionState {
	if tc, ok := c.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}

var _ io.ByteReader = (*Conn)(nil)
