package xmpptest

import (
	"strings"

	"mellium.im/xmpp/jid"
)

// Session registry and stanza routing (RFC 6120 §8, RFC 6121 §8) between the
// users of one server, with XEP-0359 stanza ids. There is no roster, no
// presence broadcast, no offline storage and no server-to-server: a message
// to a known user with no session is dropped, one to another domain bounces
// with remote-server-not-found.

func init() {
	register(stateAuthed, nsClient, "iq", (*conn).handleIQ)
	register(stateBound, nsClient, "iq", (*conn).handleIQ)
	register(stateBound, nsClient, "message", (*conn).handleMessage)
	register(stateBound, nsClient, "presence", (*conn).handlePresence)
	registerIQ("get", nsPing, "ping", false, (*conn).iqPing)
	registerIQ("get", nsDiscoInfo, "query", false, (*conn).iqDiscoInfo)
}

// bindResource binds res, or res with a random suffix if it is taken, and
// registers the session. Stanzas routed to it are queued until markReady,
// when the client has been told its JID.
func (c *conn) bindResource(res string) error {
	if c.cfg.StableResources {
		return c.bindStable(res)
	}
	if err := c.srv.bindSession(c, res); err != nil {
		if err := c.srv.bindSession(c, randomID(8)); err != nil {
			return &streamError{cond: "internal-server-error", text: "cannot bind a resource"}
		}
	}
	j := c.jid.String()
	c.log.set(func(l *ConnLog) { l.jid = j })
	return nil
}

func (s *Server) bindSession(c *conn, res string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reapLocked()
	bare := c.bare.String()
	m := s.sessions[bare]
	if m == nil {
		m = make(map[string]*conn)
		s.sessions[bare] = m
	}
	j, err := c.bare.WithResource(res)
	for err == nil && m[j.Resourcepart()] != nil {
		j, err = c.bare.WithResource(res + "." + randomID(3))
	}
	if err != nil {
		return err
	}
	c.jid, c.bound = j, true
	m[j.Resourcepart()] = c
	return nil
}

// bindStable binds exactly res (Config.StableResources): a session that
// holds it is ended with a conflict stream error, as Prosody's default
// conflict_resolve (kick_old) does.
func (c *conn) bindStable(res string) error {
	s := c.srv
	j, err := c.bare.WithResource(res)
	if err != nil {
		return &streamError{cond: "internal-server-error", text: "cannot bind a resource"}
	}
	s.mu.Lock()
	s.reapLocked()
	bare := c.bare.String()
	old := s.sessions[bare][res]
	if old != nil {
		s.unbindLocked(old) // may drop the account's map when it empties
	}
	m := s.sessions[bare]
	if m == nil {
		m = make(map[string]*conn)
		s.sessions[bare] = m
	}
	c.jid, c.bound = j, true
	m[res] = c
	s.mu.Unlock()
	if old != nil {
		old.cut(&streamError{cond: "conflict", text: "replaced by a new session"})
	}
	full := j.String()
	c.log.set(func(l *ConnLog) { l.jid = full })
	return nil
}

// unbindLocked removes the connection's session, if any, and ends its
// stream management session; a detached one leaves a tombstone with its
// final 'h' (sm.go). Called with s.mu held.
func (s *Server) unbindLocked(c *conn) {
	if !c.bound {
		return
	}
	bare := c.bare.String()
	if m := s.sessions[bare]; m != nil && m[c.jid.Resourcepart()] == c {
		delete(m, c.jid.Resourcepart())
		if len(m) == 0 {
			delete(s.sessions, bare)
		}
	}
	if c.sm.id != "" && s.smIndex[c.sm.id] == c {
		delete(s.smIndex, c.sm.id)
		if c.detached {
			s.smGone[c.sm.id] = smTombstone{user: c.user, h: c.smH.Load()}
		}
	}
	delete(s.detached, c)
	c.detached = false
}

// sessionsOf returns the sessions bound to a bare JID.
func (s *Server) sessionsOf(bare jid.JID) []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reapLocked()
	var out []*conn
	for _, c := range s.sessions[bare.String()] {
		out = append(out, c)
	}
	return out
}

// session returns the session bound to a full JID, or nil.
func (s *Server) session(full jid.JID) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reapLocked()
	return s.sessions[full.Bare().String()][full.Resourcepart()]
}

