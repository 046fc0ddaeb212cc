package xmpptest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"
)

// This file holds the per-connection state machine. Element handlers live in
// one file per protocol (tls.go, sasl2.go, classic.go, bind2.go, sm.go,
// route.go, carbons.go) and register themselves for the states in which they
// apply; the loop in run only reads, dispatches and records.

// connState is where a connection is in stream negotiation.
type connState int

const (
	stateStartTLS connState = iota // plain stream: only <starttls/> is allowed
	stateAuth                      // secured, not authenticated
	stateSASL                      // RFC 6120 SASL exchange in progress
	stateSASL2                     // XEP-0388 SASL2 exchange in progress
	stateAuthed                    // authenticated, no resource bound
	stateBound                     // resource bound: stanzas are routed
	numStates
)

func (s connState) String() string {
	switch s {
	case stateStartTLS:
		return "starttls"
	case stateAuth:
		return "auth"
	case stateSASL:
		return "sasl"
	case stateSASL2:
		return "sasl2"
	case stateAuthed:
		return "authenticated"
	case stateBound:
		return "bound"
	}
	return fmt.Sprintf("connState(%d)", int(s))
}

// handlerFunc handles one top-level element. Returning a *streamError ends
// the stream with that error; errPeerClosed ends it politely; any other error
// drops the connection.
type handlerFunc func(c *conn, el *element) error

// handlers maps each state to the top-level elements it accepts. It is filled
// by init functions and read-only afterwards.
var handlers [numStates]map[xml.Name]handlerFunc

// register makes h handle the top-level element {space}local in state st.
func register(st connState, space, local string, h handlerFunc) {
	if handlers[st] == nil {
		handlers[st] = make(map[xml.Name]handlerFunc)
	}
	handlers[st][name(space, local)] = h
}

func init() {
	for st := range numStates {
		register(st, nsStream, "error", func(*conn, *element) error { return errPeerClosed })
	}
}

// listenMode says how a connection came in.
type listenMode int

const (
	modeDirectTLS listenMode = iota // XEP-0368: TLS from the first byte
	modeStartTLS                    // RFC 6120 §5: plain, STARTTLS required
	modeSecured                     // tests only: treat the raw conn as if TLS were done
)

// streamError is an RFC 6120 §4.9 stream error the server sends before
// closing.
type streamError struct {
	cond, text string
	app        *element // application-specific condition, or nil
}

func (e *streamError) Error() string {
	if e.text == "" {
		return "stream error: " + e.cond
	}
	return "stream error: " + e.cond + ": " + e.text
}

// errPeerClosed means the client closed its stream.
var errPeerClosed = errors.New("xmpptest: client closed the stream")

// errConnLost means the client's data ended (TCP FIN, or TLS close_notify)
// without </stream:stream>: a lost connection, after which a resumable
// session is kept (sm.go).
var errConnLost = errors.New("xmpptest: the connection ended without </stream:stream>")

const writeTimeout = 10 * time.Second

