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
