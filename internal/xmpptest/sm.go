package xmpptest

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// XEP-0198: Stream Management, enabled top level (<enable/> after binding)
// or inline in Bind 2 (bind2.go), resumed top level (<resume/> after the
// classic SASL restart) or inline in the SASL2 <authenticate/> (sasl2.go).
//
// Inbound: the connection goroutine counts the stanzas it has handled
// (conn.smH, reported as 'h' in <a/>, <resumed/> and <failed/>).
//
// Outbound: every stanza written to an SM stream is numbered and kept in an
// unacknowledged queue (smOut, guarded by conn.wmu) until the client's
// <a/> or resumption 'h' covers it. The server sends <r/> after every
// Config.SMRequestEvery stanzas.
//
// Resumption: when a stream with resumption enabled ends without
// </stream:stream> (the TCP connection or TLS dropped, or Fault.CloseAfter,
// or Server.CutConnection), the session is detached rather than unbound: it
// keeps its full JID in the registry, stanzas routed to it are numbered and
// queued, and it waits Config.SMResumeTimeout (or the client's smaller
// 'max') for a <resume/>. A resumption moves the session (JID, counters,
// queue, Carbons and CSI state) to the new connection and retransmits what
// the client's 'h' does not cover. Expired sessions are reaped lazily, under
// the server's lock, whenever the registry is consulted; a tombstone keeps
// their final 'h' for <failed/>. Resuming a session whose connection
// is still open closes that connection with a conflict stream error first.

func init() {
	for _, st := range []connState{stateAuthed, stateBound} {
		register(st, nsSM, "enable", (*conn).handleSMEnable)
		register(st, nsSM, "resume", (*conn).handleSMResume)
		register(st, nsSM, "r", (*conn).handleSMRequest)
		register(st, nsSM, "a", (*conn).handleSMAck)
	}
}

const (
	defaultSMResumeTimeout = 300 * time.Second
	// maxUnacked bounds the unacknowledged queue of one session; past it
	// the session can no longer be resumed (stanzas would be lost).
	maxUnacked = 10000
	// resumeWait bounds how long a resumption waits for the connection it
	// replaces to end.
	resumeWait = 10 * time.Second
)

// smState is the stream management state owned by the connection goroutine
// (moved to the new connection on resumption).
type smState struct {
	enabled   bool
	id        string
	resumable bool
	timeout   time.Duration // how long a detached session is kept
}

// smOut is the outbound half, guarded by conn.wmu: written stanzas are
// numbered and queued until acknowledged.
type smOut struct {
	on        bool
	id        string // the SM-ID, for SMSession
	resumable bool
	sent      uint32   // stanzas sent since <enabled/> (wraps at 2^32)
	acked     uint32   // the client's last 'h'
	queue     []smItem // unacknowledged: seq acked+1 … sent
	overflow  bool     // the queue hit maxUnacked: not resumable
	every     int      // Config.SMRequestEvery
}

type smItem struct {
	name xml.Name
	data []byte
}

// track numbers an outgoing stanza and queues it. It reports whether an
// <r/> should follow.
func (o *smOut) track(n xml.Name, data []byte) (request bool) {
	if !o.on || !isStanzaName(n) {
		return false
	}
	o.sent++
	if len(o.queue) < maxUnacked && !o.overflow {
		o.queue = append(o.queue, smItem{n, data})
	} else {
		o.overflow, o.queue = true, nil
	}
	return o.every > 0 && o.sent%uint32(o.every) == 0
}

// errAckTooHigh is an 'h' above the number of stanzas sent.
type errAckTooHigh struct{ h, sent uint32 }

func (e *errAckTooHigh) Error() string {
	return fmt.Sprintf("You acknowledged %d stanzas, but I only sent you %d so far.", e.h, e.sent)
}

func (e *errAckTooHigh) streamError() *streamError {
	return &streamError{cond: "undefined-condition", text: e.Error(),
		app: newElement(nsSM, "handled-count-too-high",
			"h", strconv.FormatUint(uint64(e.h), 10), "send-count", strconv.FormatUint(uint64(e.sent), 10))}
}