// conn is one client connection.
type conn struct {
	srv  *Server
	cfg  Config // snapshot at accept; Users is nil (looked up live)
	log  *ConnLog
	mode listenMode
	raw  net.Conn

	// Reading: owned by the connection goroutine.
	br         *bufio.Reader // the one buffered reader of the current transport
	in         *byteCounter
	dec        *xml.Decoder // replaced on every stream restart
	arr        *arrivalReader
	tlsState   *tls.ConnectionState
	needHeader bool

	// Writing: any goroutine (routing delivers into other connections).
	wmu        sync.Mutex
	nc         net.Conn // raw, or the *tls.Conn
	secured    bool     // observation (ConnLog) is on
	wclosed    bool
	headerSent bool        // on the current stream
	ready      bool        // routed stanzas are written, not queued (see markReady)
	pending    []queuedOut // routed stanzas that arrived before ready
	written    int         // bytes written since observation began (Fault limits)
	faultHit   error       // errFaultClosed or errFaultStalled once a limit was hit

	// Fault injection (fault.go): set before the connection goroutine
	// starts, then read-only.
	fault Fault
	// Owned by the connection goroutine.
	securedStreams int  // stream headers answered since TLS
	extraSent      bool // Fault.ExtraFeatures done
	stalled        atomic.Bool
	pause          atomic.Int64 // PauseReading's duration (ns), taken by the next element

	// Negotiation state: owned by the connection goroutine.
	state      connState
	streamFrom string
	exch       *exchange
	user       string  // authenticated localpart
	bare       jid.JID // authenticated bare JID
	sm         smState
	smH        atomic.Uint32 // XEP-0198 inbound 'h'; written by the connection goroutine
	csi        string
	heldResult *element // Config.SMEnabledFirst: an IQ result for after <enabled/>

	// Server-initiated questions (probe.go), guarded by their mutex.
	probes probes

	// XEP-0198 outbound state (sm.go), guarded by wmu.
	smo     smOut
	movedTo *conn // set when a resumption moved this session to another connection

	// Guarded by srv.mu (sm.go).
	detached   bool      // the connection is gone; the session awaits resumption
	smDeadline time.Time // when a detached session expires

	// Set once when bound (before the session is registered, so readers that
	// find the conn in the registry see it), then read-only.
	jid     jid.JID
	bound   bool
	carbons atomic.Bool // XEP-0280 enabled
}

func newConn(s *Server, cfg Config, raw net.Conn, mode listenMode) *conn {
	return &conn{
		srv:  s,
		cfg:  cfg,
		log:  newConnLog(mode == modeDirectTLS, raw.RemoteAddr().String()),
		mode: mode,
		raw:  raw,
		nc:   raw,
	}
}

// serve runs the connection until it ends.
func (c *conn) serve() {
	defer c.srv.wg.Done()
	err := c.run()
	c.finish(err)
}

func (c *conn) run() error {
	switch c.mode {
	case modeDirectTLS:
		if err := c.upgradeTLS(nil); err != nil {
			return err
		}
		c.state = stateAuth
	case modeStartTLS:
		c.br = bufio.NewReader(c.raw)
		c.in = &byteCounter{r: c.br}
		c.state = stateStartTLS
	case modeSecured:
		c.observe(c.raw)
		c.state = stateAuth
	}
	c.restart()
	for {
		if c.stalled.Load() {
			return c.drain()
		}
		if c.needHeader {
			if err := c.openStream(); err != nil {
				return c.fail(err)
			}
			continue
		}
		el, err := c.next()
		if err != nil {
			return c.fail(err)
		}
		if c.cfg.StanzaCost > 0 && c.state == stateBound && isStanza(el) {
			time.Sleep(c.cfg.StanzaCost) // the server's work on it (Config.StanzaCost)
		}
		if d := c.pause.Swap(0); d > 0 {
			c.busy(time.Duration(d))
		}
		h := handlers[c.state][el.name]
		if h == nil {
			h = (*conn).unhandled
		}
		if err := h(c, el); err != nil {
			return c.fail(err)
		}
		c.countInbound(el)
	}
}

// observe starts observation on src, the secured transport: from here on
// every item is recorded in the ConnLog.
func (c *conn) observe(src io.Reader) {
	c.arr = newArrivalReader(src, c.log)
	c.br = bufio.NewReaderSize(c.arr, 16<<10)
	c.in = &byteCounter{r: c.br}
	c.wmu.Lock()
	c.secured = true
	c.wmu.Unlock()
}

// restart begins a new stream on the same buffered reader: a new decoder,
// so bytes the client pipelined after the element that caused the restart
// are decoded as the new stream's header.
func (c *conn) restart() {
	c.dec = xml.NewDecoder(c.in)
	c.needHeader = true
	c.wmu.Lock()
	c.headerSent = false
	c.wmu.Unlock()
}

