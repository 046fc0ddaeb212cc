package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
	"github.com/pipebind/pipebind/mamsync"
)

// storeIDs returns the stanza-ids the store holds for account, in order.
func storeIDs(t *testing.T, db *cache.DB, account string) []string {
	t.Helper()
	msgs, err := db.Messages(context.Background(), account, cache.MessageQuery{})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.StanzaID
	}
	return ids
}

func archiveIDs(s *xmpptest.Server, user string) []string {
	var ids []string
	for _, m := range s.Archive(user) {
		ids = append(ids, m.StanzaID)
	}
	return ids
}

func equalIDs(a, b []string) error {
	if len(a) != len(b) {
		return fmt.Errorf("store has %d messages, archive %d", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			return fmt.Errorf("message %d: store %q, archive %q", i, a[i], b[i])
		}
	}
	return nil
}

// deliveries counts OnMessage calls per stanza-id.
type deliveries struct {
	mu     sync.Mutex
	ids    map[string]int
	n      int
	notify chan struct{}
}

func newDeliveries() *deliveries {
	return &deliveries{ids: map[string]int{}, notify: make(chan struct{}, 1)}
}

func (d *deliveries) on(m cache.StoredMessage) {
	d.mu.Lock()
	d.ids[m.StanzaID]++
	d.n++
	d.mu.Unlock()
	select {
	case d.notify <- struct{}{}:
	default:
	}
}

// waitFor waits, on delivery events, until n messages were delivered.
func (d *deliveries) waitFor(t *testing.T, n int, ended <-chan struct{}) {
	t.Helper()
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	for {
		d.mu.Lock()
		got := d.n
		d.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-d.notify:
		case <-ended:
			t.Fatalf("the session ended after %d of %d deliveries", got, n)
		case <-timer.C:
			t.Fatalf("%d of %d deliveries", got, n)
		}
	}
}

func (d *deliveries) check(t *testing.T, want []string) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n != len(want) {
		t.Errorf("%d deliveries, want %d", d.n, len(want))
	}
	for _, id := range want {
		if d.ids[id] != 1 {
			t.Errorf("message %s delivered %d times", id, d.ids[id])
		}
	}
}

func syncReport(t *testing.T, c *client.Client) mamsync.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := c.SyncReport(ctx)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return rep
}

