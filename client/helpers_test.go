package client_test

import (
	"context"
	"encoding/xml"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/pipebind/pipebind/client"
)

func chatMessage(to, body string) xml.TokenReader {
	msg := stanza.Message{To: jid.MustParse(to), Type: stanza.ChatMessage}
	return msg.Wrap(xmlstream.Wrap(xmlstream.Token(xml.CharData(body)), xml.StartElement{Name: xml.Name{Local: "body"}}))
}

// pingServer sends a XEP-0199 ping to the server and waits for the answer:
// everything sent before it has been processed.
func pingServer(ctx context.Context, c *client.Client, domain string) error {
	resp, err := c.SendIQ(ctx, stanza.IQ{Type: stanza.GetIQ, To: jid.MustParse(domain)}.Wrap(
		xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "urn:xmpp:ping", Local: "ping"}})))
	if err != nil {
		return err
	}
	return resp.Close()
}
