// Command echobot answers every chat message with the same text: a
// complete pipebind bot to copy from. It logs in (one round trip after
// TLS from the second start, with the cache and its FAST token), stays
// connected across network drops, decodes each incoming message in the
// client's Handler and replies with Client.Send.
//
//	PIPEBIND_PASSWORD=... go run ./examples/echobot -jid bot@example.org
//
// Flags: -jid (the bot's account), -addr host:port (skip the SRV lookup),
// -cache FILE (default echobot.db). Stop it with Ctrl-C.
package main

import (
	"context"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/pipebind/pipebind/client"
)

func main() {
	account := flag.String("jid", "", "the bot's `account` (user@domain)")
	addr := flag.String("addr", "", "server `host:port` (default: SRV lookup)")
	cachePath := flag.String("cache", "echobot.db", "cache `file`")
	flag.Parse()
	j, err := jid.Parse(*account)
	if err != nil || j.Localpart() == "" {
		log.Fatalf("echobot: -jid %q: want an account JID (user@domain)", *account)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg := client.Config{
		JID:       j,
		Password:  os.Getenv("PIPEBIND_PASSWORD"),
		Addr:      *addr,
		CachePath: *cachePath,
		Reconnect: true, // resume (XEP-0198) or log in again after a drop
	}
	if err := run(ctx, cfg, os.Stdout); err != nil {
		log.Fatalf("echobot: %v", err)
	}
}

// chat is an incoming message as the Handler decodes it: mellium's
// stanza.Message gives the attributes (from, to, type, id), Body the text.
type chat struct {
	stanza.Message
	Body string `xml:"body"`
}

// run logs the bot in with cfg and echoes chat messages until ctx ends
// (then it returns nil) or the client stops for good (then its error).
func run(ctx context.Context, cfg client.Config, log io.Writer) error {
	// The Handler runs on the goroutine that reads the connection: it only
	// decodes, and hands each message to the loop below, which replies.
	// (Replying from inside the Handler would hold up the reading, and
	// Send waits while the client reconnects: the Handler must not.)
	in := make(chan chat, 16)
	cfg.Handler = xmpp.HandlerFunc(func(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		if start.Name.Local != "message" {
			return nil
		}
		// The Handler gets the start element and, in t, what follows it up
		// to its end. A decoder over t alone would meet an end element it
		// never saw start: put the start back in front.
		var m chat
		d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t))
		if err := d.Decode(&m); err != nil {
			// An error returned here is the application's: it reaches
			// Config.OnEvent as EventError, and the session goes on.
			return fmt.Errorf("echobot: decoding a message: %w", err)
		}
		if m.Type != stanza.ChatMessage || m.Body == "" {
			return nil // carbons, chat states, errors, ...
		}
		select {
		case in <- m:
		case <-ctx.Done():
		}
		return nil
	})
	cfg.OnEvent = func(e client.Event) { fmt.Fprintln(log, "event:", e.Kind, e.Err) }

	c, err := client.Dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(log, "echobot: online as %s\n", c.Info().JID)
	me := c.Info().JID.Bare()
	for {
		select {
		case m := <-in:
			if m.From.Bare().Equal(me) {
				continue // never answer ourselves
			}
			reply := stanza.Message{To: m.From, Type: stanza.ChatMessage}
			body := xmlstream.Wrap(xmlstream.Token(xml.CharData(m.Body)), xml.StartElement{Name: xml.Name{Local: "body"}})
			// Send waits while the client reconnects and, with stream
			// management, keeps the reply until the server has it.
			if err := c.Send(ctx, reply.Wrap(body)); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			fmt.Fprintf(log, "echoed %q to %s\n", m.Body, m.From)
		case <-c.Done():
			return c.Err()
		case <-ctx.Done():
			return nil
		}
	}
}