// openStream reads the client's stream header and answers with the server's
// header and the features for the current state.
func (c *conn) openStream() error {
	start, err := c.readHeader()
	if err != nil {
		return err
	}
	c.needHeader = false
	c.recordIn(start.Name, false)

	var from, to, defNS string
	hasFrom := false
	for _, a := range start.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "from":
			from, hasFrom = a.Value, true
		case a.Name.Space == "" && a.Name.Local == "to":
			to = a.Value
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			defNS = a.Value
		}
	}
	if c.secured {
		c.log.set(func(l *ConnLog) {
			if !l.sawHeader {
				l.sawHeader, l.streamFrom, l.hasFrom = true, from, hasFrom
			}
		})
	}
	c.streamFrom = from // XEP-0388 compares authzid with the current stream's
	if err := c.sendHeader(from); err != nil {
		return err
	}
	switch {
	case start.Name.Space != nsStream:
		return &streamError{cond: "invalid-namespace", text: "stream namespace must be " + nsStream}
	case start.Name.Local != "stream":
		return &streamError{cond: "bad-format", text: "expected a stream header"}
	case defNS != "" && defNS != nsClient:
		return &streamError{cond: "invalid-namespace", text: "content namespace must be " + nsClient}
	case to != "" && !strings.EqualFold(to, c.cfg.Domain):
		return &streamError{cond: "host-unknown"}
	}
	first := false
	if c.secured {
		c.securedStreams++
		first = c.securedStreams == 1
	}
	if c.fault.RefusePipelined && c.pipelined() {
		return &streamError{cond: "policy-violation", text: "pipelining is not allowed here: wait for the stream features"}
	}
	if first && c.fault.Garbage != "" {
		if err := c.writeRaw(rawName(c.fault.Garbage), false, []byte(c.fault.Garbage)); err != nil {
			return err
		}
	} else if err := c.sendFeatures(); err != nil {
		return err
	}
	if first && c.fault.StreamError != "" {
		return &streamError{cond: c.fault.StreamError}
	}
	return nil
}

// readHeader skips the XML declaration, whitespace and comments before the
// stream header.
func (c *conn) readHeader() (xml.StartElement, error) {
	for {
		c.in.budget = maxElementBytes
		tok, err := c.dec.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t.Copy(), nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return xml.StartElement{}, &streamError{cond: "bad-format", text: "text before stream header"}
			}
		case xml.Directive:
			return xml.StartElement{}, errDTD
		case xml.EndElement:
			return xml.StartElement{}, &streamError{cond: "bad-format"}
		}
	}
}

// next reads the next top-level element of the stream. Whitespace keepalives,
// comments and processing instructions are skipped; the closing stream tag
// returns errPeerClosed.
func (c *conn) next() (*element, error) {
	for {
		c.in.budget = maxElementBytes
		tok, err := c.dec.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			el, err := decodeElement(c.dec, t)
			if err != nil {
				return nil, err
			}
			defaultNamespace(el)
			c.recordIn(el.name, false)
			return el, nil
		case xml.EndElement:
			c.recordIn(streamName, true)
			return nil, errPeerClosed
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, &streamError{cond: "bad-format", text: "text at stream level"}
			}
		case xml.Directive:
			return nil, errDTD
		}
	}
}

// defaultNamespace puts elements of a stream that declared no default
// namespace into jabber:client.
func defaultNamespace(el *element) {
	if el.name.Space != "" {
		return
	}
	el.name.Space = nsClient
	for _, c := range el.children() {
		defaultNamespace(c)
	}
}

// recordIn logs a client item that ended at the current stream offset.
func (c *conn) recordIn(n xml.Name, end bool) {
	if c.secured {
		c.log.recordIn(n, end, c.in.off-1)
	}
}

// unhandled answers elements no handler accepts in the current state.
func (c *conn) unhandled(el *element) error {
	if c.state == stateStartTLS {
		return &streamError{cond: "policy-violation", text: "STARTTLS is required"} // RFC 6120 §5.3.1
	}
	if isStanza(el) && c.state < stateBound {
		return &streamError{cond: "not-authorized", text: el.name.Local + " before resource binding"}
	}
	return &streamError{cond: "unsupported-stanza-type", text: fmt.Sprintf("unexpected %s in state %v", el.name.Local, c.state)}
}

