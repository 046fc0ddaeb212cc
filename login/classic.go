package login

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/features"
	"github.com/pipebind/pipebind/sm"
)

// classic runs RFC 6120 SASL after the <auth> was written, restarts the
// stream, binds a resource and enables carbons and stream management.
func (n *negotiation) classic(ctx context.Context, r *reader, p plan) error {
	if err := n.saslClassic(r, &p); err != nil {
		return err
	}
	// RFC 6120 §6.4.6: after success the client restarts the stream. Never
	// pipelined before the success: real servers drop or break on it.
	n.step = StepRestart
	if err := n.write(n.header()); err != nil {
		return err
	}
	if err := r.header(); err != nil {
		return err
	}
	n.step = StepFeatures
	start, err := r.next()
	if err != nil {
		return err
	}
	if start.Name != (xml.Name{Space: NSStream, Local: "features"}) {
		return protocolErrorf("expected <stream:features> after restart, got <%s>", start.Name.Local)
	}
	post, err := decodeFeatures(r.d, start)
	if err != nil {
		return err
	}
	mergePostAuth(&n.res.Features, post)
	if post.Bind2Draft && n.cfg.Path != PathClassic {
		// A v0.3.0 server that advertises bind2:0 only after authentication:
		// bind with it now (carbons, latest-id and unreads come with it) and
		// the cache makes the next login one pipelined write.
		n.res.Path = PathBind2Draft
		if err := n.write([]byte("<bind xmlns='urn:xmpp:bind2:0'/>")); err != nil {
			return err
		}
		return n.readDraftBound(r)
	}
	if !post.ClassicBind {
		return protocolErrorf("the server offers no resource binding after authentication")
	}
	return n.bindClassic(ctx, r, post)
}

// saslClassic runs the urn:ietf:params:xml:ns:xmpp-sasl exchange.
func (n *negotiation) saslClassic(r *reader, p *plan) error {
	n.step = StepAuth
	for {
		start, err := r.next()
		if err != nil {
			return err
		}
		switch start.Name {
		case xml.Name{Space: NSSASL, Local: "challenge"}:
			if err := n.challenge(r, start, p, NSSASL); err != nil {
				return err
			}
		case xml.Name{Space: NSSASL, Local: "success"}:
			var text string
			if err := r.d.DecodeElement(&text, &start); err != nil {
				return readError("success", err)
			}
			data, err := decodeBase64(text)
			if err != nil {
				return err
			}
			if err := n.finishSASL(p, data); err != nil {
				return err
			}
			n.log.Debug().Str("mechanism", p.mech).Msg("sasl success")
			return nil
		case xml.Name{Space: NSSASL, Local: "failure"}:
			return saslFailure(r.d, start)
		default:
			return protocolErrorf("unexpected <%s xmlns='%s'> during SASL", start.Name.Local, start.Name.Space)
		}
	}
}

// bindClassic binds a resource with an IQ (RFC 6120 §7), then enables
// carbons (XEP-0280) and stream management (XEP-0198) in one write.
func (n *negotiation) bindClassic(_ context.Context, r *reader, post features.Features) error {
	n.step = StepBind
	var b bytes.Buffer
	b.WriteString("<iq type='set' id='pb-bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>")
	if n.cfg.Resource != "" {
		b.WriteString("<resource>")
		escapeAttr(&b, n.cfg.Resource)
		b.WriteString("</resource>")
	}
	b.WriteString("</bind></iq>")
	if err := n.write(b.Bytes()); err != nil {
		return err
	}
	var res struct {
		JID string `xml:"urn:ietf:params:xml:ns:xmpp-bind bind>jid"`
	}
	if err := n.readIQResult(r, "pb-bind", &res); err != nil {
		return fmt.Errorf("resource binding: %w", err)
	}
	j, err := jid.Parse(res.JID)
	if err != nil || j.Resourcepart() == "" || !j.Bare().Equal(n.bare) {
		return protocolErrorf("resource binding returned %q for %s", truncate(res.JID, 128), n.bare)
	}
	n.res.JID = j
	return n.enableAfterBind(r, post)
}

