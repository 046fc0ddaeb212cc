package login

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp"
)

// meterConn sits between the TLS connection and mellium's decoder. During
// the login it counts round trips (a write followed by the first read that
// returns data), flights and bytes. Afterwards it counts the top-level
// stanzas the decoder consumes (the XEP-0198 inbound counter).
//
// It implements io.ByteReader, so encoding/xml reads from its buffer
// byte by byte instead of adding a buffer of its own: the meter sees
// exactly which bytes the session has parsed.
type meterConn struct {
	net.Conn
	br *bufio.Reader

	mu      sync.Mutex
	stopped bool
	pending bool
	cur     Flight
	fl      []Flight
	in, out int64

	scan    atomic.Bool // counting stanzas (after the login)
	lex     stanzaLexer // touched only by the reading goroutine
	handled atomic.Uint32

	writing atomic.Int32 // writes in progress
	dead    atomic.Bool  // the login's context ended: deadlines stay in the past

	outMu    sync.Mutex
	outLex   stanzaLexer
	sent     atomic.Uint32 // stanzas written after the login
	sentMsgs atomic.Uint32 // of which messages

	// skipFeatures drops a stray <stream:features> after a resumption
	// (reading goroutine only, like lex; skipSeen counts the elements seen).
	skipFeatures atomic.Bool
	skipSeen     int
	elemBytes    int // bytes of the current top-level element (reading goroutine)

	// inHook, when set, is offered each complete top-level <message>
	// before the decoder sees it (SetInboundHook); replay holds the bytes
	// of one it declined, which the decoder then reads, and replayErr the
	// read error that ended a capture, returned once they are read.
	inHook    atomic.Pointer[func([]byte) bool]
	replay    []byte
	replayErr error
	captured  []byte // the capture buffer, reused (reading goroutine)

	onStanza  func([]byte) // Config.OnStanzaOut; set before scanning starts
	capturing bool         // inside a top-level element (under outMu)
	capture   []byte       // its bytes so far (under outMu)
}

func newMeterConn(c net.Conn, onStanza func([]byte)) *meterConn {
	m := &meterConn{Conn: c, onStanza: onStanza}
	m.br = bufio.NewReaderSize(rawReader{m}, 4096)
	return m
}

// rawReader reads from the network and counts flights.
type rawReader struct{ m *meterConn }

func (r rawReader) Read(p []byte) (int, error) {
	c := r.m
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		over := false
		if !c.stopped {
			if c.pending {
				c.pending = false
				c.cur.Answered = time.Now()
				c.fl = append(c.fl, c.cur)
			}
			c.in += int64(n)
			over = c.in > MaxLoginBytes
		}
		c.mu.Unlock()
		if over {
			return n, fmt.Errorf("%w: the server's login answers exceed %d bytes", ErrTooLarge, MaxLoginBytes)
		}
	}
	return n, err
}

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
	c.writing.Add(1)
	defer c.writing.Add(-1)
	if c.scan.Load() {
		c.outMu.Lock()
		defer c.outMu.Unlock() // stanzas reach onStanza in write order
		for _, b := range p {
			l := &c.outLex
			if c.onStanza != nil && l.depth == 0 && l.state == lexText && b == '<' {
				c.capturing, c.capture = true, c.capture[:0]
			}
			kind := l.feedKind(b)
			if c.capturing {
				c.capture = append(c.capture, b)
			}
			switch kind {
			case 0:
			case 'm':
				c.sentMsgs.Add(1)
				c.sent.Add(1)
			default:
				c.sent.Add(1)
			}
			if c.capturing && l.depth == 0 && l.state == lexText {
				// A top-level element just ended: a stanza, or something
				// else (<r/>, <a/>, a closing tag) that SM does not count.
				c.capturing = false
				if kind != 0 {
					c.onStanza(c.capture)
				}
				if cap(c.capture) > 64<<10 {
					c.capture = nil // do not keep one huge stanza's buffer
				}
			}
		}
	}
	return c.Conn.Write(p)
}

func (c *meterConn) Read(p []byte) (int, error) {
	if c.skipFeatures.Load() || len(c.replay) > 0 || c.replayErr != nil || c.inHook.Load() != nil {
		// Byte by byte while a features element may have to be dropped.
		for i := range p {
			if i > 0 && c.br.Buffered() == 0 {
				return i, nil
			}
			b, err := c.ReadByte()
			if err != nil {
				return i, err
			}
			p[i] = b
		}
		return len(p), nil
	}
	n, err := c.br.Read(p)
	if n > 0 && c.scan.Load() {
		for _, b := range p[:n] {
			if c.lex.feed(b) {
				c.handled.Add(1)
			}
			if berr := c.bound(); berr != nil {
				return 0, berr
			}
		}
	}
	return n, err
}

