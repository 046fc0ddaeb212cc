package xmpptest

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// A minimal per-user message archive: the data behind the XEP-0386 v0.3.0
// draft's <latest-id/> and <unreads/> (bind2draft.go) and behind MAM
// (XEP-0313, mam.go), plus per-contact read markers. Tests read and seed the
// archive with Archive, InjectArchive, InjectArchiveAt, InjectArchiveBulk,
// ExpireArchiveBefore and SetReadMarker. Only messages with a <body/> (not
// type error or groupchat) are archived, as chat states and receipts are not
// conversation. The server keeps no offline messages: a message to a user
// without a session is archived and otherwise dropped.
//
// Each message has a timestamp (when the server archived it; injected
// messages may be back-dated), kept in archive order: a stamp earlier than
// the previous message's is raised to it, so the archive is chronological as
// XEP-0313 §archive_order requires. Ids are unique, never reused, and opaque
// (18 hex digits with at least one letter, so never a number) unless
// Config.MAMNumericIDs is set, when they are increasing decimal numbers
// (microseconds since 1970, bumped when needed, as ejabberd does).

// ArchivedMessage is one message in a user's archive.
type ArchivedMessage struct {
	// StanzaID is the XEP-0359 stanza-id the server stamped on the message
	// (the same id is stored in the sender's and the recipient's archives).
	StanzaID string
	// Peer is the other party's bare JID.
	Peer string
	// Incoming is true for a message the user received, false for one sent.
	Incoming bool
	// Body is the message's <body/> text.
	Body string
}

// archived is a stored message: the public view plus what MAM returns.
type archived struct {
	ArchivedMessage
	at       int64  // timestamp, microseconds since 1970
	from, to string // full JIDs when known (routed), else bare
	typ      string // the message's type attribute
	msgID    string // the message's id attribute
}

// time returns the message's timestamp.
func (m *archived) time() time.Time { return time.UnixMicro(m.at).UTC() }

// userArchive is one user's archive, oldest first.
type userArchive struct {
	msgs  []archived
	first int            // sequence number of msgs[0] (messages dropped before it)
	index map[string]int // stanza-id -> sequence number
}

// pos returns the position in msgs of the message with stanza-id id.
func (a *userArchive) pos(id string) (int, bool) {
	if a == nil {
		return 0, false
	}
	seq, ok := a.index[id]
	return seq - a.first, ok
}

// Archive returns a copy of user's archive (user is a localpart), oldest
// first.
func (s *Server) Archive(user string) []ArchivedMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.archives[strings.ToLower(user)]
	if a == nil {
		return nil
	}
	out := make([]ArchivedMessage, len(a.msgs))
	for i := range a.msgs {
		out[i] = a.msgs[i].ArchivedMessage
	}
	return out
}

// ArchiveTime returns when the message with stanza-id id was archived in
// user's archive (the <delay/> stamp MAM reports), and whether it is there.
func (s *Server) ArchiveTime(user, id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.archives[strings.ToLower(user)]
	p, ok := a.pos(id)
	if !ok {
		return time.Time{}, false
	}
	return a.msgs[p].time(), true
}

// InjectArchive appends a message to user's archive as if it had been
// exchanged with peerBare (a bare JID) now, and returns its new stanza-id.
func (s *Server) InjectArchive(user, peerBare, body string, incoming bool) (stanzaID string) {
	return s.InjectArchiveAt(user, peerBare, body, incoming, time.Now())
}

// InjectArchiveAt is InjectArchive with a timestamp. The archive stays in
// chronological order: a time before the newest message's is raised to it.
func (s *Server) InjectArchiveAt(user, peerBare, body string, incoming bool, at time.Time) (stanzaID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.userArchiveLocked(user)
	id := s.newIDLocked(a)
	a.add(injected(strings.ToLower(user)+"@"+s.domain, peerBare, body, incoming, id, at))
	return id
}

