package xmpptest

import (
	"encoding/xml"
	"strings"

	"mellium.im/xmpp/jid"
)

// RFC 6120 §6 (SASL) and §7 (resource binding): the classic login. Success
// is followed by a stream restart; the restart header may already be
// buffered behind </auth>, which is why restart keeps the bufio.Reader.

func init() {
	register(stateAuth, nsSASL, "auth", (*conn).handleAuth)
	register(stateSASL, nsSASL, "response", (*conn).handleSASLResponse)
	register(stateSASL, nsSASL, "abort", (*conn).handleSASLAbort)
	registerIQ("set", nsBind, "bind", true, (*conn).iqBind)
	registerIQ("set", nsSession, "session", true, (*conn).iqSession)
}

func (c *conn) handleAuth(el *element) error {
	mech := el.attrValue("mechanism")
	auth, serr := c.newAuthenticator(mech)
	if serr != nil {
		return c.saslFailure(serr)
	}
	c.exch = &exchange{mech: mech, auth: auth}
	if strings.TrimSpace(el.text()) == "" {
		// No initial response ("=" would be an empty one): ask for it.
		c.state = stateSASL
		return c.send(newElement(nsSASL, "challenge"))
	}
	data, serr := decodeSASL(el.text())
	if serr != nil {
		return c.saslFailure(serr)
	}
	return c.saslStep(data)
}

func (c *conn) handleSASLResponse(el *element) error {
	data, serr := decodeSASL(el.text())
	if serr != nil {
		return c.saslFailure(serr)
	}
	return c.saslStep(data)
}

func (c *conn) handleSASLAbort(*element) error {
	return c.saslFailure(&saslError{cond: "aborted"})
}

func (c *conn) saslStep(data []byte) error {
	out, done, serr := c.exch.auth.next(data)
	switch {
	case serr != nil:
		return c.saslFailure(serr)
	case !done:
		c.state = stateSASL
		return c.send(newElement(nsSASL, "challenge").addText(encodeSASL(out)))
	}
	ex := c.exch
	c.exch = nil
	local, _ := ex.auth.identity()
	if err := c.authenticated(local, ex.mech); err != nil {
		return err
	}
	s := newElement(nsSASL, "success")
	if out != nil {
		s.addText(encodeSASL(out))
	}
	if err := c.beforeSuccess(); err != nil {
		return err
	}
	if err := c.send(s); err != nil {
		return err
	}
	c.state = stateAuthed
	c.restart()
	return nil
}

// saslFailure ends the attempt (RFC 6120 §6.4.5); the client may retry.
func (c *conn) saslFailure(serr *saslError) error {
	c.exch = nil
	c.state = stateAuth
	f := newElement(nsSASL, "failure").add(newElement(nsSASL, serr.cond))
	if serr.text != "" {
		t := newElement(nsSASL, "text").addText(serr.text)
		t.attr = append(t.attr, xmlLang("en"))
		f.add(t)
	}
	return c.send(f)
}

// iqBind is RFC 6120 §7 resource binding, with or without <resource/>.
// A resource already in use gets a random suffix (RFC 6120 §7.7.2.2
// leaves the choice to the server).
func (c *conn) iqBind(_, payload *element) (*element, *stanzaError) {
	if c.bound {
		return nil, &stanzaError{typ: "cancel", cond: "not-allowed"}
	}
	res := ""
	if r := payload.child(nsBind, "resource"); r != nil {
		res = r.text()
	}
	if res == "" {
		res = randomID(8)
	} else if _, err := jid.New(c.user, c.cfg.Domain, res); err != nil {
		return nil, &stanzaError{typ: "modify", cond: "bad-request"}
	}
	if err := c.bindResource(res); err != nil {
		return nil, &stanzaError{typ: "wait", cond: "internal-server-error"}
	}
	c.state = stateBound
	return newElement(nsBind, "bind").add(newElement(nsBind, "jid").addText(c.jid.String())), nil
}

// iqSession answers the obsolete RFC 3921 session request old clients send.
func (c *conn) iqSession(_, _ *element) (*element, *stanzaError) { return nil, nil }

// xmlLang is an xml:lang attribute.
func xmlLang(v string) xml.Attr { return xml.Attr{Name: name(nsXML, "lang"), Value: v} }