// ReadByte implements io.ByteReader for encoding/xml.
func (c *meterConn) ReadByte() (byte, error) {
	if len(c.replay) == 0 && c.replayErr == nil && c.scan.Load() && !c.skipFeatures.Load() && c.lex.depth == 0 && c.lex.state == lexText {
		if h := c.inHook.Load(); h != nil {
			if err := c.offer(*h); err != nil {
				return 0, err
			}
		}
	}
	if len(c.replay) == 0 && c.replayErr != nil {
		// A capture ended in a read error: after its bytes, the error.
		err := c.replayErr
		c.replayErr = nil
		return 0, err
	}
	if len(c.replay) > 0 {
		b := c.replay[0]
		c.replay = c.replay[1:]
		if c.lex.feed(b) {
			c.handled.Add(1)
		}
		if err := c.bound(); err != nil {
			return 0, err
		}
		return b, nil
	}
	if c.skipFeatures.Load() && c.lex.depth == 0 && c.lex.state == lexText {
		if err := c.dropFeatures(); err != nil {
			return 0, err
		}
	}
	b, err := c.br.ReadByte()
	if err == nil && c.scan.Load() {
		if c.lex.feed(b) {
			c.handled.Add(1)
		}
		if err := c.bound(); err != nil {
			return 0, err
		}
	}
	return b, err
}

// messageTag is how a top-level message starts on the wire.
const messageTag = "<message"

// offer reads, while they are top-level messages, whole elements from the
// network and offers each to hook: one hook takes is counted as handled
// (XEP-0198) and never reaches the decoder. It stops at the first element
// that is not a message, or that hook declines: the bytes read of it are
// left in c.replay, for the decoder. It reads no byte past the element it
// looks at, so it never waits for data the decoder would not wait for.
func (c *meterConn) offer(hook func([]byte) bool) error {
	for {
		buf := c.captured[:0]
		var lex stanzaLexer
		ended := false
		for !ended {
			if c.br.Buffered() == 0 {
				// Wait for more (the decoder would too): fills the buffer.
				if _, err := c.br.Peek(1); err != nil {
					if len(buf) == 0 {
						return err
					}
					c.replay, c.replayErr = slices.Clone(buf), err
					return nil
				}
			}
			chunk, _ := c.br.Peek(c.br.Buffered())
			k := 0
			for k < len(chunk) {
				b := chunk[k]
				k++
				buf = append(buf, b)
				kind := lex.feedKind(b)
				if n := len(buf); n <= len(messageTag) {
					if b != messageTag[n-1] {
						_, _ = c.br.Discard(k)
						c.replay = slices.Clone(buf)
						return nil
					}
					continue
				} else if n == len(messageTag)+1 && !isSpace(b) && b != '>' && b != '/' {
					_, _ = c.br.Discard(k)
					c.replay = slices.Clone(buf)
					return nil
				}
				if kind != 0 {
					ended = true // the message ended
					break
				}
			}
			_, _ = c.br.Discard(k)
			switch {
			case len(buf) > MaxStanzaBytes:
				return fmt.Errorf("%w: a stanza larger than %d bytes", ErrTooLarge, MaxStanzaBytes)
			case lex.depth > MaxDepth:
				return fmt.Errorf("%w: elements nested deeper than %d", ErrTooLarge, MaxDepth)
			}
		}
		if cap(buf) <= 64<<10 {
			c.captured = buf
		}
		if !hook(buf) {
			c.replay = slices.Clone(buf)
			return nil
		}
		c.handled.Add(1)
		if c.br.Buffered() == 0 {
			// Nothing more has arrived: let the decoder's next read wait.
			return nil
		}
		if head, _ := c.br.Peek(1); head[0] != '<' {
			return nil // whitespace between stanzas: the decoder's
		}
	}
}

// SetInboundHook makes hook see each complete top-level <message> of s,
// as received, before s decodes it, from the next one on: when hook
// returns true the message is consumed (counted as handled for stream
// management) and s never sees it; when it returns false s reads it as
// usual. hook runs on the goroutine that reads s (Serve's), in stream
// order, and must not retain its argument. A nil hook removes it. It does
// nothing for a session not created by Negotiate.
func SetInboundHook(s *xmpp.Session, hook func(raw []byte) bool) {
	m, ok := s.Conn().(*meterConn)
	if !ok {
		return
	}
	if hook == nil {
		m.inHook.Store(nil)
		return
	}
	m.inHook.Store(&hook)
}

// Limits on what a server can make the client buffer. A top-level element
// (a stanza) beyond MaxStanzaBytes or nested deeper than MaxDepth ends the
// session with ErrTooLarge; so do login answers beyond MaxLoginBytes.
const (
	MaxStanzaBytes = 1 << 20 // Prosody's default limit is 256 KiB
	MaxDepth       = 128
	MaxLoginBytes  = 1 << 20
)

