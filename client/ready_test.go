package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
)

// TestReadyInOneRoundTrip (issue 15): a warm login with a message store
// writes the presence, the archive's first page from the cursor and the
// XEP-0490 fetch behind its authentication, so that the client is ready
// (logged in, store level, markers applied) after the login's one round
// trip: the server sees one client flight until then, whether the store
// was level or 10 messages behind. Info.Timings.Ready measures it.
func TestReadyInOneRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	s.InjectArchiveBulk("alice", "bob@localhost", 30, true)
	cfg := testConfig(t, s, "alice", openCache(t))
	cfg.KeepAlive = client.KeepAlive{Idle: -1} // no probe during the count
	for i, newMsgs := range []int{30, 0, 10} {
		if i == 2 {
			s.InjectArchiveBulk("alice", "bob@localhost", newMsgs, true)
		}
		c, err := client.Dial(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := c.SyncReport(ctx)
		if err != nil {
			t.Fatal(err)
		}
		info := c.Info()
		flights := lastConn(t, s).ClientFlights()
		c.Close()
		t.Logf("login %d: FAST %v, %d round trips, %d client flights to ready, stored %d, ready %v",
			i, info.FAST, info.RoundTrips, flights, rep.Stored, info.Timings.Ready)
		if rep.Stored != newMsgs || info.Timings.Ready <= 0 {
			t.Fatalf("login %d: stored %d, ready %v; want %d, a ready time", i, rep.Stored, info.Timings.Ready, newMsgs)
		}
		if i == 0 {
			continue // cold: the features first, then the queries
		}
		if !info.FAST || info.RoundTrips != 1 || flights != 1 || rep.Pages != 1 {
			t.Errorf("login %d: FAST %v, %d round trips, %d client flights, %d pages; want one flight for all", i, info.FAST, info.RoundTrips, flights, rep.Pages)
		}
	}
}
