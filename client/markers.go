package client

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
)

// ErrNoCache is returned by the message and marker methods of a client
// without a cache.
var ErrNoCache = errors.New("client: no message cache configured")

// Unreads returns the unread state per peer: on a XEP-0386 v0.3.0 server the
// server's counts and read ids win; elsewhere counts are computed from the
// cache and the displayed markers (local, and XEP-0490 markers fetched from
// the account's PEP at sync).
func (c *link) Unreads(ctx context.Context) ([]cache.PeerState, error) {
	if c.db == nil {
		return nil, ErrNoCache
	}
	return c.db.Unreads(ctx, c.info.JID.Bare().String())
}

// MarkDisplayed records that the user has seen the message with archive id
// stanzaID from peer (and everything before it). Markers only move forward.
// When the marker moved, it is published as a XEP-0490 displayed marker so
// the account's other devices see it; a server without PEP keeps it local.
func (c *link) MarkDisplayed(ctx context.Context, peer jid.JID, stanzaID string) error {
	if c.db == nil {
		return ErrNoCache
	}
	acct := c.info.JID.Bare()
	moved, err := c.db.MarkDisplayed(ctx, acct.String(), peer.Bare().String(), stanzaID)
	if err != nil || !moved {
		return err
	}
	var b bytes.Buffer
	b.WriteString("<iq type='set'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:mds:displayed:0'><item id='")
	_ = xml.EscapeText(&b, []byte(peer.Bare().String()))
	b.WriteString("'><displayed xmlns='urn:xmpp:mds:displayed:0'><stanza-id xmlns='urn:xmpp:sid:0' id='")
	_ = xml.EscapeText(&b, []byte(stanzaID))
	b.WriteString("' by='")
	_ = xml.EscapeText(&b, []byte(acct.String()))
	b.WriteString("'/></displayed></item></publish><publish-options><x xmlns='jabber:x:data' type='submit'>" +
		"<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
		"<field var='pubsub#persist_items'><value>true</value></field>" +
		"<field var='pubsub#max_items'><value>max</value></field>" +
		"<field var='pubsub#send_last_published_item'><value>never</value></field>" +
		"<field var='pubsub#access_model'><value>whitelist</value></field>" +
		"</x></publish-options></pubsub></iq>")
	cond, err := c.iq(ctx, b.Bytes(), nil)
	switch {
	case err != nil:
		return fmt.Errorf("client: publishing the displayed marker: %w", err)
	case cond == "" || unsupported(cond):
		if cond != "" {
			c.log.Debug().Str("condition", cond).Msg("no XEP-0490 on this server; marker kept locally")
		}
		return nil
	}
	return fmt.Errorf("client: publishing the displayed marker: %s", cond)
}

// fetchDisplayed applies the XEP-0490 markers stored in the account's PEP.
func (c *link) fetchDisplayed(ctx context.Context) error {
	var res struct {
		Items []struct {
			ID        string `xml:"id,attr"`
			Displayed struct {
				StanzaID []struct {
					ID string `xml:"id,attr"`
					By string `xml:"by,attr"`
				} `xml:"urn:xmpp:sid:0 stanza-id"`
			} `xml:"urn:xmpp:mds:displayed:0 displayed"`
		} `xml:"http://jabber.org/protocol/pubsub pubsub>items>item"`
	}
	cond, err := c.iq(ctx, []byte("<iq type='get'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:mds:displayed:0'/></pubsub></iq>"), &res)
	if err != nil {
		return err
	}
	if cond != "" {
		return nil // no node yet, or no PEP: nothing to apply
	}
	acct := c.info.JID.Bare()
	for _, it := range res.Items {
		peer, err := jid.Parse(it.ID)
		if err != nil {
			continue
		}
		for _, sid := range it.Displayed.StanzaID {
			by, err := jid.Parse(sid.By)
			if err != nil || !by.Bare().Equal(acct) || sid.ID == "" {
				continue
			}
			_, err = c.db.MarkDisplayed(ctx, acct.String(), peer.Bare().String(), sid.ID)
			if err != nil && !errors.Is(err, cache.ErrUnknownMessage) {
				return err
			}
		}
	}
	return nil
}

func unsupported(cond string) bool {
	switch cond {
	case "feature-not-implemented", "service-unavailable", "item-not-found", "not-allowed", "forbidden":
		return true
	}
	return false
}

// iq sends a request and decodes a result into v (when not nil); an error
// answer returns its condition.
func (c *link) iq(ctx context.Context, req []byte, v any) (cond string, err error) {
	resp, err := c.sess.SendIQ(ctx, xml.NewDecoder(bytes.NewReader(req)))
	if err != nil {
		return "", err
	}
	defer resp.Close()
	var raw bytes.Buffer
	e := xml.NewEncoder(&raw)
	if _, err := xmlstream.Copy(e, resp); err != nil {
		return "", err
	}
	if err := e.Flush(); err != nil {
		return "", err
	}
	var iq struct {
		Type  string `xml:"type,attr"`
		Error *struct {
			Inner []struct{ XMLName xml.Name } `xml:",any"`
		} `xml:"error"`
	}
	if err := xml.Unmarshal(raw.Bytes(), &iq); err != nil {
		return "", fmt.Errorf("client: IQ answer: %w", err)
	}
	if iq.Type == "error" {
		cond = "undefined-condition"
		if iq.Error != nil {
			for _, in := range iq.Error.Inner {
				if in.XMLName.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" && in.XMLName.Local != "text" {
					cond = in.XMLName.Local
				}
			}
		}
		return cond, nil
	}
	if v != nil {
		if err := xml.Unmarshal(raw.Bytes(), v); err != nil {
			return "", fmt.Errorf("client: IQ answer: %w", err)
		}
	}
	return "", nil
}