// ErrTooLarge reports a server element beyond the limits above. It matches
// ErrProtocol.
var ErrTooLarge = fmt.Errorf("%w: element too large or too deep", ErrProtocol)

// bound enforces MaxStanzaBytes and MaxDepth on the element being read.
func (c *meterConn) bound() error {
	if c.lex.depth == 0 && c.lex.state == lexText {
		c.elemBytes = 0
		return nil
	}
	c.elemBytes++
	switch {
	case c.elemBytes > MaxStanzaBytes:
		return fmt.Errorf("%w: a stanza larger than %d bytes", ErrTooLarge, MaxStanzaBytes)
	case c.lex.depth > MaxDepth:
		return fmt.Errorf("%w: elements nested deeper than %d", ErrTooLarge, MaxDepth)
	}
	return nil
}

var _ io.ByteReader = (*meterConn)(nil)

// featuresTag is how servers start a features element (the stream prefix
// is bound in the stream header, and every server uses "stream").
const featuresTag = "<stream:features"

// maxSkipWindow bounds how many top-level elements after a resumption are
// checked for a stray features element.
const maxSkipWindow = 64

// dropFeatures discards a <stream:features> element that begins at the
// reader's position. XEP-0198 says no features follow a SASL2 <success/>
// that resumed a session, but Prosody 13 sends them (after the stanzas it
// retransmits); left in the stream they would end mellium's Serve
// (ErrUnknownStreamElement). It is active only after a resumption, for the
// first elements.
func (c *meterConn) dropFeatures() error {
	head, err := c.br.Peek(1)
	if err != nil || head[0] != '<' {
		return nil // the read that follows reports the error
	}
	if c.skipSeen++; c.skipSeen > maxSkipWindow {
		c.skipFeatures.Store(false)
		return nil
	}
	head, err = c.br.Peek(len(featuresTag) + 1)
	if err != nil || string(head[:len(featuresTag)]) != featuresTag {
		return nil
	}
	switch head[len(featuresTag)] {
	case ' ', '>', '/', '\t', '\n', '\r':
	default:
		return nil
	}
	c.skipFeatures.Store(false)
	for {
		b, err := c.br.ReadByte()
		if err != nil {
			return err
		}
		c.lex.feed(b) // never a stanza: the counter does not move
		if c.lex.depth == 0 && c.lex.state == lexText {
			return nil
		}
	}
}

// flights stops counting round trips, starts counting stanzas and returns
// the round trips seen. It is called when the decoder has consumed exactly
// the login's last element.
func (c *meterConn) flights() (int, []Flight) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	c.scan.Store(true)
	return len(c.fl), c.fl
}

func (c *meterConn) bytes() (in, out int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.in, c.out
}

// kill makes every pending and future read and write fail: the login's
// context ended.
func (c *meterConn) kill() {
	c.dead.Store(true)
	_ = c.Conn.SetDeadline(time.Unix(1, 0))
}