// InjectArchiveBulk appends n messages (bodies "message 1" to "message n")
// exchanged with peerBare, all incoming or all outgoing, stamped one second
// apart and ending now, and returns the first and last new stanza-ids ("" if
// n <= 0). It is meant for large archives: 100,000 messages take well under
// a second.
func (s *Server) InjectArchiveBulk(user, peerBare string, n int, incoming bool) (firstID, lastID string) {
	if n <= 0 {
		return "", ""
	}
	now := time.Now().UnixMicro()
	// Few allocations: the ids (with their message ids, "msg-" + id) and the
	// bodies are substrings of two large strings.
	const idLen = 2 * opaqueIDBytes
	rnd := make([]byte, n*opaqueIDBytes)
	_, _ = rand.Read(rnd)
	idBuf := make([]byte, 0, n*(4+idLen))
	for i := range n {
		idBuf = append(idBuf, "msg-"...)
		idBuf = hex.AppendEncode(idBuf, rnd[i*opaqueIDBytes:(i+1)*opaqueIDBytes])
	}
	ids := string(idBuf)
	var bodyBuf []byte
	bodyEnd := make([]int, n)
	for i := range n {
		bodyBuf = append(bodyBuf, "message "...)
		bodyBuf = strconv.AppendInt(bodyBuf, int64(i+1), 10)
		bodyEnd[i] = len(bodyBuf)
	}
	bodies := string(bodyBuf)

	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.userArchiveLocked(user)
	if len(a.index) < n {
		idx := make(map[string]int, len(a.index)+n)
		for k, v := range a.index {
			idx[k] = v
		}
		a.index = idx
	}
	own := strings.ToLower(user) + "@" + s.domain
	peer := strings.ToLower(peerBare)
	m := injected(own, peer, "", incoming, "", time.Time{})
	a.msgs = growArchived(a.msgs, n)
	bodyStart := 0
	for i := range n {
		k := i * (4 + idLen)
		m.msgID, m.StanzaID = ids[k:k+4+idLen], ids[k+4:k+4+idLen]
		if s.cfg.MAMNumericIDs {
			m.StanzaID = s.numericIDLocked()
			m.msgID = "msg-" + m.StanzaID
		} else if !isOpaque(m.StanzaID) || a.has(m.StanzaID) {
			m.StanzaID = s.newIDLocked(a)
			m.msgID = "msg-" + m.StanzaID
		}
		m.Body = bodies[bodyStart:bodyEnd[i]]
		bodyStart = bodyEnd[i]
		m.at = now - int64(n-1-i)*1e6
		a.add(m)
		if i == 0 {
			firstID = m.StanzaID
		}
		lastID = m.StanzaID
	}
	return firstID, lastID
}

// growArchived makes room for n more messages.
func growArchived(s []archived, n int) []archived {
	if cap(s)-len(s) >= n {
		return s
	}
	out := make([]archived, len(s), len(s)+n)
	copy(out, s)
	return out
}

// ExpireArchiveBefore drops the messages older than the one with stanza-id
// id from user's archive, as a server with a retention limit does
// (XEP-0313 §archives_deletion): the oldest go, no holes are made, and their
// ids are not reused, so a cursor pointing at one of them is item-not-found
// from then on. An id that is not in the archive changes nothing.
func (s *Server) ExpireArchiveBefore(user, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.archives[strings.ToLower(user)]
	p, ok := a.pos(id)
	if !ok || p == 0 {
		return
	}
	for _, m := range a.msgs[:p] {
		delete(a.index, m.StanzaID)
	}
	a.msgs = append([]archived(nil), a.msgs[p:]...)
	a.first += p
}

// SetReadMarker records that user has read the conversation with peerBare up
// to and including the message with stanza-id readID; "" removes the marker.
func (s *Server) SetReadMarker(user, peerBare, readID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	user, peerBare = strings.ToLower(user), strings.ToLower(peerBare)
	if readID == "" {
		delete(s.markers[user], peerBare)
		return
	}
	if s.markers == nil {
		s.markers = make(map[string]map[string]string)
	}
	if s.markers[user] == nil {
		s.markers[user] = make(map[string]string)
	}
	s.markers[user][peerBare] = readID
}

// injected builds an injected message between own and peer (bare JIDs).
func injected(own, peer, body string, incoming bool, id string, at time.Time) archived {
	peer = strings.ToLower(peer)
	m := archived{
		ArchivedMessage: archived0(id, peer, incoming, body),
		at:              at.UnixMicro(),
		from:            own,
		to:              peer,
		typ:             "chat",
		msgID:           "msg-" + id,
	}
	if incoming {
		m.from, m.to = peer, own
	}
	return m
}

func archived0(id, peer string, incoming bool, body string) ArchivedMessage {
	return ArchivedMessage{StanzaID: id, Peer: peer, Incoming: incoming, Body: body}
}

