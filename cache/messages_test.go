package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

const account = "juliet@capulet.example"

// archive returns n messages as an archive would page them: in order, with
// ids prefix-0 … prefix-(n-1), alternating between two peers and mostly
// incoming.
func archive(prefix string, n int) []Message {
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	msgs := make([]Message, n)
	for i := range msgs {
		id := fmt.Sprintf("%s-%d", prefix, i)
		peer, dir := "romeo@montague.example", DirectionIn
		if i%2 == 1 {
			peer = "nurse@capulet.example"
		}
		if i%5 == 4 {
			dir = DirectionOut
		}
		msgs[i] = Message{
			StanzaID:  id,
			OriginID:  "origin-" + id,
			Peer:      peer,
			Direction: dir,
			Time:      start.Add(time.Duration(i) * time.Minute),
			Body:      "body " + id,
			Raw:       []byte("<message id='" + id + "'/>"),
		}
	}
	return msgs
}

// stanzaIDs returns the stanza-ids of msgs, in order.
func stanzaIDs[M Message | StoredMessage](msgs []M) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		switch m := any(m).(type) {
		case Message:
			ids[i] = m.StanzaID
		case StoredMessage:
			ids[i] = m.StanzaID
		}
	}
	return ids
}

// mustAppend appends msgs with cursor and checks the counts.
func mustAppend(t *testing.T, db *DB, msgs []Message, cursor string, wantInserted, wantDup int) {
	t.Helper()
	n, dup, err := db.AppendMessages(t.Context(), account, msgs, cursor)
	if err != nil {
		t.Fatalf("AppendMessages: %v", err)
	}
	if n != wantInserted || dup != wantDup {
		t.Fatalf("AppendMessages = %d inserted, %d duplicates; want %d, %d", n, dup, wantInserted, wantDup)
	}
}

// stored returns every message of account in archive order, checking that
// Seq increases.
func stored(t *testing.T, db *DB) []StoredMessage {
	t.Helper()
	list, err := db.Messages(t.Context(), account, MessageQuery{})
	if err != nil {
		t.Fatalf("Messages: %v", err)
	}
	for i := 1; i < len(list); i++ {
		if list[i].Seq <= list[i-1].Seq {
			t.Fatalf("Seq not increasing: %d then %d", list[i-1].Seq, list[i].Seq)
		}
	}
	return list
}

func cursorOf(t *testing.T, db *DB) string {
	t.Helper()
	c, err := db.Cursor(t.Context(), account)
	if err != nil {
		t.Fatalf("Cursor: %v", err)
	}
	return c
}

func TestDirection(t *testing.T) {
	for _, tc := range []struct {
		d    Direction
		text string
	}{{DirectionIn, "in"}, {DirectionOut, "out"}} {
		if got := tc.d.String(); got != tc.text {
			t.Errorf("%d.String() = %q, want %q", tc.d, got, tc.text)
		}
		b, err := tc.d.MarshalText()
		if err != nil || string(b) != tc.text {
			t.Errorf("%v.MarshalText() = %q, %v", tc.d, b, err)
		}
		var back Direction
		if err := back.UnmarshalText(b); err != nil || back != tc.d {
			t.Errorf("UnmarshalText(%q) = %v, %v", b, back, err)
		}
	}
	if got := Direction(0).String(); got != "Direction(0)" {
		t.Errorf("Direction(0).String() = %q", got)
	}
	if _, err := Direction(0).MarshalText(); err == nil {
		t.Error("Direction(0).MarshalText succeeded")
	}
	var d Direction
	if err := d.UnmarshalText([]byte("sideways")); err == nil {
		t.Error(`UnmarshalText("sideways") succeeded`)
	}
	b, err := json.Marshal(map[string]Direction{"dir": DirectionOut})
	if err != nil || string(b) != `{"dir":"out"}` {
		t.Errorf("JSON = %s, %v", b, err)
	}
}

