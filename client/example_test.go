package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/pipebind/pipebind/client"
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
// token), and OnEvent hears each step, in order, on a goroutine of the
// client's. (Compiled, not run: it needs a server.)
func ExampleConfig_reconnect() {
	c, err := client.Dial(context.Background(), client.Config{
		JID:       jid.MustParse("alice@example.org"),
		Password:  "secret",
		CachePath: "pipebind.db",
		Reconnect: true,
		Backoff:   client.Backoff{Min: 250 * time.Millisecond, Max: 30 * time.Second},
		OnEvent: func(e client.Event) {
			// offline (with the cause), connecting, resumed or online,
			// error (the Handler's), closed (the last).
			log.Println(e.Kind, e.Attempt, e.Err)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	<-c.Done() // until Close, or a failure reconnecting cannot mend
	log.Println("stopped:", c.Err())
}