// ack applies a client 'h': the stanzas it covers leave the queue. All
// arithmetic is modulo 2^32, as 'h' wraps.
func (o *smOut) ack(h uint32) error {
	if h-o.acked > o.sent-o.acked {
		return &errAckTooHigh{h: h, sent: o.sent}
	}
	if n := int(h - o.acked); !o.overflow {
		o.queue = o.queue[min(n, len(o.queue)):]
		if len(o.queue) == 0 {
			o.queue = nil
		}
	}
	o.acked = h
	return nil
}

func isStanzaName(n xml.Name) bool {
	return n.Space == nsClient && (n.Local == "message" || n.Local == "presence" || n.Local == "iq")
}

// smTombstone is what the server remembers of an expired session, for the
// optional 'h' of <failed/> (XEP-0198 §resumption).
type smTombstone struct {
	user string
	h    uint32
}

// enableSM enables stream management and returns <enabled/>, or <failed/>
// when it is already on or no resource is bound. The caller starts the
// outbound counter (startSMOut) once <enabled/> is on its way.
func (c *conn) enableSM(req *element) *element {
	if c.sm.enabled || !c.bound {
		return smFailed("unexpected-request", nil)
	}
	c.sm = smState{enabled: true, id: randomID(16), timeout: c.cfg.SMResumeTimeout}
	c.smH.Store(0)
	e := newElement(nsSM, "enabled", "id", c.sm.id)
	if r := req.attrValue("resume"); !c.cfg.NoSMResume && (r == "true" || r == "1") {
		if m, err := strconv.ParseUint(req.attrValue("max"), 10, 32); err == nil && m > 0 {
			c.sm.timeout = min(c.sm.timeout, time.Duration(m)*time.Second)
		}
		c.sm.resumable = true
		secs := max(1, int64((c.sm.timeout+time.Second-1)/time.Second))
		e.setAttr("resume", "true")
		e.setAttr("max", strconv.FormatInt(secs, 10))
		c.srv.registerSM(c)
	}
	return e
}

// startSMOutLocked starts numbering outbound stanzas. Called with wmu held.
func (c *conn) startSMOutLocked() {
	c.smo = smOut{on: true, id: c.sm.id, resumable: c.sm.resumable, every: c.cfg.SMRequestEvery}
}

// smFailed is <failed/> with a stanza error condition and, when h is not
// nil, the 'h' of the session that could not be resumed.
func smFailed(cond string, h *uint32) *element {
	f := newElement(nsSM, "failed")
	if h != nil {
		f.setAttr("h", strconv.FormatUint(uint64(*h), 10))
	}
	return f.add(newElement(nsStanzas, cond))
}

// handleSMEnable answers a top-level <enable/>. <enabled/> is written and
// the outbound counter started under one hold of the write lock, so a
// stanza routed here concurrently is either before <enabled/> and not
// counted, or after it and counted.
func (c *conn) handleSMEnable(el *element) error {
	wasOn := c.sm.enabled
	e := c.enableSM(el)
	c.wmu.Lock()
	err := c.writeLocked(e.name, false, e.appendXML(nil, nsClient))
	if !wasOn && c.sm.enabled {
		c.startSMOutLocked()
	}
	c.wmu.Unlock()
	if held := c.heldResult; held != nil && err == nil {
		// Config.SMEnabledFirst: the IQ result after <enabled/>, counted
		// as the session's first stanza.
		c.heldResult = nil
		err = c.send(held)
	}
	return err
}

// handleSMResume is the top-level <resume/> (after the classic SASL
// restart, before binding).
func (c *conn) handleSMResume(el *element) error {
	if c.bound {
		return c.send(smFailed("unexpected-request", nil))
	}
	res, r, err := c.resumeSM(el)
	if err != nil {
		return err
	}
	if r == nil {
		return c.send(res) // <failed/>: the client may bind instead
	}
	return c.completeResume(res, r, false)
}

func (c *conn) handleSMRequest(*element) error {
	if !c.sm.enabled {
		return nil
	}
	return c.send(newElement(nsSM, "a", "h", strconv.FormatUint(uint64(c.smH.Load()), 10)))
}