func TestAppendMessagesIdempotent(t *testing.T) {
	db, _ := openTemp(t)
	msgs := archive("a", 30)
	mustAppend(t, db, msgs, "a-29", 30, 0)
	mustAppend(t, db, msgs, "a-29", 0, 30)
	// Overlapping pages, and a repeat inside one batch.
	more := archive("a", 40)[25:]
	more = append(more, more[len(more)-1])
	mustAppend(t, db, more, "a-39", 10, 6)
	if got, want := stanzaIDs(stored(t, db)), stanzaIDs(archive("a", 40)); !slices.Equal(got, want) {
		t.Errorf("stored %v\nwant   %v", got, want)
	}
	if n, err := db.CountMessages(t.Context(), account); err != nil || n != 40 {
		t.Errorf("CountMessages = %d, %v; want 40", n, err)
	}
	// The account key is a case-insensitive bare JID.
	if n, err := db.CountMessages(t.Context(), " Juliet@Capulet.Example "); err != nil || n != 40 {
		t.Errorf("CountMessages(other case) = %d, %v; want 40", n, err)
	}
	for _, tc := range []struct {
		id   string
		want bool
	}{{"a-0", true}, {"a-39", true}, {"a-40", false}, {"A-0", false}} {
		if got, err := db.HasMessage(t.Context(), "JULIET@capulet.example", tc.id); err != nil || got != tc.want {
			t.Errorf("HasMessage(%q) = %v, %v; want %v", tc.id, got, err, tc.want)
		}
	}
	// Another account is another store.
	if ok, err := db.HasMessage(t.Context(), "romeo@montague.example", "a-0"); err != nil || ok {
		t.Errorf("HasMessage(other account) = %v, %v", ok, err)
	}
	n, dup, err := db.AppendMessages(t.Context(), "romeo@montague.example", msgs[:5], "")
	if err != nil || n != 5 || dup != 0 {
		t.Errorf("AppendMessages(other account, same ids) = %d, %d, %v; want 5, 0", n, dup, err)
	}
}

// TestAppendMessagesDedupChunks: the stored stanza-ids of a batch are looked
// up heldChunk at a time; a batch of several chunks whose old messages are
// spread over all of them, and whose new ones repeat, stores each new one
// once, in batch order, after the old ones; another account's identical ids
// never count as held.
func TestAppendMessagesDedupChunks(t *testing.T) {
	db, _ := openTemp(t)
	old := archive("a", 3*heldChunk)
	mustAppend(t, db, old, old[len(old)-1].StanzaID, len(old), 0)
	if n, dup, err := db.AppendMessages(t.Context(), "romeo@montague.example", old, ""); err != nil || n != len(old) || dup != 0 {
		t.Fatalf("other account, same ids: %d, %d, %v; want %d, 0", n, dup, err, len(old))
	}
	fresh := archive("b", len(old)/15) // one every 15 old ones
	// Held by another account only: new to this one.
	if n, _, err := db.AppendMessages(t.Context(), "romeo@montague.example", fresh[:10], ""); err != nil || n != 10 {
		t.Fatalf("other account, new ids: %d, %v; want 10", n, err)
	}
	var batch []Message
	for i := range old {
		batch = append(batch, old[(i*7)%len(old)]) // every old one, spread out
		if i%15 == 0 {
			batch = append(batch, fresh[i/15])
		}
		if i%40 == 1 {
			batch = append(batch, fresh[i/40]) // a repeat, later in the batch
		}
	}
	mustAppend(t, db, batch, "", len(fresh), len(batch)-len(fresh))
	want := append(stanzaIDs(old), stanzaIDs(fresh)...)
	if got := stanzaIDs(stored(t, db)); !slices.Equal(got, want) {
		t.Errorf("stored %d ids, want %d: old then new, each once", len(got), len(want))
	}
}