// stanzaError is an RFC 6120 §8.3 stanza error.
type stanzaError struct {
	typ, cond string
}

var (
	errServiceUnavailable = &stanzaError{typ: "cancel", cond: "service-unavailable"}
	errBadRequest         = &stanzaError{typ: "modify", cond: "bad-request"}
	errJIDMalformed       = &stanzaError{typ: "modify", cond: "jid-malformed"}
	errRemoteNotFound     = &stanzaError{typ: "cancel", cond: "remote-server-not-found"}
)

// bounce answers a stanza with an error. Errors (and IQ results) are never
// answered.
func (c *conn) bounce(el *element, se *stanzaError) error {
	typ := el.attrValue("type")
	if typ == "error" || (el.name.Local == "iq" && typ == "result") {
		return nil
	}
	reply := newElement(nsClient, el.name.Local,
		"type", "error", "id", el.attrValue("id"), "from", el.attrValue("to"))
	if c.bound {
		reply.setAttr("to", c.jid.String())
	}
	reply.add(newElement(nsClient, "error", "type", se.typ).add(newElement(nsStanzas, se.cond)))
	return c.send(reply)
}

// iqHandler serves an IQ get or set addressed to the server or the user's
// own account. It returns the result payload (nil for an empty result) or
// an error.
type iqHandler func(c *conn, iq, payload *element) (*element, *stanzaError)

type iqKey struct {
	typ  string
	name string // "{namespace}local"
}

type iqEntry struct {
	fn      iqHandler
	unbound bool // allowed before a resource is bound
}

var iqHandlers = map[iqKey]iqEntry{}

// registerIQ makes h serve IQs of type typ ("get" or "set") whose payload is
// {space}local.
func registerIQ(typ, space, local string, unbound bool, h iqHandler) {
	iqHandlers[iqKey{typ, "{" + space + "}" + local}] = iqEntry{fn: h, unbound: unbound}
}

func (c *conn) handleIQ(el *element) error {
	el.setAttr("from", "")
	if c.bound {
		el.setAttr("from", c.jid.String())
	}
	switch el.attrValue("type") {
	case "get", "set", "result", "error":
	default:
		return c.bounce(el, errBadRequest)
	}
	if to := el.attrValue("to"); to != "" && c.bound {
		t, err := jid.Parse(to)
		switch {
		case err != nil:
			return c.bounce(el, errJIDMalformed)
		case !strings.EqualFold(t.Domainpart(), c.cfg.Domain):
			return c.bounce(el, errRemoteNotFound)
		case t.Localpart() != "" && t.Resourcepart() != "":
			if dst := c.srv.session(t); dst != nil {
				dst.deliver(el)
				return nil
			}
			return c.bounce(el, errServiceUnavailable)
		case t.Localpart() != "" && !t.Bare().Equal(c.bare):
			// Another account: the server answers for it and knows nothing.
			return c.bounce(el, errServiceUnavailable)
		}
	}
	return c.serverIQ(el)
}

// serverIQ handles an IQ to the server or to the sender's own account.
func (c *conn) serverIQ(el *element) error {
	typ := el.attrValue("type")
	if typ == "result" || typ == "error" {
		c.probeAnswer(el) // the server's only requests are probes
		return nil
	}
	payloads := el.children()
	if len(payloads) != 1 {
		return c.bounce(el, errBadRequest)
	}
	p := payloads[0]
	h, ok := iqHandlers[iqKey{typ, "{" + p.name.Space + "}" + p.name.Local}]
	switch {
	case !ok:
		return c.bounce(el, errServiceUnavailable)
	case !c.bound && !h.unbound:
		return c.bounce(el, &stanzaError{typ: "auth", cond: "not-authorized"})
	}
	res, se := h.fn(c, el, p)
	if se != nil {
		return c.bounce(el, se)
	}
	reply := newElement(nsClient, "iq", "type", "result", "id", el.attrValue("id"), "from", el.attrValue("to"))
	if c.bound {
		reply.setAttr("to", c.jid.String())
	}
	reply.add(res)
	if c.cfg.SMEnabledFirst && p.is(nsCarbons, "enable") && !c.sm.enabled {
		c.heldResult = reply // sent after <enabled/> (handleSMEnable)
		return nil
	}
	if err := c.send(reply); err != nil {
		return err
	}
	c.markReady() // after a bind result, the session may receive stanzas
	return nil
}

