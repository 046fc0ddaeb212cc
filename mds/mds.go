// Package mds implements Message Displayed Synchronization (XEP-0490): the
// devices of an account share, per conversation, the last message the user
// has seen there, as the items of a PEP node of the account (NS).
//
// Publish stores one marker and Fetch reads them all. Both take a
// *xmpp.Session whose Serve loop is running, act for the session's account
// (its LocalAddr) and return Go values. An IQ error answer is returned as a
// stanza.Error (mellium.im/xmpp/stanza), wrapped, so callers match its
// condition with errors.Is, a zero Type or Condition being a wildcard:
//
//	errors.Is(err, stanza.Error{Condition: stanza.ItemNotFound}) // no marker published yet
//
// # Server input
//
// Fetch reads the answer as it streams, and bounds what it keeps: at most
// MaxItems markers (it asks for no more; an answer with more is an error),
// stanza-ids up to MaxIDLen bytes. A marker that does not parse, or whose
// stanza-id was assigned by neither the account nor the conversation's
// peer (by=), is dropped, not an error. The size of the answer as a whole is
// the session's to bound.
//
// The package does no I/O of its own and holds no state: its functions are
// safe for concurrent use as far as the session's SendIQ is.
package mds

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// NS is the namespace of the displayed marker and the name of the PEP node
// that holds them (XEP-0490).
const NS = "urn:xmpp:mds:displayed:0"

// Namespaces of the elements around a marker.
const (
	nsPubSub   = "http://jabber.org/protocol/pubsub" // XEP-0060
	nsStanzaID = "urn:xmpp:sid:0"                    // XEP-0359
	nsData     = "jabber:x:data"                     // XEP-0004
)

// Bounds on what Fetch keeps from the server's answer.
const (
	// MaxItems is the most markers Fetch asks for (the most recently
	// published) and accepts.
	MaxItems = 1000
	// MaxIDLen is the longest stanza-id Fetch accepts, in bytes.
	MaxIDLen = 1024
)

// Marker is a displayed marker: in the conversation with Peer, the user has
// seen everything up to the message whose XEP-0359 stanza-id is StanzaID.
type Marker struct {
	// Peer is the conversation: the bare JID of the contact or of the room.
	// It is the PEP item's id.
	Peer jid.JID
	// StanzaID is the stanza-id of the last message displayed, as By
	// assigned it.
	StanzaID string
	// By is the bare JID of who assigned StanzaID: the account (its
	// archive) in a one-to-one conversation, the room in a groupchat.
	// Publish uses the account when By is zero.
	By jid.JID
}

// Publish publishes m as the account's displayed marker for m.Peer,
// replacing the previous one, with the publish-options XEP-0490 asks for
// (persistent items, as many as there are conversations, no last item sent
// to subscribers, whitelist access: the account's devices only). It returns
// once the server has answered.
func Publish(ctx context.Context, s *xmpp.Session, m Marker) error {
	by := m.By
	if by.Equal(jid.JID{}) {
		by = s.LocalAddr()
	}
	item := elem(xml.Name{Space: nsPubSub, Local: "item"}, []xml.Attr{attr("id", m.Peer.Bare().String())},
		elem(xml.Name{Space: NS, Local: "displayed"}, nil,
			elem(xml.Name{Space: nsStanzaID, Local: "stanza-id"},
				[]xml.Attr{attr("id", m.StanzaID), attr("by", by.Bare().String())})))
	req := elem(xml.Name{Space: nsPubSub, Local: "pubsub"}, nil,
		elem(xml.Name{Space: nsPubSub, Local: "publish"}, []xml.Attr{attr("node", NS)}, item),
		elem(xml.Name{Space: nsPubSub, Local: "publish-options"}, nil, publishOptions()))
	resp, err := s.SendIQElement(ctx, req, stanza.IQ{Type: stanza.SetIQ})
	if err != nil {
		return fmt.Errorf("mds: publish: %w", err)
	}
	defer resp.Close()
	if err := readAnswer(resp, nil); err != nil {
		return fmt.Errorf("mds: publish: %w", err)
	}
	return nil
}

// Fetch returns the account's displayed markers (see the package doc for
// what it accepts). A server without PEP, or an account that never
// published one, answers with an IQ error: see the package doc.
func Fetch(ctx context.Context, s *xmpp.Session) ([]Marker, error) {
	resp, err := s.SendIQElement(ctx, fetchPayload(), stanza.IQ{Type: stanza.GetIQ})
	if err != nil {
		return nil, fmt.Errorf("mds: fetch: %w", err)
	}
	defer resp.Close()
	return readFetch(s.LocalAddr().Bare(), resp)
}

// fetchPayload is the <pubsub><items/></pubsub> of a fetch.
func fetchPayload() xml.TokenReader {
	return elem(xml.Name{Space: nsPubSub, Local: "pubsub"}, nil,
		elem(xml.Name{Space: nsPubSub, Local: "items"},
			[]xml.Attr{attr("node", NS), attr("max_items", fmt.Sprint(MaxItems))}))
}

func readFetch(account jid.JID, r xml.TokenReader) ([]Marker, error) {
	p := itemsParser{account: account}
	if err := readAnswer(r, p.read); err != nil {
		return nil, fmt.Errorf("mds: fetch: %w", err)
	}
	return p.markers, nil
}

// FetchRequest returns Fetch's request as an IQ with id, serialized, for a
// client that writes it ahead of serving the session (in the login's own
// write); ParseFetch reads the answer.
func FetchRequest(id string) []byte {
	var b bytes.Buffer
	b.WriteString("<iq type='get' id='")
	_ = xml.EscapeText(&b, []byte(id)) // a bytes.Buffer does not fail
	fmt.Fprintf(&b, "'><pubsub xmlns='%s'><items node='%s' max_items='%d'/></pubsub></iq>", nsPubSub, NS, MaxItems)
	return b.Bytes()
}

// ParseFetch reads the answer to FetchRequest (the whole IQ, serialized)
// for account, as Fetch reads it.
func ParseFetch(account jid.JID, answer []byte) ([]Marker, error) {
	d := xml.NewDecoder(bytes.NewReader(answer))
	d.DefaultSpace = "jabber:client"
	return readFetch(account.Bare(), d)
}

// publishOptions is the XEP-0060 publish-options form XEP-0490 §5 gives.
func publishOptions() xml.TokenReader {
	field := func(name, value string, typ ...xml.Attr) xml.TokenReader {
		return elem(xml.Name{Space: nsData, Local: "field"}, append([]xml.Attr{attr("var", name)}, typ...),
			xmlstream.Wrap(xmlstream.Token(xml.CharData(value)), xml.StartElement{Name: xml.Name{Space: nsData, Local: "value"}}))
	}
	return elem(xml.Name{Space: nsData, Local: "x"}, []xml.Attr{attr("type", "submit")},
		field("FORM_TYPE", nsPubSub+"#publish-options", attr("type", "hidden")),
		field("pubsub#persist_items", "true"),
		field("pubsub#max_items", "max"),
		field("pubsub#send_last_published_item", "never"),
		field("pubsub#access_model", "whitelist"))
}

// elem is the element name with attrs around children.
func elem(name xml.Name, attrs []xml.Attr, children ...xml.TokenReader) xml.TokenReader {
	return xmlstream.Wrap(xmlstream.MultiReader(children...), xml.StartElement{Name: name, Attr: attrs})
}

func attr(name, value string) xml.Attr { return xml.Attr{Name: xml.Name{Local: name}, Value: value} }