// TestAppendMessagesHashCollision: two stanza-ids with the same sid_hash are
// two messages; the lookup compares the ids, not only their hashes.
func TestAppendMessagesHashCollision(t *testing.T) {
	db, _ := openTemp(t)
	msgs := archive("a", 2)
	// A stored row whose sid_hash is that of msgs[1], with another id.
	if _, err := db.sql.ExecContext(t.Context(), `INSERT INTO messages (account, stanza_id, sid_hash, origin_id, peer, dir, ts, body, raw)
VALUES (?, 'collider', ?, '', 'romeo@montague.example', 1, 0, '', x'')`, account, sidHash(msgs[1].StanzaID)); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, db, msgs, "", 2, 0)
	mustAppend(t, db, msgs, "", 0, 2)
	if got, want := stanzaIDs(stored(t, db)), []string{"collider", "a-0", "a-1"}; !slices.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
}

func TestAppendMessagesOrder(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	all := archive("o", 100)
	for lo := 0; lo < len(all); lo += 7 {
		batch := all[lo:min(lo+7, len(all))]
		mustAppend(t, db, batch, batch[len(batch)-1].StanzaID, len(batch), 0)
	}
	list := stored(t, db)
	if got, want := stanzaIDs(list), stanzaIDs(all); !slices.Equal(got, want) {
		t.Fatalf("stored %v\nwant   %v", got, want)
	}
	if c := cursorOf(t, db); c != "o-99" {
		t.Errorf("Cursor = %q, want o-99", c)
	}

	// Paging through one conversation.
	var got []string
	after := int64(0)
	for {
		page, err := db.Messages(ctx, account, MessageQuery{Peer: "Romeo@Montague.example", AfterSeq: after, Limit: 8})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 8 {
			t.Fatalf("page of %d, limit 8", len(page))
		}
		for _, m := range page {
			if m.Peer != "romeo@montague.example" {
				t.Fatalf("peer %q in romeo's conversation", m.Peer)
			}
			got = append(got, m.StanzaID)
		}
		after = page[len(page)-1].Seq
	}
	var want []string
	for _, m := range all {
		if m.Peer == "romeo@montague.example" {
			want = append(want, m.StanzaID)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("romeo's conversation %v\nwant %v", got, want)
	}

	// AfterSeq over the whole account.
	tail, err := db.Messages(ctx, account, MessageQuery{AfterSeq: list[89].Seq})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := stanzaIDs(tail), stanzaIDs(all[90:]); !slices.Equal(got, want) {
		t.Errorf("after seq of o-89: %v", got)
	}
}

func TestMessageRoundTrip(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	raw := []byte("<message xmlns='jabber:client'><body>\x00\xff\xfe é 💬</body></message>")
	want := []Message{
		{
			StanzaID:  "2025-01-01-abc",
			OriginID:  "origin 1",
			Peer:      "Romeo@Montague.example",
			Direction: DirectionOut,
			Time:      time.Date(2025, 1, 1, 10, 11, 12, 345678000, time.FixedZone("CET", 3600)),
			Body:      "Wherefore art thou?\n💬",
			Raw:       raw,
		},
		{StanzaID: "bare", Peer: "nurse@capulet.example", Direction: DirectionIn}, // zero time, nil raw
	}
	mustAppend(t, db, want, "", 2, 0)
	got := stored(t, db)
	if len(got) != 2 {
		t.Fatalf("%d messages", len(got))
	}
	m := got[0].Message
	if !bytes.Equal(m.Raw, raw) {
		t.Errorf("Raw = %q, want %q", m.Raw, raw)
	}
	if !m.Time.Equal(want[0].Time) || m.Time.Location() != time.UTC {
		t.Errorf("Time = %v, want %v in UTC", m.Time, want[0].Time)
	}
	if m.StanzaID != want[0].StanzaID || m.OriginID != want[0].OriginID || m.Peer != "romeo@montague.example" ||
		m.Direction != DirectionOut || m.Body != want[0].Body {
		t.Errorf("got %+v", m)
	}
	if m := got[1].Message; !m.Time.IsZero() || m.Raw == nil || len(m.Raw) != 0 || m.OriginID != "" {
		t.Errorf("zero fields came back as %+v", m)
	}
	// Below a microsecond is dropped.
	mustAppend(t, db, []Message{{StanzaID: "ns", Peer: "p@x", Direction: DirectionIn,
		Time: time.Date(2025, 1, 1, 0, 0, 0, 1999, time.UTC)}}, "", 1, 0)
	last, err := db.Messages(ctx, account, MessageQuery{AfterSeq: got[1].Seq})
	if err != nil || len(last) != 1 || last[0].Time.Nanosecond() != 1000 {
		t.Errorf("nanosecond time read back as %v, %v", last, err)
	}
}

func TestAppendMessagesRefusesBadMessages(t *testing.T) {
	db, _ := openTemp(t)
	mustAppend(t, db, archive("ok", 3), "ok-2", 3, 0)
	for name, bad := range map[string]Message{
		"empty stanza-id":   {Peer: "p@x", Direction: DirectionIn},
		"no direction":      {StanzaID: "x", Peer: "p@x"},
		"unknown direction": {StanzaID: "x", Peer: "p@x", Direction: 3},
	} {
		batch := append(archive("new", 5), bad)
		if n, dup, err := db.AppendMessages(t.Context(), account, batch, "new-4"); err == nil {
			t.Errorf("%s: AppendMessages = %d, %d, nil; want an error", name, n, dup)
		}
	}
	if _, _, err := db.AppendMessages(t.Context(), " ", archive("new", 1), ""); err == nil {
		t.Error("AppendMessages with an empty account succeeded")
	}
	if got := stanzaIDs(stored(t, db)); !slices.Equal(got, []string{"ok-0", "ok-1", "ok-2"}) {
		t.Errorf("stored after refused batches: %v", got)
	}
	if c := cursorOf(t, db); c != "ok-2" {
		t.Errorf("Cursor = %q after refused batches, want ok-2", c)
	}
	// The schema refuses what the Go checks refuse, too.
	for _, q := range []string{
		`INSERT INTO messages (account, stanza_id, origin_id, peer, dir, ts, body, raw) VALUES ('a', '', '', 'p', 1, 0, '', x'')`,
		`INSERT INTO messages (account, stanza_id, origin_id, peer, dir, ts, body, raw) VALUES ('a', 'x', '', 'p', 0, 0, '', x'')`,
		`INSERT INTO messages (account, stanza_id, origin_id, peer, dir, ts, body, raw) VALUES ('', 'x', '', 'p', 1, 0, '', x'')`,
	} {
		if _, err := db.sql.ExecContext(t.Context(), q); err == nil {
			t.Errorf("schema accepted %s", q)
		}
	}
}

// TestAppendMessagesAtomic fails a batch half-way through, in SQLite, and
// checks that neither its messages nor the cursor move.
func TestAppendMessagesAtomic(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	mustAppend(t, db, archive("a", 10), "a-9", 10, 0)
	// A failure only SQLite sees: a trigger refusing one row.
	if _, err := db.sql.ExecContext(ctx, `
CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.stanza_id = 'b-150'
BEGIN SELECT RAISE(ABORT, 'refused'); END`); err != nil {
		t.Fatal(err)
	}
	batch := archive("b", 250)
	if _, _, err := db.AppendMessages(ctx, account, batch, "b-249"); err == nil {
		t.Fatal("AppendMessages succeeded despite the trigger")
	}
	check := func(when string) {
		t.Helper()
		if got := stanzaIDs(stored(t, db)); !slices.Equal(got, stanzaIDs(archive("a", 10))) {
			t.Errorf("%s: stored %v", when, got)
		}
		if c := cursorOf(t, db); c != "a-9" {
			t.Errorf("%s: Cursor = %q, want a-9", when, c)
		}
	}
	check("after the failed batch")

	// A cancelled context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := db.AppendMessages(cctx, account, archive("c", 5), "c-4"); !errors.Is(err, context.Canceled) {
		t.Errorf("AppendMessages with a cancelled context: %v, want context.Canceled", err)
	}
	check("after the cancelled batch")

	if _, err := db.sql.ExecContext(ctx, `DROP TRIGGER refuse`); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, db, batch, "b-249", 250, 0)
	if c := cursorOf(t, db); c != "b-249" {
		t.Errorf("Cursor = %q, want b-249", c)
	}
}

