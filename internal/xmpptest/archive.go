package xmpptest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"hash/maphash"
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
//
// An archive holds no pointer per message: its strings live in one byte
// arena (strRef), its id index is a table of positions (idTable). The
// server runs in the process of the client it tests, so a 100,000-message
// archive would otherwise be 800,000 pointers that the garbage collector
// scans on every cycle, a cost every client benchmark would pay.

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

// strRef is a string in an archive's arena.
type strRef struct{ off, n uint32 }

// archived is a stored message: the public view plus what MAM returns, as
// references into its archive's arena.
type archived struct {
	id, peer, body strRef
	from, to       strRef // full JIDs when known (routed), else bare
	typ, msgID     strRef // the message's type and id attributes
	at             int64  // timestamp, microseconds since 1970
	incoming       bool
}

// time returns the message's timestamp.
func (m *archived) time() time.Time { return time.UnixMicro(m.at).UTC() }

// arena holds an archive's strings. Bytes once appended never change: a
// slice of it taken under the server's lock stays readable after.
type arena []byte

func (a arena) bytes(r strRef) []byte { return a[r.off : r.off+r.n : r.off+r.n] }
func (a arena) str(r strRef) string   { return string(a.bytes(r)) }

// is reports whether r holds s, without allocating.
func (a arena) is(r strRef, s string) bool { return string(a.bytes(r)) == s }

// userArchive is one user's archive, oldest first.
type userArchive struct {
	arena    arena
	interned map[string]strRef // strings that repeat: JIDs, types (a few)
	msgs     []archived
	index    idTable
}

// add appends s to the arena.
func (a *userArchive) add(s string) strRef {
	r := strRef{off: uint32(len(a.arena)), n: uint32(len(s))}
	a.arena = append(a.arena, s...)
	return r
}

// intern returns s in the arena, stored once however often it is asked for.
func (a *userArchive) intern(s string) strRef {
	if r, ok := a.interned[s]; ok {
		return r
	}
	r := a.add(s)
	if a.interned == nil {
		a.interned = make(map[string]strRef)
	}
	a.interned[s] = r
	return r
}

// public returns the public view of m.
func (a *userArchive) public(m *archived) ArchivedMessage {
	return ArchivedMessage{StanzaID: a.arena.str(m.id), Peer: a.arena.str(m.peer), Incoming: m.incoming, Body: a.arena.str(m.body)}
}

// pos returns the position in msgs of the message with stanza-id id.
func (a *userArchive) pos(id string) (int, bool) {
	if a == nil {
		return 0, false
	}
	return a.index.find(a, id)
}

// has reports whether id is in the archive.
func (a *userArchive) has(id string) bool {
	_, ok := a.pos(id)
	return ok
}

// hasBytes is has for an id given as bytes.
func (a *userArchive) hasBytes(id []byte) bool {
	_, ok := a.index.findBytes(a, id)
	return ok
}

// appendMsg appends m, keeping timestamps in archive order.
func (a *userArchive) appendMsg(m archived) {
	if n := len(a.msgs); n > 0 && m.at < a.msgs[n-1].at {
		m.at = a.msgs[n-1].at
	}
	a.msgs = append(a.msgs, m)
	a.index.insert(a, len(a.msgs)-1)
}

// idTable maps stanza-ids to positions in an archive: open addressing over
// a power-of-two table of positions plus one (0 is an empty slot), hashing
// the ids in the arena. Expiry rebuilds it.
type idTable struct {
	seed  maphash.Seed
	slots []int32
	n     int
}

func (t *idTable) find(a *userArchive, id string) (int, bool) {
	if t.n == 0 {
		return 0, false
	}
	return t.probe(a, maphash.String(t.seed, id), func(b []byte) bool { return string(b) == id })
}

// findBytes is find for an id given as bytes.
func (t *idTable) findBytes(a *userArchive, id []byte) (int, bool) {
	if t.n == 0 {
		return 0, false
	}
	return t.probe(a, maphash.Bytes(t.seed, id), func(b []byte) bool { return bytes.Equal(b, id) })
}

func (t *idTable) probe(a *userArchive, h uint64, is func([]byte) bool) (int, bool) {
	mask := len(t.slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		p := int(t.slots[i]) - 1
		if p < 0 {
			return 0, false
		}
		if is(a.arena.bytes(a.msgs[p].id)) {
			return p, true
		}
	}
}

// insert indexes the message at position p (its id not in the table yet).
func (t *idTable) insert(a *userArchive, p int) {
	if 2*(t.n+1) > len(t.slots) {
		t.rebuild(a, max(64, 2*len(t.slots)), p)
		return
	}
	t.put(a, p)
}

func (t *idTable) put(a *userArchive, p int) {
	mask := len(t.slots) - 1
	i := int(maphash.Bytes(t.seed, a.arena.bytes(a.msgs[p].id))) & mask
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = int32(p + 1)
	t.n++
}

