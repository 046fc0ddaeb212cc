package xmpptest

// Counters tests read to learn which path a client took: a password or a
// FAST login, a resumption or a fresh bind, and how often a stanza reached
// the server.

// LoginStats counts what happened to one user's logins on the server.
type LoginStats struct {
	// Password counts successful authentications with a password
	// mechanism (SCRAM-*, PLAIN), classic SASL or SASL2.
	Password int
	// FAST counts successful XEP-0484 token authentications (HT-*);
	// FASTFailed those answered with a SASL2 <failure/>.
	FAST, FASTFailed int
	// TokensIssued counts FAST <token/> elements sent in <success/>, on
	// request or by rotation.
	TokensIssued int
	// Resumed counts XEP-0198 resumptions (inline in SASL2 or top level);
	// ResumeFailed the <resume/> requests answered with <failed/>.
	Resumed, ResumeFailed int
}

// Logins returns the counters of the user with localpart local.
func (s *Server) Logins(local string) LoginStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.stats[local]; st != nil {
		return *st
	}
	return LoginStats{}
}

// st returns local's counters, creating them. Called with s.mu held.
func (s *Server) st(local string) *LoginStats {
	st := s.stats[local]
	if st == nil {
		st = &LoginStats{}
		s.stats[local] = st
	}
	return st
}

// count updates local's counters.
func (s *Server) count(local string, f func(*LoginStats)) {
	if local == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.st(local))
}

// HandledCount returns how many times the server has handled a stanza
// (message, presence or IQ) from a client with the given 'id' attribute:
// routed it, answered it or dropped it by the rules of route.go. A stanza
// counts once its handling is complete, exactly when it counts towards the
// XEP-0198 'h' of an SM session, so a test of exactly-once delivery across
// a resumption expects 1 for each id. Ids are not scoped by sender.
func (s *Server) HandledCount(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handled[id]
}

// maxHandledIDs bounds the ids HandledCount remembers (a fuzzer or a long
// MAM test must not grow memory without bound).
const maxHandledIDs = 1 << 16

func (s *Server) noteHandled(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.handled[id]; ok || len(s.handled) < maxHandledIDs {
		s.handled[id]++
	}
}