// enableAfterBind enables carbons and stream management in one write and
// reads the two answers in whatever order they come: RFC 6120 does not order
// a nonza against an IQ result, and ejabberd 24.12 answers <enabled/> first
// where Prosody answers the IQ first.
func (n *negotiation) enableAfterBind(r *reader, post features.Features) error {
	n.step = StepEnable
	wantCarbons := !n.cfg.NoCarbons
	wantSM := !n.cfg.NoSM && post.SM
	var b []byte
	if wantCarbons {
		b = append(b, "<iq type='set' id='pb-carbons'><enable xmlns='urn:xmpp:carbons:2'/></iq>"...)
	}
	if wantSM {
		b = sm.AppendEnable(b, true)
	}
	if len(b) == 0 {
		return nil
	}
	if err := n.write(b); err != nil {
		return err
	}
	for wantCarbons || wantSM {
		start, err := r.next()
		if err != nil {
			return err
		}
		switch {
		case wantCarbons && start.Name == xml.Name{Space: NSClient, Local: "iq"}:
			wantCarbons = false
			err = n.carbonsAnswer(r, start)
		case wantSM && start.Name.Space == sm.NS:
			wantSM = false
			err = n.smAnswer(r, start)
		default:
			err = protocolErrorf("unexpected <%s xmlns='%s'> while enabling carbons and stream management", start.Name.Local, start.Name.Space)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// carbonsAnswer reads the answer to the carbons IQ, whose start was read. An
// error answer is not fatal: the server has no carbons.
func (n *negotiation) carbonsAnswer(r *reader, start xml.StartElement) error {
	err := n.iqAnswer(r, start, "pb-carbons", nil)
	var se *stanzaError
	switch {
	case err == nil:
		n.res.Carbons = true
	case asStanzaError(err, &se):
		n.log.Debug().Str("condition", se.Condition).Msg("carbons not enabled")
	default:
		return err
	}
	return nil
}

// smAnswer reads <enabled/> or <failed/>, whose start was read. From
// <enabled/> on, the stanzas the client reads count for stream management
// (XEP-0198 §4): an IQ answer after it is the session's first.
func (n *negotiation) smAnswer(r *reader, start xml.StartElement) error {
	switch start.Name.Local {
	case "enabled":
		var e sm.Enabled
		if err := r.d.DecodeElement(&e, &start); err != nil {
			return readError("sm enabled", err)
		}
		st, err := e.State()
		if err != nil {
			return err
		}
		n.res.SM = st
		n.conn.CountStanzas()
		return nil
	case "failed":
		if err := r.d.Skip(); err != nil {
			return err
		}
		n.log.Debug().Msg("stream management not enabled")
		return nil
	}
	return protocolErrorf("unexpected <%s xmlns='%s'> while enabling stream management", start.Name.Local, start.Name.Space)
}

// stanzaError is an IQ error answer during the login.
type stanzaError struct {
	Type      string
	Condition string
}

func (e *stanzaError) Error() string {
	return fmt.Sprintf("stanza error: %s (%s)", e.Condition, e.Type)
}

func asStanzaError(err error, target **stanzaError) bool {
	se, ok := err.(*stanzaError)
	if ok {
		*target = se
	}
	return ok
}

// readIQResult reads the answer to the IQ with id; v (may be nil) receives a
// result's payload. Any other element is a protocol error: during the login
// nothing else may arrive, and nothing is silently dropped.
func (n *negotiation) readIQResult(r *reader, id string, v any) error {
	start, err := r.next()
	if err != nil {
		return err
	}
	return n.iqAnswer(r, start, id, v)
}

// iqAnswer reads the answer to the IQ with id, whose start was read.
func (n *negotiation) iqAnswer(r *reader, start xml.StartElement, id string, v any) error {
	if start.Name.Local != "iq" || start.Name.Space != NSClient {
		return protocolErrorf("unexpected <%s xmlns='%s'> while waiting for IQ %s", start.Name.Local, start.Name.Space, id)
	}
	var typ, gotID string
	for _, a := range start.Attr {
		switch a.Name.Local {
		case "type":
			typ = a.Value
		case "id":
			gotID = a.Value
		}
	}
	if gotID != id {
		return protocolErrorf("unexpected IQ %q while waiting for IQ %s", truncate(gotID, 64), id)
	}
	switch typ {
	case "result":
		if v == nil {
			return r.d.Skip()
		}
		if err := r.d.DecodeElement(v, &start); err != nil {
			return protocolErrorf("IQ %s: %v", id, err)
		}
		return nil
	case "error":
		var e struct {
			Error struct {
				Type  string `xml:"type,attr"`
				Inner []struct {
					XMLName xml.Name
				} `xml:",any"`
			} `xml:"error"`
		}
		if err := r.d.DecodeElement(&e, &start); err != nil {
			return protocolErrorf("IQ %s: %v", id, err)
		}
		se := &stanzaError{Type: e.Error.Type, Condition: "undefined-condition"}
		for _, in := range e.Error.Inner {
			if in.XMLName.Space == NSStanzaErrors && in.XMLName.Local != "text" {
				se.Condition = in.XMLName.Local
			}
		}
		return se
	}
	return protocolErrorf("IQ %s answered with type %q", id, truncate(typ, 32))
}
