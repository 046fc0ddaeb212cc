package cache

import (
	"errors"
	"slices"
	"sync"
	"testing"
)

const (
	romeo = "romeo@montague.example"
	nurse = "nurse@capulet.example"
)

// conversation returns n messages with peer, ids prefix-0 …, every third
// one outgoing (prefix-2, prefix-5, …).
func conversation(prefix, peer string, n int) []Message {
	msgs := archive(prefix, n)
	for i := range msgs {
		msgs[i].Peer = peer
		msgs[i].Direction = DirectionIn
		if i%3 == 2 {
			msgs[i].Direction = DirectionOut
		}
	}
	return msgs
}

func unreadsOf(t *testing.T, db *DB) map[string]PeerState {
	t.Helper()
	list, err := db.Unreads(t.Context(), account)
	if err != nil {
		t.Fatalf("Unreads: %v", err)
	}
	m := map[string]PeerState{}
	for i, s := range list {
		if i > 0 && list[i-1].Peer >= s.Peer {
			t.Errorf("Unreads not ordered by peer: %q then %q", list[i-1].Peer, s.Peer)
		}
		m[s.Peer] = s
	}
	return m
}

func mark(t *testing.T, db *DB, peer, id string, wantMoved bool) {
	t.Helper()
	moved, err := db.MarkDisplayed(t.Context(), account, peer, id)
	if err != nil {
		t.Fatalf("MarkDisplayed(%s): %v", id, err)
	}
	if moved != wantMoved {
		t.Errorf("MarkDisplayed(%s) moved = %v, want %v", id, moved, wantMoved)
	}
}

func TestMarkDisplayedForwardOnly(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	mustAppend(t, db, conversation("r", romeo, 10), "r-9", 10, 0)
	mustAppend(t, db, conversation("n", nurse, 3), "n-2", 3, 0)

	mark(t, db, romeo, "r-4", true)
	mark(t, db, "Romeo@Montague.example", "r-4", false) // same: not a move
	mark(t, db, romeo, "r-1", false)                    // older: ignored
	mark(t, db, romeo, "r-2", false)                    // older, outgoing: ignored
	if got := unreadsOf(t, db)[romeo].ReadID; got != "r-4" {
		t.Errorf("ReadID = %q, want r-4", got)
	}
	mark(t, db, romeo, "r-8", true) // an outgoing message is a marker too
	if got := unreadsOf(t, db)[romeo]; got.ReadID != "r-8" || got.Unread != 1 {
		t.Errorf("romeo = %+v, want read r-8, 1 unread", got)
	}

	for _, tc := range []struct{ peer, id string }{
		{romeo, "r-99"}, // unknown
		{romeo, "n-1"},  // another conversation's
		{nurse, "r-9"},
	} {
		moved, err := db.MarkDisplayed(ctx, account, tc.peer, tc.id)
		if !errors.Is(err, ErrUnknownMessage) || moved {
			t.Errorf("MarkDisplayed(%s, %s) = %v, %v; want ErrUnknownMessage", tc.peer, tc.id, moved, err)
		}
	}
	if moved, err := db.MarkDisplayed(ctx, "romeo@montague.example", nurse, "n-0"); !errors.Is(err, ErrUnknownMessage) || moved {
		t.Errorf("MarkDisplayed on another account = %v, %v; want ErrUnknownMessage", moved, err)
	}
	if got := unreadsOf(t, db)[romeo].ReadID; got != "r-8" {
		t.Errorf("ReadID = %q after refused markers, want r-8", got)
	}
}

