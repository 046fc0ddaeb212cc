package xmpptest

import (
	"slices"
	"strings"
)

// A minimal per-user message archive (the data behind the XEP-0386 v0.3.0
// draft's <latest-id/> and <unreads/>, bind2draft.go) and per-contact read
// markers. There is no XEP-0313 query interface: tests read and seed the
// archive with Archive, InjectArchive and SetReadMarker. Only messages with
// a <body/> (not type error or groupchat) are archived, as chat states and
// receipts are not conversation. The server keeps no offline messages: a
// message to a user without a session is archived and otherwise dropped.

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

// Archive returns a copy of user's archive (user is a localpart), oldest
// first.
func (s *Server) Archive(user string) []ArchivedMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.archives[strings.ToLower(user)])
}

// InjectArchive appends a message to user's archive as if it had been
// exchanged with peerBare (a bare JID) and returns its new stanza-id.
func (s *Server) InjectArchive(user, peerBare, body string, incoming bool) (stanzaID string) {
	id := randomID(9)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.archiveLocked(user, ArchivedMessage{StanzaID: id, Peer: peerBare, Incoming: incoming, Body: body})
	return id
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

func (s *Server) archiveLocked(user string, m ArchivedMessage) {
	if s.archives == nil {
		s.archives = make(map[string][]ArchivedMessage)
	}
	user = strings.ToLower(user)
	m.Peer = strings.ToLower(m.Peer)
	s.archives[user] = append(s.archives[user], m)
}

// archiveRouted stores a routed message in the recipient's archive and, with
// direction out, in the sender's.
func (s *Server) archiveRouted(from, to, fromBare, toBare, stanzaID, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.archiveLocked(to, ArchivedMessage{StanzaID: stanzaID, Peer: fromBare, Incoming: true, Body: body})
	if !strings.EqualFold(from, to) {
		s.archiveLocked(from, ArchivedMessage{StanzaID: stanzaID, Peer: toBare, Body: body})
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
// not in the archive).
func (s *Server) archiveState(user string) (latest string, unreads []unread) {
	s.mu.Lock()
	defer s.mu.Unlock()
	user = strings.ToLower(user)
	arch := s.archives[user]
	if len(arch) > 0 {
		latest = arch[len(arch)-1].StanzaID
	}
	markers := s.markers[user]
	// Index of each marker in the archive; -1 when absent.
	pos := make(map[string]int)
	for peer, id := range markers {
		pos[peer] = -1
		for i, m := range arch {
			if m.StanzaID == id && m.Peer == peer {
				pos[peer] = i
			}
		}
	}
	idx := make(map[string]int)
	for i, m := range arch {
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
