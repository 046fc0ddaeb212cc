package client

import (
	"errors"
	"fmt"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/login"
)

// ErrSMAck reports an acknowledgement that does not fit what was sent: the
// server claims to have received stanzas the client never sent. The stream
// management state is then unreliable and the session is not resumed.
var ErrSMAck = errors.New("client: stream management: acknowledgement beyond what was sent")

// maxUnacked bounds the stanzas kept for re-sending. A server that never
// acknowledges cannot make the client hold more: past the bound the session
// is marked not resumable and the queue is dropped (the next login binds a
// fresh session and the archive catch-up repairs what it can).
const maxUnacked = 10000

// smSession is the XEP-0198 state of one stream management session, kept
// across connections so that a dropped one can be resumed: the counters and
// the stanzas the server has not acknowledged yet.
//
// Counting follows XEP-0198 §4: h values wrap at 2^32.
type smSession struct {
	mu        sync.Mutex
	enabled   bool
	resumable bool
	id        string
	jid       jid.JID
	inBase    uint32   // inbound stanzas handled on earlier connections
	acked     uint32   // the server's last h
	unacked   [][]byte // sent, not acknowledged, oldest first
	requested bool     // an <r/> is outstanding
	overflow  bool
}

// reset starts a new session (a fresh bind): state from res.
func (s *smSession) reset(res *login.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enabled = res.SM.Enabled
	s.resumable = res.SM.Enabled && res.SM.Resumable && res.SM.ID != ""
	s.id = res.SM.ID
	s.jid = res.JID
	s.inBase, s.acked, s.requested, s.overflow = 0, 0, false, false
	s.unacked = nil
}

// onStanza records a stanza just written (login.Config.OnStanzaOut).
func (s *smSession) onStanza(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.enabled {
		return
	}
	if len(s.unacked) >= maxUnacked {
		if !s.overflow {
			s.overflow, s.resumable = true, false
			s.unacked = nil
		}
		return
	}
	s.unacked = append(s.unacked, append([]byte(nil), p...))
}

// ack applies the server's <a h=.../>.
func (s *smSession) ack(h uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requested = false
	err := s.ackLocked(h)
	if err != nil {
		s.resumable = false
	}
	return err
}

func (s *smSession) ackLocked(h uint32) error {
	if s.overflow {
		s.acked = h
		return nil
	}
	n := h - s.acked // wraps as XEP-0198 counters do
	if int64(n) > int64(len(s.unacked)) {
		return fmt.Errorf("%w: h=%d, %d acknowledged before and %d in flight", ErrSMAck, h, s.acked, len(s.unacked))
	}
	clear(s.unacked[:n])
	s.unacked = s.unacked[n:]
	s.acked = h
	return nil
}

// needRequest reports whether an <r/> should follow a send, and marks one
// outstanding: one request at a time, only with unacknowledged stanzas.
func (s *smSession) needRequest() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.enabled || s.requested || len(s.unacked) == 0 {
		return false
	}
	s.requested = true
	return true
}

// handled returns the inbound counter h: stanzas handled on earlier
// connections of this session plus those of the current one.
func (s *smSession) handled(current uint32) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inBase + current
}

// dropped records the end of a connection that had handled current inbound
// stanzas, and returns what to ask the next login to resume (nil when the
// session cannot be resumed).
func (s *smSession) dropped(current uint32) *login.Resume {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inBase += current
	s.requested = false
	if !s.resumable {
		return nil
	}
	return &login.Resume{ID: s.id, H: s.inBase, JID: s.jid}
}

// resumed applies a successful resume whose server h is h and returns the
// stanzas to re-send, in order. They leave the queue: writing them records
// them again.
func (s *smSession) resumed(h uint32) ([][]byte, error) {
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

// pending returns the unacknowledged stanzas and forgets them (a failed
// resume: they are re-sent on the fresh session).
func (s *smSession) pending() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.unacked
	s.unacked = nil
	return out
}

// info returns the counters for Info and tests.
func (s *smSession) counters() (inBase, acked uint32, unacked int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inBase, s.acked, len(s.unacked)
}
