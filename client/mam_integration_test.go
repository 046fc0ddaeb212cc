package client_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/ejabberdtest"
	"github.com/pipebind/pipebind/internal/prosodytest"
)

// realServer is what the MAM integration test needs of Prosody or ejabberd.
type realServer struct {
	domain, addr string
	tls          *tls.Config
	users        map[string]string
}

// TestIntegrationSync fills alice's archive with messages from bob while she
// is offline, syncs, then has bob send more, some while alice syncs; alice's
// store must hold exactly bob's messages, in the order he sent them, each
// delivered once. Against Prosody 13 (pages of at most 50, metadata, no
// count) and ejabberd 24.12 (pages up to 250, count, no metadata, numeric
// ids).
func TestIntegrationSync(t *testing.T) {
	servers := map[string]func(t *testing.T) realServer{
		"prosody": func(t *testing.T) realServer {
			s := prosodytest.StartT(t, prosodytest.Options{})
			return realServer{s.Domain, s.DirectTLSAddr, s.TLSConfig(), s.Users}
		},
		"ejabberd": func(t *testing.T) realServer {
			s := ejabberdtest.StartT(t, ejabberdtest.Options{ExtraModules: map[string]string{"mod_offline": "{use_mam_for_storage: true}"}})
			return realServer{s.Domain, s.DirectTLSAddr, s.TLSConfig(), s.Users}
		},
	}
	for name, start := range servers {
		t.Run(name, func(t *testing.T) {
			srv := start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			cfg := func(user string, db *cache.DB) client.Config {
				return client.Config{
					JID: jid.MustParse(user + "@" + srv.domain), Password: srv.users[user],
					Addr: srv.addr, TLS: client.TLSDirect, TLSConfig: srv.tls, Cache: db,
					// A loaded CI machine with the race detector and a server
					// still writing 2,000 archived messages: more than 30 s
					// (ejabberd 24.12's Mnesia archive: 40 a second), also for
					// the ping behind them.
					Timeout: 2 * time.Minute, RequestTimeout: 2 * time.Minute,
				}
			}
			bob, err := client.Dial(ctx, cfg("bob", nil))
			if err != nil {
				t.Fatal(err)
			}
			defer bob.Close()
			alice := jid.MustParse("alice@" + srv.domain)
			var sent []string
			send := func(n int) {
				for range n {
					body := fmt.Sprintf("%s message %d", name, len(sent))
					if err := sendChat(bob, alice.String(), body); err != nil {
						t.Fatal(err)
					}
					sent = append(sent, body)
				}
			}
			// bob's messages are archived for alice whether she is online or
			// not; a ping round trip after the burst makes sure the server
			// has processed them all before alice logs in.
			send(2000)
			if err := pingServer(ctx, bob, srv.domain); err != nil {
				t.Fatal(err)
			}

			db, err := cache.Open(ctx, filepath.Join(t.TempDir(), "alice.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			got := newDeliveries()
			acfg := cfg("alice", db)
			acfg.OnMessage = got.on
			c, err := client.Dial(ctx, acfg)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := c.SyncReport(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("first sync: %d pages, %d fetched, %d stored, %d duplicates", rep.Pages, rep.Fetched, rep.Stored, rep.Duplicates)
			got.waitFor(t, 2000, c.Done())
			c.Close()
			checkBodies(t, db, alice.String(), sent)

			// More arrive while alice is offline, and more while she syncs.
			send(300)
			if err := pingServer(ctx, bob, srv.domain); err != nil {
				t.Fatal(err)
			}
			c, err = client.Dial(ctx, acfg)
			if err != nil {
				t.Fatal(err)
			}
			send(100)
			if _, err := c.SyncReport(ctx); err != nil {
				t.Fatal(err)
			}
			got.waitFor(t, len(sent), c.Done())
			c.Close()
			checkBodies(t, db, alice.String(), sent)
			n := got.n
			// A level store: nothing more delivered on the next login.
			c, err = client.Dial(ctx, acfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.SyncReport(ctx); err != nil {
				t.Fatal(err)
			}
			c.Close()
			checkBodies(t, db, alice.String(), sent)
			if got.n != n {
				t.Errorf("a level sync delivered %d more messages", got.n-n)
			}
		})
	}
}

func checkBodies(t *testing.T, db *cache.DB, account string, want []string) {
	t.Helper()
	msgs, err := db.Messages(context.Background(), account, cache.MessageQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(want) {
		t.Fatalf("store holds %d messages, bob sent %d", len(msgs), len(want))
	}
	for i, m := range msgs {
		if m.Body != want[i] || m.Direction != cache.DirectionIn {
			t.Fatalf("message %d: %q (%s), want %q", i, m.Body, m.Direction, want[i])
		}
	}
}