func isStanza(el *element) bool {
	return el.name.Space == nsClient && (el.name.Local == "message" || el.name.Local == "presence" || el.name.Local == "iq")
}

// fail ends the stream according to err and returns what the ConnLog keeps.
func (c *conn) fail(err error) error {
	if c.stalled.Load() {
		return c.drain() // keep the connection open, say nothing
	}
	var se *streamError
	var syn *xml.SyntaxError
	switch {
	case errors.Is(err, errPeerClosed):
		_ = c.writeRaw(streamName, true, []byte("</stream:stream>"))
		return nil
	case errors.As(err, &se):
	case errors.As(err, &syn) && syn.Msg == "unexpected EOF":
		// The client's data ended inside the stream: the connection was
		// lost (or closed without </stream:stream>). Nobody is left to read
		// a stream error.
		return errConnLost
	case errors.Is(err, errTooLarge), errors.Is(err, errTooDeep):
		se = &streamError{cond: "policy-violation", text: err.Error()}
	case errors.Is(err, errDTD):
		se = &streamError{cond: "restricted-xml"}
	case errors.As(err, &syn):
		se = &streamError{cond: "not-well-formed", text: syn.Msg}
	default:
		return err
	}
	c.sendStreamError(se)
	return se
}

// sendStreamError sends the error (after a header, if this stream has none
// yet) and the closing tag.
func (c *conn) sendStreamError(se *streamError) {
	c.wmu.Lock()
	sent := c.headerSent
	c.wmu.Unlock()
	if !sent {
		_ = c.sendHeader("")
	}
	e := newElement(nsStream, "error").add(newElement(nsStreamError, se.cond))
	if se.text != "" {
		e.add(newElement(nsStreamError, "text").addText(se.text))
	}
	e.add(se.app) // RFC 6120 §4.9.4: after the text
	_ = c.send(e)
	_ = c.writeRaw(streamName, true, []byte("</stream:stream>"))
}

// sendHeader writes the server's stream header (RFC 6120 §4.7), addressed to
// the client's 'from' when that is a valid JID.
func (c *conn) sendHeader(clientFrom string) error {
	var b []byte
	b = append(b, "<?xml version='1.0'?><stream:stream"...)
	b = appendAttr(b, "xmlns", nsClient)
	b = appendAttr(b, "xmlns:stream", nsStream)
	b = appendAttr(b, "id", randomID(16))
	b = appendAttr(b, "from", c.cfg.Domain)
	if j, err := jid.Parse(clientFrom); clientFrom != "" && err == nil {
		b = appendAttr(b, "to", j.String())
	}
	b = appendAttr(b, "version", "1.0")
	b = appendAttr(b, "xml:lang", "en")
	b = append(b, '>')
	c.wmu.Lock()
	c.headerSent = true
	c.wmu.Unlock()
	return c.writeRaw(streamName, false, b)
}

// send writes one top-level element.
func (c *conn) send(e *element) error {
	return c.writeRaw(e.name, false, e.appendXML(nil, nsClient))
}

// writeRaw is the single place where the server writes to a client: it
// records the Out event and writes under the write lock, so the event order
// matches the byte order even when other connections deliver stanzas here.
func (c *conn) writeRaw(n xml.Name, end bool, data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(n, end, data)
}

// writeLocked numbers a stanza for stream management (sm.go), also when
// the connection is gone, so that a resumption retransmits it, then writes
// it, with an <r/> in the same Write when one is due. Called with wmu held.
func (c *conn) writeLocked(n xml.Name, end bool, data []byte) error {
	if c.smo.track(n, data) {
		return c.emitLocked(outItem{name: n, data: data}, smRequestItem)
	}
	return c.emitLocked(outItem{name: n, end: end, data: data})
}

// smRequestItem is the <r/> the server sends when Config.SMRequestEvery
// says so.
var smRequestItem = outItem{name: name(nsSM, "r"), data: []byte("<r xmlns='urn:xmpp:sm:3'/>")}