// handleSMAck applies the client's <a/>. A missing or invalid 'h' is
// invalid-xml (the schema requires it), one above what was sent is
// XEP-0198 §errors' undefined-condition with <handled-count-too-high/>.
func (c *conn) handleSMAck(el *element) error {
	if !c.sm.enabled {
		return nil
	}
	h, err := strconv.ParseUint(el.attrValue("h"), 10, 32)
	if err != nil {
		return &streamError{cond: "invalid-xml", text: "missing or invalid 'h' attribute"}
	}
	c.wmu.Lock()
	err = c.smo.ack(uint32(h))
	c.wmu.Unlock()
	c.ackArrived(uint32(h))
	var high *errAckTooHigh
	if errors.As(err, &high) {
		return high.streamError()
	}
	return err
}

// countInbound counts a handled stanza: for stream management (wrapping at
// 2^32 as XEP-0198 requires) and for Server.HandledCount.
func (c *conn) countInbound(el *element) {
	if !isStanza(el) {
		return
	}
	if c.sm.enabled {
		c.smH.Add(1)
	}
	if id := el.attrValue("id"); id != "" {
		c.srv.noteHandled(id)
	}
}

// resumption is a session taken over by a new connection: its outbound
// state, acknowledged up to the client's 'h'; the queue is what must be
// retransmitted.
type resumption struct {
	out smOut
}

// resumeSM tries to resume the session named by a <resume/> for the
// authenticated, unbound connection c. On success it returns <resumed/> and
// the resumption, and c has taken the session over (JID, registry entry,
// counters); on failure <failed/> and a nil resumption. An error is a
// stream error (an 'h' above what the server sent).
func (c *conn) resumeSM(req *element) (*element, *resumption, error) {
	s := c.srv
	if c.cfg.NoSMResume {
		s.count(c.user, func(st *LoginStats) { st.ResumeFailed++ })
		return smFailed("feature-not-implemented", nil), nil, nil
	}
	previd := req.attrValue("previd")
	h64, err := strconv.ParseUint(req.attrValue("h"), 10, 32)
	if previd == "" || err != nil {
		s.count(c.user, func(st *LoginStats) { st.ResumeFailed++ })
		return smFailed("bad-request", nil), nil, nil
	}
	h := uint32(h64)

	old, detached := s.resumable(previd, c.user)
	if old != nil && !detached {
		// XEP-0198 §resumption: the old stream is still open; close it
		// with a conflict stream error and wait until it has detached.
		old.cut(&streamError{cond: "conflict", text: "the session was resumed on another stream"})
		select {
		case <-old.log.done:
		case <-time.After(resumeWait):
		}
		old, detached = s.resumable(previd, c.user)
	}
	if old == nil || !detached {
		s.mu.Lock()
		t, ok := s.smGone[previd]
		s.st(c.user).ResumeFailed++
		s.mu.Unlock()
		if ok && t.user == c.user {
			return smFailed("item-not-found", &t.h), nil, nil
		}
		return smFailed("item-not-found", nil), nil, nil
	}

	r, err := s.takeOver(c, old, previd, h)
	if err != nil {
		return nil, nil, err
	}
	if r == nil {
		return smFailed("item-not-found", nil), nil, nil
	}
	j := c.jid.String()
	c.log.set(func(l *ConnLog) { l.jid = j })
	resumed := newElement(nsSM, "resumed", "previd", previd,
		"h", strconv.FormatUint(uint64(c.smH.Load()), 10))
	return resumed, r, nil
}

// resumable looks up the session previd of user: the connection holding
// it (nil if none) and whether it is detached.
func (s *Server) resumable(previd, user string) (old *conn, detached bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reapLocked()
	old = s.smIndex[previd]
	if old == nil || old.user != user {
		return nil, false
	}
	return old, old.detached
}

