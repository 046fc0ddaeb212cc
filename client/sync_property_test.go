package client_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
	"github.com/pipebind/pipebind/login"
)

// dropConn closes the connection once it has read budget bytes: a network
// drop at an arbitrary point (inside the login, a MAM page, a live message).
type dropConn struct {
	net.Conn
	budget atomic.Int64
}

func (c *dropConn) Read(p []byte) (int, error) {
	left := c.budget.Load()
	if left <= 0 {
		c.Conn.Close()
		return 0, net.ErrClosed
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := c.Conn.Read(p)
	if c.budget.Add(-int64(n)) <= 0 {
		c.Conn.Close()
	}
	return n, err
}

// TestSyncProperty randomises, per seed, the archive before each login,
// live messages from bob (and messages alice sends) while alice logs in and
// pages (so also between <success> and the <fin/> of the first page, which
// a warm login asks in its own write), the page size, the login path, FAST
// tokens the server refuses (the pages asked ahead are then asked again),
// resumed sessions, and connection drops at any byte; after a final clean
// login the store must equal the server's archive exactly, in order, with
// every message delivered once.
func TestSyncProperty(t *testing.T) {
	seeds := 12
	if testing.Short() {
		seeds = 3
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b9))
			s := newTestServer(t, xmpptest.Config{Bind2Draft: true, MAMNoCount: seed%2 == 0})
			db := openCache(t)
			got := newDeliveries()
			bob, err := client.Dial(context.Background(), testConfig(t, s, "bob", nil))
			if err != nil {
				t.Fatal(err)
			}
			defer bob.Close()
			sent := 0
			for round := range 6 {
				if n := r.IntN(300); n > 0 {
					s.InjectArchiveBulk("alice", "bob@localhost", n, r.IntN(4) != 0)
				}
				cfg := testConfig(t, s, "alice", db)
				cfg.OnMessage = got.on
				cfg.SyncPageSize = 10 + r.IntN(60)
				cfg.Path = []login.Path{login.PathSASL2, login.PathBind2Draft}[r.IntN(2)]
				drop := r.IntN(3) != 0
				budget := int64(500 + r.IntN(40000))
				cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
					var d net.Dialer
					c, err := d.DialContext(ctx, network, addr)
					if err != nil || !drop {
						return c, err
					}
					dc := &dropConn{Conn: c}
					dc.budget.Store(budget)
					return dc, nil
				}
				if r.IntN(4) == 0 {
					s.InvalidateFASTTokens("alice") // the token is refused
				}
				resume := r.IntN(3) == 0
				events, onEvent := eventsTo(64)
				cfg.Reconnect, cfg.OnEvent = resume, onEvent
				live := r.IntN(15)
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range live {
						if err := sendChat(bob, "alice@localhost", fmt.Sprintf("r%d live %d", round, i)); err != nil {
							t.Errorf("bob: %v", err)
							return
						}
					}
				}()
				alice, err := client.Dial(context.Background(), cfg)
				if err == nil {
					if r.IntN(3) == 0 {
						if sendChat(alice, "bob@localhost", fmt.Sprintf("r%d from alice", round)) == nil {
							sent++
						}
					}
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					_, _ = alice.SyncReport(ctx) // may fail: the connection may drop
					if resume && alice.Err() == nil && s.CutConnection(lastConn(t, s)) {
						// Back by resumption (or a fresh bind if it cannot).
						awaitBack(ctx, events)
						_, _ = alice.SyncReport(ctx)
					}
					cancel()
					alice.Close()
				}
				wg.Wait()
			}
			// A clean login brings the store level.
			cfg := testConfig(t, s, "alice", db)
			cfg.OnMessage = got.on
			alice, err := client.Dial(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := alice.SyncReport(context.Background()); err != nil {
				t.Fatal(err)
			}
			want := archiveIDs(s, "alice")
			got.waitFor(t, len(want), alice.Done())
			alice.Close()
			if err := equalIDs(storeIDs(t, db, "alice@localhost"), want); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			got.check(t, want)
		})
	}
}

// awaitBack waits until the client is online again after a drop (resumed,
// or bound afresh) or has stopped, or ctx ends.
func awaitBack(ctx context.Context, events chan client.Event) {
	for {
		select {
		case e := <-events:
			switch e.Kind {
			case client.EventResumed, client.EventOnline, client.EventClosed:
				return
			}
		case <-ctx.Done():
			return
		}
	}
}
