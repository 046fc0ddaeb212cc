package client_test

import (
	"context"
	"encoding/xml"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
)

// TestLiveStoreOffReadLoop: another process holds the cache's write lock
// for 3 s while a live message arrives (its store waits for the lock) and
// the server sends pings and <r/>. Every answer leaves in time, because the
// store does not run on the session's reading goroutine; the held message
// is stored once the lock is released.
func TestLiveStoreOffReadLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes") // -short only
	}
	const hold = 3 * time.Second
	const answerBound = time.Second // ms on loopback; the lock would cost seconds
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cache.db")
	s := faultSetup(t, path, 10)
	bob, err := client.Dial(context.Background(), testConfig(t, s, "bob", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	stored := make(chan cache.StoredMessage, 10)
	arrived := make(chan struct{}, 1)
	cfg := testConfig(t, s, "alice", nil)
	cfg.CachePath = path
	cfg.OnMessage = func(m cache.StoredMessage) { stored <- m }
	cfg.Handler = messageSignal(arrived)
	alice, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	syncReport(t, alice) // level
	if !alice.Info().SM.Enabled {
		t.Fatal("stream management is off: no <r/> to answer")
	}

	p := startProc(t, "lock-immediate", exe, helperEnv(s, "lock-immediate", path, helperHoldEnv+"="+hold.String()), nil)
	p.next("locked")
	p.send("go") // the hold starts
	held := time.Now()
	if err := sendChat(bob, "alice@localhost", "while the lock is held"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-arrived: // read off the wire: its store now waits for the lock
	case <-time.After(10 * time.Second):
		t.Fatal("the live message did not arrive")
	}
	ctx, cancel := context.WithTimeout(context.Background(), hold)
	defer cancel()
	full := alice.Info().JID.String()
	for i := range 3 {
		d, err := s.PingClient(ctx, full)
		if err != nil && d == 0 {
			t.Fatalf("ping %d: %v", i, err)
		}
		if d > answerBound {
			t.Errorf("ping %d answered after %v with the cache locked", i, d)
		}
		_, d, err = s.RequestAck(ctx, full)
		if err != nil {
			t.Fatalf("<r/> %d: %v", i, err)
		}
		if d > answerBound {
			t.Errorf("<r/> %d answered after %v with the cache locked", i, d)
		}
	}
	if since := time.Since(held); since >= hold {
		t.Fatalf("the probes ended %v after the lock was taken, not while it was held", since)
	}
	select {
	case m := <-stored:
		t.Fatalf("%q stored while another process held the write lock", m.Body)
	default:
	}
	p.next("released")
	select {
	case m := <-stored:
		if m.Body != "while the lock is held" || m.Peer != jid.MustParse("bob@localhost").String() {
			t.Errorf("stored %q from %s", m.Body, m.Peer)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held message was not stored after the lock was released")
	}
	if _, err := alice.SyncReport(context.Background()); err != nil {
		t.Errorf("sync: %v", err)
	}
}

// messageSignal is a Handler that signals ch (without blocking) for every
// incoming message.
func messageSignal(ch chan struct{}) xmpp.Handler {
	return xmpp.HandlerFunc(func(_ xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		if start.Name.Local == "message" {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
		return nil
	})
}