// iqPing answers XEP-0199 pings.
func (c *conn) iqPing(_, _ *element) (*element, *stanzaError) { return nil, nil }

// iqDiscoInfo answers XEP-0030 disco#info for the server and for the
// user's own account (the bare JID hosting the MAM archive, XEP-0313
// §support).
func (c *conn) iqDiscoInfo(iq, p *element) (*element, *stanzaError) {
	if p.attrValue("node") != "" {
		return nil, &stanzaError{typ: "cancel", cond: "item-not-found"}
	}
	if c.toAccount(iq) {
		q := newElement(nsDiscoInfo, "query")
		q.add(newElement(nsDiscoInfo, "identity", "category", "account", "type", "registered"))
		for _, f := range []string{nsDiscoInfo, nsMAM, nsMAMExtended} {
			q.add(newElement(nsDiscoInfo, "feature", "var", f))
		}
		return q, nil
	}
	if to := iq.attrValue("to"); to != "" && !strings.EqualFold(to, c.cfg.Domain) {
		return nil, errServiceUnavailable
	}
	q := newElement(nsDiscoInfo, "query")
	q.add(newElement(nsDiscoInfo, "identity", "category", "server", "type", "im", "name", "xmpptest"))
	for _, f := range []string{nsDiscoInfo, nsCarbons, nsPing, nsSID} {
		q.add(newElement(nsDiscoInfo, "feature", "var", f))
	}
	return q, nil
}

func (c *conn) handleMessage(el *element) error {
	el.setAttr("from", c.jid.String())
	to := el.attrValue("to")
	if to == "" {
		return nil // to the sender's own account: nothing here handles it
	}
	t, err := jid.Parse(to)
	switch {
	case err != nil:
		return c.bounce(el, errJIDMalformed)
	case !strings.EqualFold(t.Domainpart(), c.cfg.Domain):
		return c.bounce(el, errRemoteNotFound)
	case t.Localpart() == "":
		return nil // to the server
	}
	if _, ok := c.srv.password(t.Localpart()); !ok {
		return c.bounce(el, errServiceUnavailable)
	}
	typ := el.attrValue("type")
	var recipients []*conn
	if t.Resourcepart() != "" {
		if dst := c.srv.session(t); dst != nil {
			recipients = []*conn{dst}
		} else if typ == "" || typ == "normal" || typ == "chat" {
			recipients = c.srv.sessionsOf(t.Bare()) // RFC 6121 §8.5.3.2.1
		}
	} else if typ != "error" && typ != "groupchat" {
		recipients = c.srv.sessionsOf(t.Bare())
	}
	delivered := el
	if typ != "error" {
		sid := c.srv.newStanzaID()
		delivered = withStanzaID(el, t.Bare(), sid)
		if body := el.child(nsClient, "body"); body != nil && typ != "groupchat" {
			c.srv.archiveRouted(c.user, t.Localpart(), c.bare.String(), t.Bare().String(),
				c.jid.String(), t.String(), typ, el.attrValue("id"), sid, body.text())
		}
	}
	for _, r := range recipients {
		r.deliver(delivered)
	}
	c.carbonCopies(el, delivered, t, recipients)
	return nil
}

// withStanzaID returns a copy of m carrying a XEP-0359 <stanza-id/> by the
// recipient's bare JID; stanza-ids claiming that 'by' from the sender are
// removed (XEP-0359 §Security).
func withStanzaID(m *element, by jid.JID, id string) *element {
	m = m.clone()
	b := by.String()
	m.removeChildren(func(e *element) bool { return e.is(nsSID, "stanza-id") && e.attrValue("by") == b })
	return m.add(newElement(nsSID, "stanza-id", "id", id, "by", b))
}

// handlePresence routes directed presence; broadcast presence (no 'to') is
// dropped, as there are no rosters.
func (c *conn) handlePresence(el *element) error {
	el.setAttr("from", c.jid.String())
	t, err := jid.Parse(el.attrValue("to"))
	if el.attrValue("to") == "" || err != nil || t.Localpart() == "" ||
		!strings.EqualFold(t.Domainpart(), c.cfg.Domain) {
		return nil
	}
	if t.Resourcepart() != "" {
		if dst := c.srv.session(t); dst != nil {
			dst.deliver(el)
		}
		return nil
	}
	for _, r := range c.srv.sessionsOf(t) {
		r.deliver(el)
	}
	return nil
}