// userArchiveLocked returns user's archive, creating it.
func (s *Server) userArchiveLocked(user string) *userArchive {
	if s.archives == nil {
		s.archives = make(map[string]*userArchive)
	}
	user = strings.ToLower(user)
	a := s.archives[user]
	if a == nil {
		a = &userArchive{index: make(map[string]int)}
		s.archives[user] = a
	}
	return a
}

// has reports whether id is in the archive.
func (a *userArchive) has(id string) bool {
	_, ok := a.index[id]
	return ok
}

// add appends m, keeping timestamps in archive order.
func (a *userArchive) add(m archived) {
	m.Peer = strings.ToLower(m.Peer)
	if n := len(a.msgs); n > 0 && m.at < a.msgs[n-1].at {
		m.at = a.msgs[n-1].at
	}
	a.index[m.StanzaID] = a.first + len(a.msgs)
	a.msgs = append(a.msgs, m)
}

// opaqueIDBytes is the size of an opaque id before hex encoding.
const opaqueIDBytes = 9

// opaqueID returns a random id that is not a number.
func opaqueID() string {
	for {
		if id := randomID(opaqueIDBytes); isOpaque(id) {
			return id
		}
	}
}

// isOpaque reports whether a hex id has a letter (is not a decimal number).
func isOpaque(id string) bool {
	for i := range len(id) {
		if id[i] >= 'a' && id[i] <= 'f' {
			return true
		}
	}
	return false
}

// newStanzaID returns a fresh XEP-0359 stanza-id (also the archive id) in
// the configured style.
func (s *Server) newStanzaID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newIDLocked(nil)
}

// newIDLocked returns a new id, unique in a when a is not nil.
func (s *Server) newIDLocked(a *userArchive) string {
	if s.cfg.MAMNumericIDs {
		return s.numericIDLocked()
	}
	for {
		if id := opaqueID(); a == nil || !a.has(id) {
			return id
		}
	}
}

// numericIDLocked returns the next increasing numeric id: microseconds since
// 1970, bumped past the previous one.
func (s *Server) numericIDLocked() string {
	s.lastNumID = max(s.lastNumID+1, time.Now().UnixMicro())
	return strconv.FormatInt(s.lastNumID, 10)
}

// archiveRouted stores a routed message in the recipient's archive and,
// unless it is to self, in the sender's. from and to are the stanza's
// addresses (full or bare JIDs), typ and msgID its type and id.
func (s *Server) archiveRouted(fromUser, toUser, fromBare, toBare, from, to, typ, msgID, stanzaID, body string) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	m := archived{at: now.UnixMicro(), from: from, to: to, typ: typ, msgID: msgID}
	m.ArchivedMessage = archived0(stanzaID, fromBare, true, body)
	s.userArchiveLocked(toUser).add(m)
	if !strings.EqualFold(fromUser, toUser) {
		m.ArchivedMessage = archived0(stanzaID, toBare, false, body)
		s.userArchiveLocked(fromUser).add(m)
	}
}

// unread is one contact's entry in <unreads/>.
type unread struct {
	peer, readID string
	count        int
}

// archiveState returns the newest stanza-id in user's archive ("" when it is
// empty) and the contacts with unread incoming messages, in order of their
// first unread message. A contact's unread messages are the incoming ones
// after its read marker, or all of them when it has none (or the marker is
// not in the archive, or not a message with that contact).
func (s *Server) archiveState(user string) (latest string, unreads []unread) {
	s.mu.Lock()
	defer s.mu.Unlock()
	user = strings.ToLower(user)
	a := s.archives[user]
	if a == nil || len(a.msgs) == 0 {
		return "", nil
	}
	latest = a.msgs[len(a.msgs)-1].StanzaID
	markers := s.markers[user]
	// Position of each marker in the archive; -1 when absent.
	pos := make(map[string]int)
	for peer, id := range markers {
		pos[peer] = -1
		if p, ok := a.pos(id); ok && a.msgs[p].Peer == peer {
			pos[peer] = p
		}
	}
	idx := make(map[string]int)
	for i, m := range a.msgs {
		if !m.Incoming {
			continue
		}
		if p, ok := pos[m.Peer]; ok && i <= p {
			continue
		}
		j, ok := idx[m.Peer]
		if !ok {
			j = len(unreads)
			idx[m.Peer] = j
			unreads = append(unreads, unread{peer: m.Peer, readID: markers[m.Peer]})
		}
		unreads[j].count++
	}
	return latest, unreads
}