// TestMarkDisplayedConcurrent has several handles mark every message in a
// shuffled order; the marker ends on the newest, whatever the interleaving.
func TestMarkDisplayedConcurrent(t *testing.T) {
	_, path := openTemp(t)
	msgs := conversation("m", romeo, 60)
	first, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	mustAppend(t, first, msgs, "m-59", 60, 0)

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		db, err := Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		wg.Go(func() {
			// Each worker walks the ids in its own order.
			ids := stanzaIDs(msgs)
			for i := range ids {
				j := (i*7 + w*13) % len(ids)
				ids[i], ids[j] = ids[j], ids[i]
			}
			for _, id := range ids {
				if _, err := db.MarkDisplayed(t.Context(), account, romeo, id); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := unreadsOf(t, first)[romeo]; got.ReadID != "m-59" || got.Unread != 0 {
		t.Errorf("romeo = %+v, want read m-59, 0 unread", got)
	}
}

func TestUnreads(t *testing.T) {
	// Each conversation r-0 … r-9; incoming all but r-2, r-5, r-8.
	type step func(t *testing.T, db *DB)
	setServer := func(readID string, count int) step {
		return func(t *testing.T, db *DB) {
			if err := db.SetServerUnread(t.Context(), account, romeo, readID, count); err != nil {
				t.Fatal(err)
			}
		}
	}
	markAt := func(id string) step {
		return func(t *testing.T, db *DB) { mark(t, db, romeo, id, true) }
	}
	appendMore := func(n int) step {
		return func(t *testing.T, db *DB) {
			more := conversation("late", romeo, n)
			for i := range more {
				more[i].Direction = DirectionIn
			}
			mustAppend(t, db, more, "", n, 0)
		}
	}
	for _, tc := range []struct {
		name  string
		steps []step
		want  PeerState
	}{
		{"nothing read", nil,
			PeerState{Peer: romeo, Unread: 7}},
		{"local marker", []step{markAt("r-3")},
			PeerState{Peer: romeo, ReadID: "r-3", Unread: 4}},
		{"server only", []step{setServer("r-6", 2)},
			PeerState{Peer: romeo, ReadID: "r-6", Unread: 2, ServerReported: true}},
		{"server count wins even if it disagrees", []step{setServer("r-6", 40)},
			PeerState{Peer: romeo, ReadID: "r-6", Unread: 40, ServerReported: true}},
		{"server newer than local", []step{markAt("r-3"), setServer("r-6", 2)},
			PeerState{Peer: romeo, ReadID: "r-6", Unread: 2, ServerReported: true}},
		{"server equal to local", []step{markAt("r-6"), setServer("r-6", 2)},
			PeerState{Peer: romeo, ReadID: "r-6", Unread: 2, ServerReported: true}},
		{"server older than local", []step{markAt("r-7"), setServer("r-3", 5)},
			PeerState{Peer: romeo, ReadID: "r-7", Unread: 1}},
		{"local moves past the server after the report", []step{setServer("r-3", 5), markAt("r-7")},
			PeerState{Peer: romeo, ReadID: "r-7", Unread: 1}},
		{"server read-id unknown, no local marker", []step{setServer("expired", 3)},
			PeerState{Peer: romeo, ReadID: "expired", Unread: 3, ServerReported: true}},
		{"server read-id unknown, local marker", []step{markAt("r-3"), setServer("expired", 3)},
			PeerState{Peer: romeo, ReadID: "r-3", Unread: 4}},
		{"server count without read-id", []step{setServer("", 3)},
			PeerState{Peer: romeo, Unread: 3, ServerReported: true}},
		{"messages after the report add to its count", []step{setServer("r-6", 2), appendMore(3)},
			PeerState{Peer: romeo, ReadID: "r-6", Unread: 5, ServerReported: true}},
		{"a later report replaces the earlier", []step{setServer("r-3", 5), appendMore(3), setServer("late-2", 0)},
			PeerState{Peer: romeo, ReadID: "late-2", Unread: 0, ServerReported: true}},
		{"local count after the marker includes later messages", []step{markAt("r-9"), appendMore(2)},
			PeerState{Peer: romeo, ReadID: "r-9", Unread: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := openTemp(t)
			mustAppend(t, db, conversation("r", romeo, 10), "r-9", 10, 0)
			for _, s := range tc.steps {
				s(t, db)
			}
			if got := unreadsOf(t, db)[romeo]; got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestUnreadsPeers(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	if list, err := db.Unreads(ctx, account); err != nil || len(list) != 0 {
		t.Errorf("Unreads of a fresh store = %v, %v", list, err)
	}
	mustAppend(t, db, conversation("r", romeo, 4), "", 4, 0)
	mustAppend(t, db, conversation("n", nurse, 2), "", 2, 0)
	// A conversation the server knows but this store has no message of.
	if err := db.SetServerUnread(ctx, account, "Tybalt@Capulet.example", "t-1", 1); err != nil {
		t.Fatal(err)
	}
	// Another account's state stays its own.
	if err := db.SetServerUnread(ctx, "romeo@montague.example", "juliet@capulet.example", "x", 9); err != nil {
		t.Fatal(err)
	}
	list, err := db.Unreads(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	want := []PeerState{
		{Peer: nurse, Unread: 2},
		{Peer: romeo, Unread: 3},
		{Peer: "tybalt@capulet.example", ReadID: "t-1", Unread: 1, ServerReported: true},
	}
	if !slices.Equal(list, want) {
		t.Errorf("Unreads = %+v\nwant %+v", list, want)
	}
	for _, bad := range []struct {
		peer  string
		count int
	}{{"", 1}, {romeo, -1}} {
		if err := db.SetServerUnread(ctx, account, bad.peer, "x", bad.count); err == nil {
			t.Errorf("SetServerUnread(%q, %d) succeeded", bad.peer, bad.count)
		}
	}
}