// SetDeadline keeps a killed connection's deadline in the past. mellium's
// own context watcher sets a past deadline and at once clears it; if the
// clear lands before the blocked read notices, the read blocks again.
func (c *meterConn) SetDeadline(t time.Time) error {
	if c.dead.Load() {
		return c.Conn.SetDeadline(time.Unix(1, 0))
	}
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline: see SetDeadline.
func (c *meterConn) SetReadDeadline(t time.Time) error {
	if c.dead.Load() {
		return c.Conn.SetReadDeadline(time.Unix(1, 0))
	}
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline ignores a deadline in the past while no write is in
// progress. mellium's Send arms a goroutine that, when the send's context
// ends, sets a past write deadline and then clears it; if that goroutine
// runs after the write has finished (the caller cancels its context right
// after Send returns), the past deadline would make the NEXT write fail with
// a timeout, and a TLS connection never recovers from a timed-out write.
// There is nothing to interrupt when no write is running, so the deadline is
// dropped.
func (c *meterConn) SetWriteDeadline(t time.Time) error {
	if c.dead.Load() {
		return c.Conn.SetWriteDeadline(time.Unix(1, 0))
	}
	if !t.IsZero() && time.Until(t) <= 0 && c.writing.Load() == 0 {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// ConnectionState passes the TLS state through, so mellium (and SASL channel
// binding) see it.
func (c *meterConn) ConnectionState() tls.ConnectionState {
	if tc, ok := c.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}

// StanzasIn returns how many top-level stanzas (message, presence, iq) the
// session has parsed since the login completed: the inbound counter "h" of
// XEP-0198 stream management when it was enabled at bind time. It counts
// every stanza, including IQ results mellium routes to SendIQ callers,
// which a handler never sees. It returns 0 for a session not created by
// Negotiate.
func StanzasIn(s *xmpp.Session) uint32 {
	if m, ok := s.Conn().(*meterConn); ok {
		return m.handled.Load()
	}
	return 0
}

// StanzasOut returns how many top-level stanzas, and of them how many
// messages, the session has written since the login completed (the outbound
// counter of XEP-0198, and what package mamsync needs to know whether the
// archive may hold messages this session sent). 0, 0 for a session not
// created by Negotiate.
func StanzasOut(s *xmpp.Session) (stanzas, messages uint32) {
	if m, ok := s.Conn().(*meterConn); ok {
		return m.sent.Load(), m.sentMsgs.Load()
	}
	return 0, 0
}

// stanzaLexer follows the XML byte stream just enough to see top-level
// elements begin and end inside the stream. feed returns true when a
// top-level message, presence or iq has just ended.
type stanzaLexer struct {
	state   lexState
	depth   int
	name    []byte // local name of the current tag being read
	top     bool   // the element at depth 0 is a stanza
	kind    byte   // its kind: 'm', 'p' or 'i'
	quote   byte
	slash   bool // a '/' was seen in the current start tag (self-closing)
	endTail int  // progress through a terminator ("-->", "]]>", "?>")
}

type lexState uint8

const (
	lexText   lexState = iota
	lexOpen            // after '<'
	lexName            // reading a start tag's name
	lexAttrs           // inside a start tag after its name
	lexQuoted          // inside an attribute value
	lexEnd             // inside an end tag
	lexBang            // after "<!": comment or CDATA
	lexComment
	lexCDATA
	lexPI
	lexDirective
)

func (l *stanzaLexer) feed(b byte) bool { return l.feedKind(b) != 0 }

// feedKind is feed returning which stanza ended: 'm'essage, 'p'resence,
// 'i'q, or 0.
func (l *stanzaLexer) feedKind(b byte) byte {
	switch l.state {
	case lexText:
		if b == '<' {
			l.state = lexOpen
		}
	case lexOpen:
		switch b {
		case '/':
			l.state = lexEnd
		case '!':
			l.state, l.endTail = lexBang, 0
		case '?':
			l.state, l.endTail = lexPI, 0
		default:
			l.state, l.name, l.slash = lexName, append(l.name[:0], b), false
		}
	case lexName:
		switch {
		case b == '>':
			return l.startDone()
		case b == '/':
			l.slash = true
			l.state = lexAttrs
		case isSpace(b):
			l.state = lexAttrs
		case len(l.name) < 16:
			l.name = append(l.name, b)
		}
	case lexAttrs:
		switch b {
		case '\'', '"':
			l.quote, l.state = b, lexQuoted
		case '/':
			l.slash = true
		case '>':
			return l.startDone()
		default:
			if !isSpace(b) {
				l.slash = false
			}
		}
	case lexQuoted:
		if b == l.quote {
			l.state = lexAttrs
		}
	case lexEnd:
		if b == '>' {
			l.state = lexText
			l.depth--
			if l.depth == 0 && l.top {
				l.top = false
				return l.kind
			}
			if l.depth < 0 {
				l.depth = 0 // </stream:stream>
			}
		}
	case lexBang:
		// "<!--" or "<![CDATA[": decide on the first byte, then wait for
		// the matching terminator.
		switch b {
		case '-':
			l.state = lexComment
		case '[':
			l.state = lexCDATA
		default:
			l.state = lexDirective // never legal in XMPP; skip to '>'
		}
	case lexComment:
		l.endTail = advance(l.endTail, b, "-->")
		if l.endTail == 3 {
			l.state = lexText
		}
	case lexCDATA:
		l.endTail = advance(l.endTail, b, "]]>")
		if l.endTail == 3 {
			l.state = lexText
		}
	case lexDirective:
		if b == '>' {
			l.state = lexText
		}
	case lexPI:
		l.endTail = advance(l.endTail, b, "?>")
		if l.endTail == 2 {
			l.state = lexText
		}
	}
	return 0
}

// startDone handles the '>' of a start tag.
func (l *stanzaLexer) startDone() byte {
	l.state = lexText
	if l.depth == 0 {
		l.kind = stanzaKind(l.name)
		l.top = l.kind != 0
	}
	if l.slash {
		if l.depth == 0 && l.top {
			l.top = false
			return l.kind
		}
		return 0
	}
	l.depth++
	return 0
}

func advance(progress int, b byte, term string) int {
	if b == term[progress] {
		return progress + 1
	}
	if progress == 2 && len(term) == 3 && b == term[1] {
		return 2 // "--->" and "]]]>" still end the run
	}
	if b == term[0] {
		return 1
	}
	return 0
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// stanzaKind classifies a (possibly prefixed) message, presence or iq.
func stanzaKind(name []byte) byte {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == ':' {
			name = name[i+1:]
			break
		}
	}
	switch string(name) {
	case "message", "presence", "iq":
		return name[0]
	}
	return 0
}
