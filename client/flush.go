package client

import (
	"context"
	"encoding/xml"
	"fmt"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"
)

// Flush returns once the server has processed every stanza sent before
// it, as nats.go's Flush does with a PING: it sends the server an XEP-0199
// ping and waits for the answer, which the server writes after handling
// everything before it (an error answer says the same). While the client
// reconnects it waits, as Send does; ctx and Config.RequestTimeout bound
// it, and a connection that ends before the answer makes it return an
// *UnansweredError (with stream management, what was unacknowledged is
// sent again once the client is back: call Flush again). A program that sends
// and exits calls Flush before Close to know the server has its messages.
func (c *Client) Flush(ctx context.Context) error {
	l, err := c.waitOnline(ctx)
	if err != nil {
		return err
	}
	ping := xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "urn:xmpp:ping", Local: "ping"}})
	rctx, finish := l.request(ctx)
	resp, err := l.sess.SendIQ(rctx, stanza.IQ{Type: stanza.GetIQ, To: l.info.JID.Domain()}.Wrap(ping))
	if err = finish(err); err != nil {
		return fmt.Errorf("client: flush: %w", err)
	}
	return resp.Close()
}
