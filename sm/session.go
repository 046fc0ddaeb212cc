package sm

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/wire"
)

// ErrAck reports an acknowledgement that does not fit what was sent: the
// server claims to have received stanzas the client never sent. The stream
// management state is then unreliable and the session is not resumed.
var ErrAck = errors.New("sm: acknowledgement beyond what was sent")

// MaxUnacked bounds the stanzas a Session keeps for sending again. A server
// that never acknowledges cannot make the client hold more: past the bound
// the session is marked not resumable and the queue is dropped (the next
// login binds a fresh session).
const MaxUnacked = 10000

// RequestEvery is how many stanzas may follow an outstanding <r/> before
// another one is asked. A server answers an <r/> only once it has handled
// every stanza written before it, so a burst with a single request at its
// head leaves the server silent while it works through the rest: a slow
// server would look dead to a liveness check (and the queue would drain
// only at the end). A request every RequestEvery stanzas has the server
// report progress through the backlog, at the cost of ~30 bytes each way.
const RequestEvery = 16

// Stanza is a stanza written and not acknowledged yet.
type Stanza struct {
	Raw  []byte
	Kind wire.Kind
}

// Session is the state of one stream management session, kept across
// connections so that a dropped one can be resumed: the counters and the
// stanzas the server has not acknowledged. The zero Session is disabled.
//
// Counting follows XEP-0198 §4: h values wrap at 2^32.
type Session struct {
	mu        sync.Mutex
	enabled   bool
	resumable bool
	id        string
	jid       jid.JID
	inBase    uint32   // inbound stanzas handled on earlier connections
	acked     uint32   // the server's last h
	unacked   []Stanza // sent, not acknowledged, oldest first
	requested bool     // an <r/> is outstanding
	since     int      // stanzas recorded since the last <r/>
	overflow  bool
}

// Reset starts a new session (a fresh bind) with the state the server
// announced; bound is the session's full JID.
func (s *Session) Reset(st State, bound jid.JID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enabled = st.Enabled
	s.resumable = st.Enabled && st.Resumable && st.ID != ""
	s.id = st.ID
	s.jid = bound
	s.inBase, s.acked, s.requested, s.overflow = 0, 0, false, false
	s.unacked = nil
}

// Enabled reports whether stream management is on.
func (s *Session) Enabled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enabled
}

// Record keeps a stanza just written until the server acknowledges it: the
// outbound hook of the connection (wire.Options.OnStanzaOut).
func (s *Session) Record(raw []byte, k wire.Kind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.enabled {
		return
	}
	if len(s.unacked) >= MaxUnacked {
		if !s.overflow {
			s.overflow, s.resumable = true, false
			s.unacked = nil
		}
		return
	}
	s.unacked = append(s.unacked, Stanza{Raw: append([]byte(nil), raw...), Kind: k})
	s.since++
}

// Ack applies the server's <a h=.../>.
func (s *Session) Ack(h uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requested = false
	err := s.ackLocked(h)
	if err != nil {
		s.resumable = false
	}
	return err
}

func (s *Session) ackLocked(h uint32) error {
	if s.overflow {
		s.acked = h
		return nil
	}
	n := h - s.acked // wraps as XEP-0198 counters do
	if int64(n) > int64(len(s.unacked)) {
		return fmt.Errorf("%w: h=%d, %d acknowledged before and %d in flight", ErrAck, h, s.acked, len(s.unacked))
	}
	clear(s.unacked[:n])
	s.unacked = s.unacked[n:]
	s.acked = h
	return nil
}

// NeedRequest reports whether an <r/> should follow a send, and marks one
// outstanding: only with unacknowledged stanzas, when no request is
// outstanding or RequestEvery stanzas have been sent since the last one.
func (s *Session) NeedRequest() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.enabled || len(s.unacked) == 0 || (s.requested && s.since < RequestEvery) {
		return false
	}
	s.requested, s.since = true, 0
	return true
}

// Handled returns the inbound counter h: stanzas handled on earlier
// connections of this session plus current, those of this connection.
func (s *Session) Handled(current uint32) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inBase + current
}

// Dropped records the end of a connection that had handled current inbound
// stanzas, and returns what to ask the next login to resume (nil when the
// session cannot be resumed).
func (s *Session) Dropped(current uint32) *Resume {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inBase += current
	s.requested = false
	if !s.resumable {
		return nil
	}
	return &Resume{ID: s.id, H: s.inBase, JID: s.jid}
}

// Resumed applies a successful resume whose server h is h and returns the
// stanzas to send again, in order. They leave the queue: writing them
// records them again.
func (s *Session) Resumed(h uint32) ([]Stanza, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ackLocked(h); err != nil {
		s.resumable = false
		return nil, err
	}
	out := s.unacked
	s.unacked = nil
	return out, nil
}

// Pending returns the unacknowledged stanzas and forgets them (after a
// failed resume, the caller decides which to send on the fresh session).
func (s *Session) Pending() []Stanza {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.unacked
	s.unacked = nil
	return out
}

// Counters returns the inbound base, the server's last h and the number of
// unacknowledged stanzas.
func (s *Session) Counters() (inBase, acked uint32, unacked int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inBase, s.acked, len(s.unacked)
}

// Resend writes stanzas in one write on w (a connection whose outbound hook
// is Record), then an <r/> when one is needed, so that the server
// acknowledges them. Use it before the session
// is served (nothing else may write on w meanwhile).
func (s *Session) Resend(w io.Writer, stanzas []Stanza) error {
	if len(stanzas) == 0 {
		return nil
	}
	var buf []byte
	for _, st := range stanzas {
		buf = append(buf, st.Raw...)
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("sm: sending %d unacknowledged stanzas again: %w", len(stanzas), err)
	}
	// Written, they are in the queue again (Record): ask for an ack.
	if s.NeedRequest() {
		if _, err := w.Write([]byte("<r xmlns='urn:xmpp:sm:3'/>")); err != nil {
			return fmt.Errorf("sm: requesting an acknowledgement: %w", err)
		}
	}
	return nil
}