func TestCursor(t *testing.T) {
	db, _ := openTemp(t)
	if c := cursorOf(t, db); c != "" {
		t.Errorf("Cursor of a fresh store = %q", c)
	}
	msgs := archive("c", 10)
	mustAppend(t, db, msgs[:5], "c-4", 5, 0)
	mustAppend(t, db, msgs[5:], "", 5, 0) // no cursor: unchanged
	if c := cursorOf(t, db); c != "c-4" {
		t.Errorf("Cursor = %q after a batch without cursor, want c-4", c)
	}
	mustAppend(t, db, nil, "c-9", 0, 0) // the cursor alone
	if c := cursorOf(t, db); c != "c-9" {
		t.Errorf("Cursor = %q, want c-9", c)
	}
	// A replay of older pages (another process behind this one) does not
	// move it back.
	mustAppend(t, db, msgs[2:4], "c-3", 0, 2)
	if c := cursorOf(t, db); c != "c-9" {
		t.Errorf("Cursor = %q after replaying older pages, want c-9", c)
	}
	// An id not stored (the server's latest-id of an empty page, a reset
	// archive) is taken as given, and so is moving on from it.
	mustAppend(t, db, nil, "server-latest", 0, 0)
	if c := cursorOf(t, db); c != "server-latest" {
		t.Errorf("Cursor = %q, want server-latest", c)
	}
	mustAppend(t, db, nil, "c-0", 0, 0)
	if c := cursorOf(t, db); c != "c-0" {
		t.Errorf("Cursor = %q, want c-0", c)
	}
	// Per account, case-insensitively.
	if c, err := db.Cursor(t.Context(), "JULIET@capulet.example"); err != nil || c != "c-0" {
		t.Errorf("Cursor(other case) = %q, %v", c, err)
	}
	if c, err := db.Cursor(t.Context(), "romeo@montague.example"); err != nil || c != "" {
		t.Errorf("Cursor(other account) = %q, %v", c, err)
	}
}