// takeOver moves the detached session old to c. It returns nil when the
// session cannot be resumed after all (expired meanwhile, or its queue
// overflowed), and an error for an 'h' above what was sent.
func (s *Server) takeOver(c, old *conn, previd string, h uint32) (*resumption, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reapLocked()
	if s.smIndex[previd] != old || !old.detached || s.closed {
		s.st(c.user).ResumeFailed++
		return nil, nil
	}
	old.wmu.Lock()
	out := old.smo
	if out.overflow {
		old.wmu.Unlock()
		s.st(c.user).ResumeFailed++
		return nil, nil
	}
	if err := out.ack(h); err != nil {
		old.wmu.Unlock()
		s.st(c.user).ResumeFailed++
		var high *errAckTooHigh
		if errors.As(err, &high) {
			return nil, high.streamError()
		}
		return nil, err
	}
	old.smo = smOut{}
	old.movedTo = c // routed stanzas that still find old go on to c
	old.wmu.Unlock()

	// The old connection's goroutine has ended (it detached in finish, under
	// this lock), so its goroutine-owned state can be read.
	c.jid, c.bound = old.jid, true
	c.sm = old.sm
	c.smH.Store(old.smH.Load())
	c.carbons.Store(old.carbons.Load())
	c.csi = old.csi
	if m := s.sessions[old.bare.String()]; m != nil && m[old.jid.Resourcepart()] == old {
		m[old.jid.Resourcepart()] = c
	}
	delete(s.detached, old)
	old.detached = false
	s.smIndex[previd] = c
	s.st(c.user).Resumed++
	return &resumption{out: out}, nil
}

// completeResume writes first (the SASL2 <success/> holding <resumed/>, or
// a top-level <resumed/>), then retransmits the unacknowledged stanzas with
// their old numbers, then lets routed stanzas through. The session's
// counters continue from the resumed ones.
func (c *conn) completeResume(first *element, r *resumption, sasl2 bool) error {
	c.state = stateBound
	c.wmu.Lock()
	err := c.writeLocked(first.name, false, first.appendXML(nil, nsClient))
	c.smo = r.out
	c.smo.on, c.smo.every = true, c.cfg.SMRequestEvery
	for _, it := range c.smo.queue {
		if err != nil {
			break
		}
		err = c.emitLocked(outItem{name: it.name, data: it.data})
	}
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	if sasl2 && c.cfg.SMResumeFeatures {
		if err := c.sendFeatures(); err != nil {
			return err
		}
	}
	c.markReady()
	return nil
}

// registerSM makes c's session resumable by its SM-ID.
func (s *Server) registerSM(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.smIndex[c.sm.id] = c
}

// endSession runs when c's connection has ended (err is why; nil after
// </stream:stream>). A resumable session whose transport was lost is
// detached and kept; any other is unbound.
func (s *Server) endSession(c *conn, err error) {
	var se *streamError
	lost := err != nil && !errors.As(err, &se)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.bound {
		return
	}
	if lost && c.sm.resumable && !s.closed && s.smIndex[c.sm.id] == c {
		c.detached = true
		c.smDeadline = s.nowLocked().Add(c.sm.timeout)
		s.detached[c] = struct{}{}
		return
	}
	s.unbindLocked(c)
}

// reapLocked ends detached sessions whose resumption timeout has passed.
// Called with s.mu held.
func (s *Server) reapLocked() {
	if len(s.detached) == 0 {
		return
	}
	now := s.nowLocked()
	for c := range s.detached {
		if !now.Before(c.smDeadline) {
			s.unbindLocked(c)
		}
	}
}

// nowLocked is the server's clock (Config.Now). Called with s.mu held.
func (s *Server) nowLocked() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// cut ends c's connection from the server side as a network failure would:
// after the stream error se, if any, the TCP connection is closed (no TLS
// close_notify, no </stream:stream> unless se is sent).
func (c *conn) cut(se *streamError) {
	if se != nil {
		c.sendStreamError(se)
	}
	_ = c.raw.Close()
}

