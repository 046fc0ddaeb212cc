package mds

import (
	"encoding/xml"
	"fmt"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// errTooMany reports an answer with more than MaxItems markers.
var errTooMany = fmt.Errorf("the server sent more than the %d markers asked for", MaxItems)

// maxTextLen bounds the human-readable text kept from an error answer, and
// maxConditionLen its condition's name.
const (
	maxTextLen      = 256
	maxConditionLen = 64
)

var (
	nameItems     = xml.Name{Space: nsPubSub, Local: "items"}
	nameItem      = xml.Name{Space: nsPubSub, Local: "item"}
	nameDisplayed = xml.Name{Space: NS, Local: "displayed"}
	nameStanzaID  = xml.Name{Space: nsStanzaID, Local: "stanza-id"}
)

// readAnswer reads the IQ answering a request from r: a result has each of
// its children handed to payload (nil skips them), which must consume the
// element; an error is returned as a stanza.Error.
func readAnswer(r xml.TokenReader, payload func(d *xml.Decoder, start xml.StartElement) error) error {
	d := xml.NewTokenDecoder(r)
	var start xml.StartElement
	for {
		tok, err := d.Token()
		if err != nil {
			return fmt.Errorf("reading the answer: %w", err)
		}
		if s, ok := tok.(xml.StartElement); ok {
			start = s
			break
		}
	}
	if start.Name.Local != "iq" {
		return fmt.Errorf("expected an IQ answer, got <%s>", start.Name.Local)
	}
	switch typ := attrValue(start, "type"); typ {
	case string(stanza.ResultIQ):
		if payload == nil {
			return nil
		}
		return children(d, func(c xml.StartElement) error { return payload(d, c) })
	case string(stanza.ErrorIQ):
		return errorAnswer(d)
	default:
		return fmt.Errorf("an IQ answer of type %.16q", typ)
	}
}

// errorAnswer reads the <error/> of an IQ error answer into a stanza.Error:
// its type, its defined condition (undefined-condition if none) and the
// start of its text.
func errorAnswer(d *xml.Decoder) error {
	se := stanza.Error{Condition: stanza.UndefinedCondition}
	found := false
	err := children(d, func(c xml.StartElement) error {
		if c.Name.Local != "error" || found {
			return d.Skip()
		}
		found = true
		se.Type = stanza.ErrorType(attrValue(c, "type"))
		cond := false
		return children(d, func(c xml.StartElement) error {
			switch {
			case c.Name.Space != stanza.NSError:
			case c.Name.Local == "text":
				var text string
				if err := d.DecodeElement(&text, &c); err != nil {
					return err
				}
				if len(text) > maxTextLen {
					text = text[:maxTextLen] + "…"
				}
				se.Text = map[string]string{"": text}
				return nil
			case !cond && len(c.Name.Local) <= maxConditionLen:
				se.Condition, cond = stanza.Condition(c.Name.Local), true
			}
			return d.Skip()
		})
	})
	if err != nil {
		return fmt.Errorf("reading the error answer: %w", err)
	}
	return se
}

// itemsParser collects the markers of an items answer for account.
type itemsParser struct {
	account jid.JID
	items   int
	markers []Marker
}

// read takes one child of the IQ result: the <pubsub/> whose <items/> hold
// the markers.
func (p *itemsParser) read(d *xml.Decoder, start xml.StartElement) error {
	if start.Name != (xml.Name{Space: nsPubSub, Local: "pubsub"}) {
		return d.Skip()
	}
	return children(d, func(c xml.StartElement) error {
		if c.Name != nameItems || attrValue(c, "node") != NS {
			return d.Skip()
		}
		return children(d, func(c xml.StartElement) error {
			if c.Name != nameItem {
				return d.Skip()
			}
			return p.item(d, c)
		})
	})
}

// item reads one <item/>; a marker that does not parse is dropped.
func (p *itemsParser) item(d *xml.Decoder, start xml.StartElement) error {
	p.items++
	if p.items > MaxItems {
		return errTooMany
	}
	peer, perr := jid.Parse(attrValue(start, "id"))
	var m *Marker
	err := children(d, func(c xml.StartElement) error {
		if c.Name != nameDisplayed || m != nil {
			return d.Skip()
		}
		return children(d, func(c xml.StartElement) error {
			if c.Name == nameStanzaID && m == nil && perr == nil {
				m = p.marker(peer.Bare(), c)
			}
			return d.Skip()
		})
	})
	if err == nil && m != nil {
		p.markers = append(p.markers, *m)
	}
	return err
}

// marker is the marker a <stanza-id/> makes for peer, or nil when its id is
// empty or too long, or it was assigned by neither the account nor peer.
func (p *itemsParser) marker(peer jid.JID, sid xml.StartElement) *Marker {
	id := attrValue(sid, "id")
	by, err := jid.Parse(attrValue(sid, "by"))
	if err != nil || id == "" || len(id) > MaxIDLen {
		return nil
	}
	by = by.Bare()
	if !by.Equal(p.account) && !by.Equal(peer) {
		return nil
	}
	return &Marker{Peer: peer, StanzaID: id, By: by}
}

// children hands each child element of the element whose start d just
// returned to f, which must consume it, and returns after its end.
func children(d *xml.Decoder, f func(start xml.StartElement) error) error {
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if err := f(t); err != nil {
				return err
			}
		case xml.EndElement:
			return nil
		}
	}
}

// attrValue returns the value of the unqualified attribute name.
func attrValue(start xml.StartElement, name string) string {
	for _, a := range start.Attr {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}