// TestConcurrentAppend has several handles on one file (as separate
// processes would) sync the same archive at once, each from the start and
// with its own page size.
func TestConcurrentAppend(t *testing.T) {
	_, path := openTemp(t)
	all := archive("x", 600)
	pageSizes := []int{1, 7, 50, 250}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		inserted int
	)
	errs := make(chan error, len(pageSizes))
	for _, size := range pageSizes {
		db, err := Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		wg.Go(func() {
			for lo := 0; lo < len(all); lo += size {
				page := all[lo:min(lo+size, len(all))]
				n, dup, err := db.AppendMessages(t.Context(), account, page, page[len(page)-1].StanzaID)
				if err != nil {
					errs <- err
					return
				}
				if n+dup != len(page) {
					errs <- fmt.Errorf("page of %d: %d inserted + %d duplicates", len(page), n, dup)
					return
				}
				mu.Lock()
				inserted += n
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if inserted != len(all) {
		t.Errorf("%d messages inserted in all, want %d", inserted, len(all))
	}
	if got := stanzaIDs(stored(t, db)); !slices.Equal(got, stanzaIDs(all)) {
		t.Errorf("stored (%d) not the archive in order (%d)", len(got), len(all))
	}
	if c := cursorOf(t, db); c != "x-599" {
		t.Errorf("Cursor = %q, want x-599", c)
	}
}

func TestGaps(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	if gaps, err := db.Gaps(ctx, account); err != nil || len(gaps) != 0 {
		t.Errorf("Gaps of a fresh store = %v, %v", gaps, err)
	}
	at := time.Date(2025, 5, 6, 7, 8, 9, 123456000, time.FixedZone("X", -7200))
	want := []Gap{
		{AfterID: "old-1", BeforeID: "new-1", Detected: at.UTC()},
		{AfterID: "old-2", BeforeID: "new-2", Detected: at.Add(time.Hour).UTC()},
	}
	for _, g := range []Gap{{AfterID: "old-1", BeforeID: "new-1", Detected: at}, want[1], want[0]} {
		if err := db.AddGap(ctx, "Juliet@Capulet.example", g); err != nil {
			t.Fatal(err)
		}
	}
	gaps, err := db.Gaps(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gaps, want) {
		t.Errorf("Gaps = %v\nwant %v", gaps, want)
	}
	before := time.Now().Add(-time.Second)
	if err := db.AddGap(ctx, account, Gap{AfterID: "a", BeforeID: "b"}); err != nil {
		t.Fatal(err)
	}
	gaps, _ = db.Gaps(ctx, account)
	if len(gaps) != 3 || gaps[2].Detected.Before(before) || gaps[2].Detected.Location() != time.UTC {
		t.Errorf("zero Detected stored as %v", gaps)
	}
	for _, g := range []Gap{{AfterID: "a"}, {BeforeID: "b"}} {
		if err := db.AddGap(ctx, account, g); err == nil {
			t.Errorf("AddGap(%+v) succeeded", g)
		}
	}
	if gaps, err := db.Gaps(ctx, "romeo@montague.example"); err != nil || len(gaps) != 0 {
		t.Errorf("Gaps(other account) = %v, %v", gaps, err)
	}
}

func TestMessagesClosed(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "cache.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	ctx := t.Context()
	_, _, err1 := db.AppendMessages(ctx, account, archive("a", 1), "a-0")
	_, _, err2 := db.AppendMessages(ctx, account, nil, "")
	_, err3 := db.Cursor(ctx, account)
	_, err4 := db.HasMessage(ctx, account, "a-0")
	_, err5 := db.Messages(ctx, account, MessageQuery{})
	_, err6 := db.CountMessages(ctx, account)
	err7 := db.AddGap(ctx, account, Gap{AfterID: "a", BeforeID: "b"})
	_, err8 := db.Gaps(ctx, account)
	_, err9 := db.MarkDisplayed(ctx, account, "p@x", "a-0")
	err10 := db.SetServerUnread(ctx, account, "p@x", "", 1)
	_, err11 := db.Unreads(ctx, account)
	for i, err := range []error{err1, err2, err3, err4, err5, err6, err7, err8, err9, err10, err11} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("call %d after Close: %v, want ErrClosed", i+1, err)
		}
	}
}

func TestScramKeys(t *testing.T) {
	ctx := t.Context()
	db, _ := openTemp(t)
	k := ScramKeys{Mechanism: "SCRAM-SHA-256", Salt: []byte("salt"), Iterations: 4096, ClientKey: []byte{1, 2}, ServerKey: []byte{3, 4}}
	if _, ok, err := db.ScramKeysFor(ctx, "a@b", k.Mechanism, k.Salt, 4096); ok || err != nil {
		t.Fatalf("empty store: ok=%v err=%v", ok, err)
	}
	if err := db.PutScramKeys(ctx, "A@b", k); err != nil {
		t.Fatal(err)
	}
	got, ok, err := db.ScramKeysFor(ctx, "a@b", k.Mechanism, k.Salt, 4096)
	if err != nil || !ok || string(got.ClientKey) != "\x01\x02" || string(got.ServerKey) != "\x03\x04" {
		t.Fatalf("got %+v %v %v", got, ok, err)
	}
	if _, ok, _ := db.ScramKeysFor(ctx, "a@b", k.Mechanism, k.Salt, 10000); ok {
		t.Error("keys returned for another iteration count")
	}
	if _, ok, _ := db.ScramKeysFor(ctx, "a@b", k.Mechanism, []byte("pepper"), 4096); ok {
		t.Error("keys returned for another salt")
	}
	if err := db.ForgetScramKeys(ctx, "a@b"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.ScramKeysFor(ctx, "a@b", k.Mechanism, k.Salt, 4096); ok {
		t.Error("keys survived ForgetScramKeys")
	}
}