// emitLocked records items and writes them in a single Write call (so one
// TLS record), without numbering them: retransmissions go straight here.
// Called with wmu held.
func (c *conn) emitLocked(items ...outItem) error {
	if c.wclosed {
		return net.ErrClosed
	}
	var data []byte
	if len(items) > 1 {
		n := 0
		for _, it := range items {
			n += len(it.data)
		}
		data = make([]byte, 0, n)
	}
	for _, it := range items {
		if c.secured {
			c.log.recordOut(it.name, it.end, time.Now())
		}
		if len(items) == 1 {
			data = it.data
		} else {
			data = append(data, it.data...)
		}
	}
	return c.writeBytesLocked(data)
}

// writeItems writes several top-level items in a single Write call,
// recording an Out event for each and numbering stanzas (writeLocked).
func (c *conn) writeItems(items ...queuedOut) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	out := make([]outItem, 0, len(items))
	for _, it := range items {
		out = append(out, outItem{name: it.name, data: it.data})
		if c.smo.track(it.name, it.data) {
			out = append(out, smRequestItem)
		}
	}
	return c.emitLocked(out...)
}

func (c *conn) writeBytesLocked(data []byte) error {
	if c.faultHit != nil {
		if errors.Is(c.faultHit, errFaultStalled) {
			return nil // swallowed
		}
		return c.faultHit
	}
	var hit error
	if c.secured {
		data, hit = c.faultLimit(data)
	}
	if len(data) > 0 { // empty when a limit was hit at a write boundary
		_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := c.nc.Write(data); err != nil {
			c.wclosed = true
			_ = c.raw.Close() // unblock the reader: the connection is finished
			return err
		}
	}
	if c.secured {
		c.written += len(data)
	}
	return c.hitFault(hit)
}

// queuedOut is a routed stanza waiting for its session to become ready,
// or one of several items written together (writeItems).
type queuedOut struct {
	name xml.Name
	data []byte
}

// outItem is an item emitLocked writes.
type outItem struct {
	name xml.Name
	end  bool // the closing </stream:stream>
	data []byte
}

// maxQueued bounds stanzas queued for a session that is not ready yet.
const maxQueued = 1000

// deliver writes a stanza routed from another session (or queues it until
// the client has been told its JID). A failed write ends this session, not
// the sender's.
func (c *conn) deliver(el *element) {
	data := el.appendXML(nil, nsClient)
	c.wmu.Lock()
	if to := c.movedTo; to != nil {
		// The session was resumed on another connection (sm.go).
		c.wmu.Unlock()
		to.deliver(el)
		return
	}
	defer c.wmu.Unlock()
	if !c.ready {
		if len(c.pending) < maxQueued {
			c.pending = append(c.pending, queuedOut{el.name, data})
		}
		return
	}
	_ = c.writeLocked(el.name, false, data)
}

// markReady is called once the client knows its JID (after the SASL2
// success and features, or the bind result): queued stanzas are written and
// later ones go straight out.
func (c *conn) markReady() {
	if !c.bound {
		return
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.ready {
		return
	}
	c.ready = true
	for _, q := range c.pending {
		_ = c.writeLocked(q.name, false, q.data)
	}
	c.pending = nil
}

// finish tears the connection down and closes the ConnLog's Done channel.
func (c *conn) finish(err error) {
	c.srv.endSession(c, err)
	c.wmu.Lock()
	c.wclosed = true
	nc := c.nc
	c.wmu.Unlock()
	if nc != c.raw {
		_ = nc.Close() // sends TLS close_notify when it can
	}
	_ = c.raw.Close()
	if c.arr != nil {
		c.arr.stop()
		<-c.arr.done
	}
	c.wmu.Lock()
	if errors.Is(c.faultHit, errFaultClosed) {
		err = c.faultHit
	}
	c.wmu.Unlock()
	c.log.set(func(l *ConnLog) {
		l.err = err
	})
	c.srv.forget(c)
	close(c.log.done)
}

// randomID returns n random bytes, hex-encoded.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand does not fail
	return hex.EncodeToString(b)
}
