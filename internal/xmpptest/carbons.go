package xmpptest

import "mellium.im/xmpp/jid"

// XEP-0280: Message Carbons, enabled by IQ or inline in Bind 2 (bind2.go).

func init() {
	registerIQ("set", nsCarbons, "enable", false, (*conn).iqCarbons)
	registerIQ("set", nsCarbons, "disable", false, (*conn).iqCarbons)
}

func (c *conn) iqCarbons(_, p *element) (*element, *stanzaError) {
	c.carbons.Store(p.name.Local == "enable")
	return nil, nil
}

// carbonEligible applies XEP-0280 §6: chat messages that are not private,
// not marked no-copy and not carbons themselves.
func carbonEligible(m *element) bool {
	return m.attrValue("type") == "chat" &&
		m.child(nsCarbons, "private") == nil &&
		m.child(nsHints, "no-copy") == nil &&
		m.child(nsCarbons, "sent") == nil &&
		m.child(nsCarbons, "received") == nil
}

// carbonCopies sends <sent/> copies to the sender's other carbons-enabled
// sessions and, for a message to a full JID, <received/> copies to the
// recipient's other carbons-enabled sessions. got are the sessions that
// received the message itself.
func (c *conn) carbonCopies(sent, delivered *element, to jid.JID, got []*conn) {
	if !carbonEligible(sent) {
		return
	}
	skip := map[*conn]bool{c: true}
	for _, g := range got {
		skip[g] = true
	}
	for _, o := range c.srv.sessionsOf(c.bare) {
		if !skip[o] && o.carbons.Load() {
			o.deliver(carbon("sent", c.bare, o.jid, sent))
			skip[o] = true
		}
	}
	if to.Resourcepart() == "" {
		return // a bare JID already reached every session
	}
	for _, o := range c.srv.sessionsOf(to.Bare()) {
		if !skip[o] && o.carbons.Load() {
			o.deliver(carbon("received", to.Bare(), o.jid, delivered))
		}
	}
}

// carbon wraps m (XEP-0297 forwarded) for the session to of owner's account.
func carbon(kind string, owner, to jid.JID, m *element) *element {
	return newElement(nsClient, "message", "from", owner.String(), "to", to.String(), "type", m.attrValue("type")).add(
		newElement(nsCarbons, kind).add(
			newElement(nsForward, "forwarded").add(m.clone())))
}
