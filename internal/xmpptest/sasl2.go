package xmpptest

import (
	"strings"

	"mellium.im/xmpp/jid"
)

// XEP-0388: Extensible SASL Profile (SASL2). Authentication completes with
// <success/> followed directly by the features of the authenticated stream:
// no stream restart.

func init() {
	register(stateAuth, nsSASL2, "authenticate", (*conn).handleAuthenticate)
	register(stateSASL2, nsSASL2, "response", (*conn).handleSASL2Response)
	register(stateSASL2, nsSASL2, "abort", (*conn).handleSASL2Abort)
}

// authRequest is a parsed <authenticate/>: what to do once authenticated.
type authRequest struct {
	ua           UserAgent
	bind         *bindRequest // XEP-0386 inline bind, nil if absent
	resume       *element     // XEP-0198 inline <resume/>, nil if absent
	fast         *element     // XEP-0484 <fast/>: authenticating with a token
	requestToken string       // XEP-0484 <request-token/> 'mechanism', "" if absent
	other        []*element   // inline requests this server does not know
}

func parseAuthenticate(el *element) *authRequest {
	r := &authRequest{}
	for _, ch := range el.children() {
		switch {
		case ch.is(nsSASL2, "initial-response"):
		case ch.is(nsSASL2, "user-agent"):
			r.ua.ID = ch.attrValue("id")
			if s := ch.child(nsSASL2, "software"); s != nil {
				r.ua.Software = s.text()
			}
			if d := ch.child(nsSASL2, "device"); d != nil {
				r.ua.Device = d.text()
			}
		case ch.is(nsBind2, "bind"):
			r.bind = parseBind2(ch)
		case ch.is(nsSM, "resume"):
			r.resume = ch
		case ch.is(nsFAST, "fast"):
			r.fast = ch
		case ch.is(nsFAST, "request-token"):
			r.requestToken = ch.attrValue("mechanism")
		default:
			r.other = append(r.other, ch)
		}
	}
	return r
}

func (c *conn) handleAuthenticate(el *element) error {
	if c.cfg.NoSASL2 {
		return c.unhandled(el)
	}
	req := parseAuthenticate(el)
	c.log.set(func(l *ConnLog) { l.ua = req.ua })
	mech := el.attrValue("mechanism")
	var auth authenticator
	var serr *saslError
	if strings.HasPrefix(mech, "HT-") {
		auth, serr = c.newFASTAuth(mech, req)
	} else {
		auth, serr = c.newAuthenticator(mech)
	}
	if serr != nil {
		if strings.HasPrefix(mech, "HT-") {
			c.srv.count(c.fromLocalpart(), func(st *LoginStats) { st.FASTFailed++ })
		}
		return c.sasl2Failure(serr)
	}
	c.exch = &exchange{mech: mech, auth: auth, sasl2: req}
	ir := el.child(nsSASL2, "initial-response")
	if ir == nil {
		// Client-first mechanisms without an initial response: ask for it.
		c.state = stateSASL2
		return c.send(newElement(nsSASL2, "challenge"))
	}
	data, serr := decodeSASL(ir.text())
	if serr != nil {
		return c.sasl2Failure(serr)
	}
	return c.sasl2Step(data)
}

func (c *conn) handleSASL2Response(el *element) error {
	data, serr := decodeSASL(el.text())
	if serr != nil {
		return c.sasl2Failure(serr)
	}
	return c.sasl2Step(data)
}

func (c *conn) handleSASL2Abort(*element) error {
	return c.sasl2Failure(&saslError{cond: "aborted"})
}

// sasl2Step feeds client data to the mechanism and answers with a
// challenge, a success or a failure.
func (c *conn) sasl2Step(data []byte) error {
	out, done, serr := c.exch.auth.next(data)
	switch {
	case serr != nil:
		return c.sasl2Failure(serr)
	case !done:
		c.state = stateSASL2
		return c.send(newElement(nsSASL2, "challenge").addText(encodeSASL(out)))
	}
	return c.sasl2Success(out)
}

// sasl2Failure ends the attempt; the client may try again on this stream,
// with any mechanism (XEP-0388 §failure: nothing inline was processed).
func (c *conn) sasl2Failure(serr *saslError) error {
	if c.exch != nil {
		if _, ok := c.exch.auth.(*fastAuth); ok {
			c.srv.count(c.fromLocalpart(), func(st *LoginStats) { st.FASTFailed++ })
		}
	}
	c.exch = nil
	c.state = stateAuth
	f := newElement(nsSASL2, "failure").add(newElement(nsSASL, serr.cond))
	if serr.text != "" {
		f.add(newElement(nsSASL2, "text").addText(serr.text))
	}
	if err := c.send(f); err != nil || !c.fault.CloseAfterSASL2Failure {
		return err
	}
	_ = c.writeRaw(streamName, true, []byte("</stream:stream>"))
	return errFaultAuthClosed
}

// sasl2Success processes the inline requests (XEP-0388 §success: after
// authentication, before <success/>), then sends <success/> and the
// features of the authenticated stream. An inline XEP-0198 <resume/> comes
// first; when it succeeds, the inline <bind/> is ignored, <success/> holds
// <resumed/>, and no features follow (XEP-0198 §inline-resume) unless
// Config.SMResumeFeatures. When it fails, <success/> holds <failed/> and
// the bind is processed.
func (c *conn) sasl2Success(additional []byte) error {
	ex := c.exch
	c.exch = nil
	local, _ := ex.auth.identity()
	if err := c.authenticated(local, ex.mech); err != nil {
		return err
	}
	c.state = stateAuthed
	req := ex.sasl2

	var extra []*element
	var resumed *resumption
	if req.resume != nil {
		res, r, err := c.resumeSM(req.resume)
		if err != nil {
			return err
		}
		extra = append(extra, res)
		resumed = r
	}
	authzid := c.bare.String()
	switch {
	case resumed != nil:
		authzid = c.jid.String()
	case req.bind != nil && !c.cfg.NoBind2:
		bound, err := c.bind2(req.bind, req.ua.ID)
		if err != nil {
			return err
		}
		extra = append(extra, bound)
		authzid = c.jid.String()
	}
	extra = append(extra, c.fastTokenFor(ex))

	s := newElement(nsSASL2, "success")
	if additional != nil {
		s.add(newElement(nsSASL2, "additional-data").addText(encodeSASL(additional)))
	}
	s.add(newElement(nsSASL2, "authorization-identifier").addText(authzid))
	s.add(extra...)
	if err := c.beforeSuccess(); err != nil {
		return err
	}
	if resumed != nil {
		return c.completeResume(s, resumed, true)
	}
	if err := c.send(s); err != nil {
		return err
	}
	if c.bound {
		c.state = stateBound
	}
	if err := c.sendFeatures(); err != nil {
		return err
	}
	c.markReady()
	return nil
}

// fromLocalpart is the localpart of the stream's 'from', for counting
// failed logins of a user who may not have authenticated.
func (c *conn) fromLocalpart() string {
	if j, err := jid.Parse(c.streamFrom); err == nil {
		return j.Localpart()
	}
	return ""
}
