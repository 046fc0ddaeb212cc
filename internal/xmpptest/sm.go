package xmpptest

import "strconv"

// XEP-0198: Stream Management. The server counts inbound stanzas and answers
// <r/>; it never requests acks itself and keeps no session for resumption
// (resumption always fails with item-not-found).

func init() {
	for _, st := range []connState{stateAuthed, stateBound} {
		register(st, nsSM, "enable", (*conn).handleSMEnable)
		register(st, nsSM, "resume", (*conn).handleSMResume)
		register(st, nsSM, "r", (*conn).handleSMRequest)
		register(st, nsSM, "a", (*conn).handleSMAck)
	}
}

type smState struct {
	enabled bool
	id      string
	h       uint32 // inbound stanzas handled since enable
}

// enableSM enables stream management and returns <enabled/>, or <failed/>
// when it is already on. Resumption is advertised only if asked for.
func (c *conn) enableSM(req *element) *element {
	if c.sm.enabled || !c.bound {
		return smFailed("unexpected-request")
	}
	c.sm = smState{enabled: true, id: randomID(12)}
	e := newElement(nsSM, "enabled", "id", c.sm.id)
	if r := req.attrValue("resume"); r == "true" || r == "1" {
		e.setAttr("resume", "true")
		e.setAttr("max", "300")
	}
	return e
}

// smFailed is <failed/> with a stanza error condition.
func smFailed(cond string) *element {
	return newElement(nsSM, "failed").add(newElement(nsStanzas, cond))
}

func (c *conn) handleSMEnable(el *element) error { return c.send(c.enableSM(el)) }

func (c *conn) handleSMResume(*element) error {
	if c.bound {
		return c.send(smFailed("unexpected-request"))
	}
	return c.send(smFailed("item-not-found"))
}

func (c *conn) handleSMRequest(*element) error {
	if !c.sm.enabled {
		return nil
	}
	return c.send(newElement(nsSM, "a", "h", strconv.FormatUint(uint64(c.sm.h), 10)))
}

func (c *conn) handleSMAck(*element) error { return nil }

// countInbound counts a handled stanza once stream management is on.
func (c *conn) countInbound(el *element) {
	if c.sm.enabled && isStanza(el) {
		c.sm.h++ // wraps at 2^32 as XEP-0198 requires
	}
}