// rebuild indexes msgs[:upTo+1] in a table of size slots (a power of two).
func (t *idTable) rebuild(a *userArchive, size, upTo int) {
	if t.n == 0 && t.slots == nil {
		t.seed = maphash.MakeSeed()
	}
	for size < 2*(upTo+1) {
		size *= 2
	}
	t.slots, t.n = make([]int32, size), 0
	for p := 0; p <= upTo; p++ {
		t.put(a, p)
	}
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
		out[i] = a.public(&a.msgs[i])
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
	a.appendMsg(a.injected(strings.ToLower(user)+"@"+s.domain, peerBare, body, incoming, id, at))
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
	const idLen = 2 * opaqueIDBytes
	rnd := make([]byte, n*opaqueIDBytes)
	_, _ = rand.Read(rnd)

	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.userArchiveLocked(user)
	own := strings.ToLower(user) + "@" + s.domain
	m := a.injected(own, peerBare, "", incoming, "", time.Time{})
	a.msgs = growArchived(a.msgs, n)
	a.arena = growArena(a.arena, n*(4+idLen+len("message ")+8))
	for i := range n {
		// The message id is "msg-" and the stanza-id: one string in the
		// arena, the stanza-id its tail.
		off := len(a.arena)
		a.arena = append(a.arena, "msg-"...)
		a.arena = hex.AppendEncode(a.arena, rnd[i*opaqueIDBytes:(i+1)*opaqueIDBytes])
		m.msgID = strRef{uint32(off), uint32(4 + idLen)}
		m.id = strRef{uint32(off + 4), idLen}
		if id := a.arena.bytes(m.id); s.cfg.MAMNumericIDs || !isOpaque(id) || a.hasBytes(id) {
			a.arena = a.arena[:off]
			m.msgID = a.add("msg-" + s.newIDLocked(a))
			m.id = strRef{m.msgID.off + 4, m.msgID.n - 4}
		}
		off = len(a.arena)
		a.arena = append(a.arena, "message "...)
		a.arena = strconv.AppendInt(a.arena, int64(i+1), 10)
		m.body = strRef{uint32(off), uint32(len(a.arena) - off)}
		m.at = now - int64(n-1-i)*1e6
		a.appendMsg(m)
		if i == 0 {
			firstID = a.arena.str(m.id)
		}
	}
	return firstID, a.arena.str(a.msgs[len(a.msgs)-1].id)
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

// growArena makes room for n more bytes.
func growArena(a arena, n int) arena {
	if cap(a)-len(a) >= n {
		return a
	}
	out := make(arena, len(a), len(a)+n)
	copy(out, a)
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
	a.msgs = append([]archived(nil), a.msgs[p:]...)
	a.index.rebuild(a, 64, len(a.msgs)-1)
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
func (a *userArchive) injected(own, peer, body string, incoming bool, id string, at time.Time) archived {
	peer = strings.ToLower(peer)
	m := archived{
		id:       a.add(id),
		peer:     a.intern(peer),
		body:     a.add(body),
		incoming: incoming,
		at:       at.UnixMicro(),
		from:     a.intern(own),
		to:       a.intern(peer),
		typ:      a.intern("chat"),
		msgID:    a.add("msg-" + id),
	}
	if incoming {
		m.from, m.to = m.to, m.from
	}
	return m
}

// userArchiveLocked returns user's archive, creating it.
func (s *Server) userArchiveLocked(user string) *userArchive {
	if s.archives == nil {
		s.archives = make(map[string]*userArchive)
	}
	user = strings.ToLower(user)
	a := s.archives[user]
	if a == nil {
		a = &userArchive{}
		s.archives[user] = a
	}
	return a
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
func isOpaque[T string | []byte](id T) bool {
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
	now := time.Now().UnixMicro()
	s.mu.Lock()
	defer s.mu.Unlock()
	add := func(user, peer string, incoming bool) {
		a := s.userArchiveLocked(user)
		a.appendMsg(archived{
			id: a.add(stanzaID), peer: a.intern(strings.ToLower(peer)), body: a.add(body), incoming: incoming,
			at: now, from: a.intern(from), to: a.intern(to), typ: a.intern(typ), msgID: a.add(msgID),
		})
	}
	add(toUser, fromBare, true)
	if !strings.EqualFold(fromUser, toUser) {
		add(fromUser, toBare, false)
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
	latest = a.arena.str(a.msgs[len(a.msgs)-1].id)
	markers := s.markers[user]
	// Position of each marker in the archive; -1 when absent.
	pos := make(map[string]int)
	for peer, id := range markers {
		pos[peer] = -1
		if p, ok := a.pos(id); ok && a.arena.is(a.msgs[p].peer, peer) {
			pos[peer] = p
		}
	}
	idx := make(map[string]int)
	for i := range a.msgs {
		m := &a.msgs[i]
		if !m.incoming {
			continue
		}
		peer := a.arena.str(m.peer)
		if p, ok := pos[peer]; ok && i <= p {
			continue
		}
		j, ok := idx[peer]
		if !ok {
			j = len(unreads)
			idx[peer] = j
			unreads = append(unreads, unread{peer: peer, readID: markers[peer]})
		}
		unreads[j].count++
	}
	return latest, unreads
}