// SMSession describes a XEP-0198 session as the server sees it.
type SMSession struct {
	// ID is the SM-ID ('id' of <enabled/>, 'previd' of <resume/>).
	ID string
	// JID is the session's full JID.
	JID string
	// Resumable reports whether resumption was enabled.
	Resumable bool
	// Detached reports that the connection is gone and the session waits
	// for a resumption.
	Detached bool
	// InboundH is the number of client stanzas handled: the 'h' the server
	// reports.
	InboundH uint32
	// Sent is the number of stanzas sent (or queued while detached) to the
	// client; AckedH is the client's last 'h'; Unacked = Sent - AckedH is
	// what a resumption would retransmit.
	Sent, AckedH uint32
	Unacked      int
}

// SMSession returns the stream management state of the session bound to
// the full JID full, if stream management is on there. While the
// connection is live, InboundH may move as the client's stanzas arrive.
func (s *Server) SMSession(full string) (SMSession, bool) {
	s.mu.Lock()
	s.reapLocked()
	var c *conn
	for _, m := range s.sessions {
		for _, x := range m {
			if x.jid.String() == full {
				c = x
			}
		}
	}
	if c == nil {
		s.mu.Unlock()
		return SMSession{}, false
	}
	info := SMSession{JID: full, Detached: c.detached}
	s.mu.Unlock()

	c.wmu.Lock()
	o := c.smo
	c.wmu.Unlock()
	if !o.on {
		return SMSession{}, false
	}
	info.ID, info.Resumable = o.id, o.resumable
	info.Sent, info.AckedH, info.Unacked = o.sent, o.acked, int(o.sent-o.acked)
	info.InboundH = c.smH.Load()
	return info, true
}

// CutConnection closes the TCP connection of l abruptly, as a network
// failure would: no </stream:stream>, no TLS close_notify. A session with
// resumption enabled is detached and can be resumed. It returns false when
// l's connection has already ended. Wait on l.Done() to know that the
// server has noticed.
func (s *Server) CutConnection(l *ConnLog) bool {
	c := s.liveConn(l)
	if c == nil {
		return false
	}
	c.cut(nil)
	return true
}

// StallConnection makes the connection l logs go silent, as a server that
// hangs or a network that drops everything would look from the client: from
// now on nothing more is written to it (what the server would write is
// swallowed), what the client sends is read and discarded, and the
// connection stays open. It reports false when l's connection has ended.
func (s *Server) StallConnection(l *ConnLog) bool {
	c := s.liveConn(l)
	if c == nil {
		return false
	}
	c.wmu.Lock()
	c.faultHit = errFaultStalled
	c.wmu.Unlock()
	c.stalled.Store(true)
	return true
}

// PauseReading makes the connection l logs read nothing for d after the
// next element it reads, as a server busy with what it has read looks from
// the client (ejabberd writing a burst to its archive): its receive window
// closes, while it still writes, a whitespace keepalive every d/20. The
// pause ends early when the connection does. It reports false when l's
// connection has ended.
func (s *Server) PauseReading(l *ConnLog, d time.Duration) bool {
	c := s.liveConn(l)
	if c == nil {
		return false
	}
	c.pause.Store(int64(d))
	return true
}

// busy is PauseReading's pause, on the connection's goroutine.
func (c *conn) busy(d time.Duration) {
	tick := time.NewTicker(d / 20)
	defer tick.Stop()
	end := time.After(d)
	for {
		select {
		case <-end:
			return
		case <-tick.C:
			c.wmu.Lock()
			err := c.writeBytesLocked([]byte(" "))
			c.wmu.Unlock()
			if err != nil {
				return // the connection has ended: its reads say how
			}
		}
	}
}

// liveConn returns the connection l logs, nil when it has ended.
func (s *Server) liveConn(l *ConnLog) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.live {
		if c.log == l {
			return c
		}
	}
	return nil
}

// ExpireSMSessions ends, as if their resumption timeout had passed, the
// detached sessions of the user local (every user's when local is ""). A
// later <resume/> for them fails with item-not-found and their final 'h'.
// It returns how many sessions it ended.
func (s *Server) ExpireSMSessions(local string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.detached {
		if local == "" || c.user == local {
			s.unbindLocked(c)
			n++
		}
	}
	return n
}
