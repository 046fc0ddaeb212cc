package xmpptest

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestArchiveIndex: every id of a large archive is found at its position,
// ids that are not there are not found, also after expiry (which rebuilds
// the index) and after growth past several table sizes.
func TestArchiveIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var a userArchive
	var ids []string
	check := func(when string) {
		t.Helper()
		for i, id := range ids {
			if p, ok := a.pos(id); !ok || p != i {
				t.Fatalf("%s: pos(%q) = %d, %v; want %d", when, id, p, ok, i)
			}
			if p, ok := a.index.findBytes(&a, []byte(id)); !ok || p != i {
				t.Fatalf("%s: findBytes(%q) = %d, %v; want %d", when, id, p, ok, i)
			}
		}
		for range 1000 {
			if id := fmt.Sprintf("absent-%d", r.Int()); a.has(id) {
				t.Fatalf("%s: %q found", when, id)
			}
		}
	}
	check("empty")
	for n := range 20_000 {
		id := fmt.Sprintf("%x", r.Uint64())
		if n%7 == 0 {
			id = fmt.Sprint(n) // short, numeric ids too
		}
		if a.has(id) {
			continue
		}
		a.appendMsg(archived{id: a.add(id), body: a.add("b"), at: int64(n)})
		ids = append(ids, id)
		if n == 10 || n == 1000 {
			check(fmt.Sprint("after ", n))
		}
	}
	check("full")
	// Expire the oldest third, as ExpireArchiveBefore does.
	cut := len(ids) / 3
	a.msgs = append([]archived(nil), a.msgs[cut:]...)
	a.index.rebuild(&a, 64, len(a.msgs)-1)
	for _, id := range ids[:cut] {
		if a.has(id) {
			t.Fatalf("expired %q still found", id)
		}
	}
	ids = ids[cut:]
	check("expired")
}

// TestArchiveStrings: what goes in comes out, through the public view,
// routed and injected messages alike.
func TestArchiveStrings(t *testing.T) {
	s := NewServer(Config{Users: map[string]string{"alice": "pw", "bob": "pw"}})
	defer s.Close()
	id1 := s.InjectArchive("alice", "Bob@Localhost", "hello & <you>", true)
	s.archiveRouted("alice", "bob", "alice@localhost", "bob@localhost", "alice@localhost/a", "bob@localhost/b", "chat", "m2", "sid2", "hi bob")
	first, last := s.InjectArchiveBulk("alice", "carol@localhost", 3, false)
	got := s.Archive("alice")
	want := []ArchivedMessage{
		{StanzaID: id1, Peer: "bob@localhost", Incoming: true, Body: "hello & <you>"},
		{StanzaID: "sid2", Peer: "bob@localhost", Incoming: false, Body: "hi bob"},
		{StanzaID: first, Peer: "carol@localhost", Body: "message 1"},
		{Peer: "carol@localhost", Body: "message 2"},
		{StanzaID: last, Peer: "carol@localhost", Body: "message 3"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if want[i].StanzaID == "" {
			want[i].StanzaID = got[i].StanzaID
		}
		if got[i] != want[i] {
			t.Errorf("message %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if b := s.Archive("bob"); len(b) != 1 || b[0] != (ArchivedMessage{StanzaID: "sid2", Peer: "alice@localhost", Incoming: true, Body: "hi bob"}) {
		t.Errorf("bob's archive %+v", b)
	}
	if _, ok := s.ArchiveTime("alice", last); !ok {
		t.Error("ArchiveTime: last not found")
	}
}
