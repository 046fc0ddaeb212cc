package client_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"log"
	"os"
	"os/signal"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/pipebind/pipebind/client"
)

// chatMessageBody is an incoming message as a Handler decodes it.
type chatMessageBody struct {
	stanza.Message        // from, to, type, id
	Body           string `xml:"body"`
}

// An echo bot: receive chat messages in the Handler and answer each with
// Send. The Handler only decodes and hands the message over: it runs on
// the goroutine that reads the connection, so it must not wait, and Send
// waits while the client reconnects. A runnable copy, with its test, is
// examples/echobot. (Compiled, not run: it needs a server.)
func ExampleConfig_handler() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	in := make(chan chatMessageBody, 16)
	handler := xmpp.HandlerFunc(func(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		if start.Name.Local != "message" {
			return nil
		}
		// t holds what follows start, up to its end element: decode
		// through a reader that puts start back in front of it
		// (xml.NewTokenDecoder(t).DecodeElement(&m, start) fails: the
		// decoder meets an end element it never saw start).
		var m chatMessageBody
		d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t))
		if err := d.Decode(&m); err != nil {
			return err // reported as an EventError; the session goes on
		}
		if m.Type == stanza.ChatMessage && m.Body != "" {
			select {
			case in <- m:
			case <-ctx.Done():
			}
		}
		return nil
	})
	c, err := client.Dial(ctx, client.Config{
		JID:       jid.MustParse("bot@example.org"),
		Password:  os.Getenv("BOT_PASSWORD"),
		CachePath: "bot.db",
		Reconnect: true,
		Handler:   handler,
		OnEvent:   func(e client.Event) { log.Println(e.Kind, e.Err) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for {
		select {
		case m := <-in:
			reply := stanza.Message{To: m.From, Type: stanza.ChatMessage}
			body := xmlstream.Wrap(xmlstream.Token(xml.CharData(m.Body)), xml.StartElement{Name: xml.Name{Local: "body"}})
			if err := c.Send(ctx, reply.Wrap(body)); err != nil {
				log.Println("reply:", err)
			}
		case <-c.Done():
			log.Fatal(c.Err())
		case <-ctx.Done():
			fmt.Println("bye")
			return
		}
	}
}

// Ask a client its state, and make sure the server has what was sent
// before exiting. (Compiled, not run: it needs a server.)
func ExampleClient_Flush() {
	ctx := context.Background()
	c, err := client.Dial(ctx, client.Config{JID: jid.MustParse("alice@example.org"), Password: "secret"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	msg := stanza.Message{To: jid.MustParse("bob@example.org"), Type: stanza.ChatMessage}
	body := xmlstream.Wrap(xmlstream.Token(xml.CharData("hello")), xml.StartElement{Name: xml.Name{Local: "body"}})
	if err := c.Send(ctx, msg.Wrap(body)); err != nil {
		log.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil { // one round trip
		log.Fatal(err)
	}
	fmt.Println(c.Status()) // online
}
