package client_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/prosodytest"
	"github.com/pipebind/pipebind/internal/xmpptest"
)

func unreadOf(t *testing.T, c *client.Client, peer string) int {
	t.Helper()
	states, err := c.Unreads(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range states {
		if s.Peer == peer {
			return s.Unread
		}
	}
	return 0
}

// TestMarkersLocal: on a server without PEP, unread counts come from the
// cache and local markers, which only move forward.
func TestMarkersLocal(t *testing.T) {
	s := newTestServer(t, xmpptest.Config{})
	s.InjectArchiveBulk("alice", "bob@localhost", 10, true)
	c, err := client.Dial(context.Background(), testConfig(t, s, "alice", openCache(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	syncReport(t, c)
	ids := archiveIDs(s, "alice")
	if n := unreadOf(t, c, "bob@localhost"); n != 10 {
		t.Fatalf("unread %d, want 10", n)
	}
	bob := jid.MustParse("bob@localhost")
	if err := c.MarkDisplayed(context.Background(), bob, ids[6]); err != nil {
		t.Fatal(err)
	}
	if err := c.MarkDisplayed(context.Background(), bob, ids[2]); err != nil { // backwards: ignored
		t.Fatal(err)
	}
	if n := unreadOf(t, c, "bob@localhost"); n != 3 {
		t.Errorf("unread %d after marking the 7th displayed, want 3", n)
	}
}

// TestIntegrationProsodyMarkers: a marker set on one device reaches another
// through XEP-0490 (Prosody's PEP).
func TestIntegrationProsodyMarkers(t *testing.T) {
	srv := prosodytest.StartT(t, prosodytest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dial := func(user string, db *cache.DB) *client.Client {
		t.Helper()
		c, err := client.Dial(ctx, client.Config{
			JID: jid.MustParse(user + "@" + srv.Domain), Password: srv.Users[user],
			Addr: srv.DirectTLSAddr, TLS: client.TLSDirect, TLSConfig: srv.TLSConfig(), Cache: db,
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	bob := dial("bob", nil)
	defer bob.Close()
	for i := range 10 {
		if err := sendChat(bob, "alice@"+srv.Domain, "m"+string(rune('0'+i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := pingServer(ctx, bob, srv.Domain); err != nil {
		t.Fatal(err)
	}
	open := func(name string) *cache.DB {
		db, err := cache.Open(ctx, filepath.Join(t.TempDir(), name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	phoneDB, laptopDB := open("phone.db"), open("laptop.db")
	phone := dial("alice", phoneDB)
	if _, err := phone.SyncReport(ctx); err != nil {
		t.Fatal(err)
	}
	peer := "bob@" + srv.Domain
	if n := unreadOf(t, phone, peer); n != 10 {
		t.Fatalf("phone: unread %d, want 10", n)
	}
	msgs, err := phoneDB.Messages(ctx, "alice@"+srv.Domain, cache.MessageQuery{})
	if err != nil || len(msgs) != 10 {
		t.Fatalf("%d messages, %v", len(msgs), err)
	}
	if err := phone.MarkDisplayed(ctx, jid.MustParse(peer), msgs[6].StanzaID); err != nil {
		t.Fatal(err)
	}
	if n := unreadOf(t, phone, peer); n != 3 {
		t.Errorf("phone: unread %d, want 3", n)
	}
	phone.Close()

	laptop := dial("alice", laptopDB)
	defer laptop.Close()
	if _, err := laptop.SyncReport(ctx); err != nil {
		t.Fatal(err)
	}
	if n := unreadOf(t, laptop, peer); n != 3 {
		t.Errorf("laptop: unread %d after syncing the phone's XEP-0490 marker, want 3", n)
	}
}