// TestSyncCatchUp: the store becomes the archive, exactly, in order, over
// several pages; a level store sends no query; new messages are fetched
// from the cursor; every message reaches OnMessage once.
func TestSyncCatchUp(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  xmpptest.Config
	}{
		{"sasl2 metadata", xmpptest.Config{}},
		{"sasl2 no metadata (ejabberd-like)", xmpptest.Config{MAMNoMetadata: true, MAMNumericIDs: true, MAMPageMax: 250}},
		{"bind2 draft latest-id", xmpptest.Config{Bind2Draft: true, NoSASL2: true, MAMNoCount: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, tc.cfg)
			s.InjectArchiveBulk("alice", "bob@localhost", 1234, true)
			db := openCache(t)
			got := newDeliveries()
			cfg := testConfig(t, s, "alice", db)
			cfg.OnMessage = got.on
			c, err := client.Dial(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			rep := syncReport(t, c)
			c.Close()
			if err := equalIDs(storeIDs(t, db, "alice@localhost"), archiveIDs(s, "alice")); err != nil {
				t.Fatal(err)
			}
			if rep.Stored != 1234 || rep.Duplicates != 0 || !rep.Queried || rep.Pages < 1234/250 {
				t.Errorf("first sync: %+v", rep)
			}
			got.check(t, archiveIDs(s, "alice"))

			// Level: nothing fetched. The warm login asks the archive's
			// first page in its own write (issue 15: no metadata query, the
			// first page says the store is level), with or without
			// metadata on the server: one empty page.
			c, err = client.Dial(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			rep = syncReport(t, c)
			c.Close()
			if rep.Stored != 0 || rep.Fetched != 0 || rep.Pages != 1 || !c.Info().AfterAuthSent {
				t.Errorf("level sync: %+v (asked in the login's write: %v)", rep, c.Info().AfterAuthSent)
			}

			// New messages: fetched from the cursor only.
			s.InjectArchiveBulk("alice", "bob@localhost", 7, true)
			c, err = client.Dial(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			rep = syncReport(t, c)
			c.Close()
			if rep.Stored != 7 || rep.Fetched != 7 {
				t.Errorf("incremental sync: %+v", rep)
			}
			if err := equalIDs(storeIDs(t, db, "alice@localhost"), archiveIDs(s, "alice")); err != nil {
				t.Fatal(err)
			}
			got.check(t, archiveIDs(s, "alice"))
		})
	}
}

// TestSyncExpiredCursor: the archive expired past the cursor. The newest
// page is fetched, the gap is recorded, nothing loops.
func TestSyncExpiredCursor(t *testing.T) {
	s := newTestServer(t, xmpptest.Config{})
	s.InjectArchiveBulk("alice", "bob@localhost", 30, true)
	db := openCache(t)
	cfg := testConfig(t, s, "alice", db)
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	syncReport(t, c)
	c.Close()
	old, _ := db.Cursor(context.Background(), "alice@localhost")
	_, last := s.InjectArchiveBulk("alice", "bob@localhost", 120, true)
	ids := archiveIDs(s, "alice")
	s.ExpireArchiveBefore("alice", ids[100]) // the cursor (ids[29]) is gone
	c, err = client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep := syncReport(t, c)
	c.Close()
	if rep.Gap == nil || rep.Gap.AfterID != old {
		t.Fatalf("no gap recorded: %+v", rep)
	}
	gaps, err := db.Gaps(context.Background(), "alice@localhost")
	if err != nil || len(gaps) != 1 || gaps[0].AfterID != old || gaps[0].BeforeID != rep.Gap.BeforeID {
		t.Errorf("gaps %+v %v", gaps, err)
	}
	if cur, _ := db.Cursor(context.Background(), "alice@localhost"); cur != last {
		t.Errorf("cursor %q, want the newest id %q", cur, last)
	}
}

// TestSyncLiveDuringPaging: bob's messages arrive live while alice pages a
// large archive; each is stored once and in archive order.
func TestSyncLiveDuringPaging(t *testing.T) {
	s := newTestServer(t, xmpptest.Config{Latency: time.Millisecond})
	s.InjectArchiveBulk("alice", "bob@localhost", 2000, true)
	db := openCache(t)
	got := newDeliveries()
	cfg := testConfig(t, s, "alice", db)
	cfg.OnMessage = got.on
	cfg.SyncPageSize = 50
	bob, err := client.Dial(context.Background(), testConfig(t, s, "bob", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	alice, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := sendChat(bob, alice.Info().JID.Bare().String(), fmt.Sprintf("live %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	syncReport(t, alice)
	// The server archives before it routes: all 2020 are in the archive;
	// wait (on deliveries) until the store has them all.
	got.waitFor(t, 2020, alice.Done())
	alice.Close()
	if err := equalIDs(storeIDs(t, db, "alice@localhost"), archiveIDs(s, "alice")); err != nil {
		t.Fatal(err)
	}
	got.check(t, archiveIDs(s, "alice"))
	if errors.Is(alice.Err(), client.ErrClosed) == false {
		t.Errorf("alice ended with %v", alice.Err())
	}
}

func sendChat(c *client.Client, to, body string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Send(ctx, chatMessage(to, body))
}

// TestCloseAnnouncesStored: a Close that comes while OnMessage announces a
// stored batch (here, from another goroutine while the first call of the
// batch runs) does not drop the rest of the batch: each message stored is
// announced once, or the application would never hear of it (the next run
// finds it stored). TestSyncProperty's rounds close clients while live
// messages arrive, and once in a while lost one that way.
func TestCloseAnnouncesStored(t *testing.T) {
	s := newTestServer(t, xmpptest.Config{})
	s.InjectArchiveBulk("alice", "bob@localhost", 40, true)
	db := openCache(t)
	cfg := testConfig(t, s, "alice", db)
	first, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	calls := 0
	cfg.OnMessage = func(cache.StoredMessage) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			close(first)
			<-release
		}
	}
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	<-first
	c.Close() // a callback runs: Close returns without waiting for it
	close(release)
	<-c.Done()
	stored := len(storeIDs(t, db, "alice@localhost"))
	mu.Lock()
	defer mu.Unlock()
	if stored == 0 || calls != stored {
		t.Fatalf("%d messages announced, %d stored", calls, stored)
	}
}
