package client_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
)

// Log in with a feature cache, so that the next login is one round trip,
// and send a message. (Compiled, not run: it needs a server.)
func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{
		JID:       jid.MustParse("alice@example.org"),
		Password:  "secret",
		CachePath: "pipebind.db",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	info := c.Info()
	fmt.Printf("bound %s via %s in %d round trips\n", info.JID, info.Path, info.RoundTrips)

	msg := stanza.Message{To: jid.MustParse("bob@example.org"), Type: stanza.ChatMessage}
	if err := c.Send(ctx, msg.Wrap(nil)); err != nil {
		log.Fatal(err)
	}
}

// Stay connected: with Reconnect, a dropped connection resumes its stream
// management session inline in the next login (one round trip with a FAST
// token), and OnEvent hears each step. This example runs against the
// in-process test server and cuts the connection under the client.
func ExampleConfig_reconnect() {
	srv := xmpptest.NewServer(xmpptest.Config{Users: map[string]string{"alice": "secret"}})
	defer srv.Close()
	db, err := cache.Open(context.Background(), filepath.Join(os.TempDir(), fmt.Sprintf("pipebind-example-%d.db", os.Getpid())))
	if err != nil {
		log.Fatal(err)
	}
	defer os.Remove(db.Path())
	defer db.Close()

	events := make(chan client.Event, 16)
	c, err := client.Dial(context.Background(), client.Config{
		JID:       jid.MustParse("alice@" + srv.Domain()),
		Password:  "secret",
		Addr:      srv.DirectTLSAddr(),
		TLSConfig: srv.TLSConfig(), // trusts the test server's certificate
		Cache:     db,
		NoSync:    true,
		Reconnect: true,
		OnEvent:   func(e client.Event) { events <- e },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	srv.CutConnection(srv.Conns()[0]) // the network fails
	for e := range events {
		fmt.Println(e.Kind)
		if e.Kind == client.EventResumed || e.Kind == client.EventClosed {
			break
		}
	}
	fmt.Println("resumed:", c.Info().Resumed, "fast:", c.Info().FAST)
	// Output:
	// offline
	// connecting
	// resumed
	// resumed: true fast: true
}
