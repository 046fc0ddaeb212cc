package login

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/sm"
)

// Success is the parsed SASL2 <success> (XEP-0388) with the inline results
// pipebind asks for.
type Success struct {
	AdditionalData []byte
	// AuthorizationIdentifier is the authenticated JID (full when bound).
	AuthorizationIdentifier jid.JID
	// Bound is non-nil when the server answered an inline Bind 2 request.
	Bound *Bound
	// Token is a FAST token (XEP-0484) issued in the success; its
	// Mechanism is empty (the one requested, or the one just used).
	Token *Token
	// TokenDropped says why a token the success carried was not kept (too
	// long, no valid expiry); empty otherwise.
	TokenDropped string
	// Resumed is non-nil when a stream management session was resumed
	// inline (XEP-0198 §SASL2).
	Resumed *Resumed
	// ResumeFailed is the condition of an inline <failed/> for a resume.
	ResumeFailed string
}

// Resumed is the <resumed xmlns='urn:xmpp:sm:3'/> inside <success>.
type Resumed struct {
	PrevID string
	// H is how many of the client's stanzas the server received.
	H uint32
}

// maxTokenLen bounds a FAST token the client will store.
const maxTokenLen = 4096

// Bound is the Bind 2 <bound xmlns='urn:xmpp:bind:0'> inside <success>.
type Bound struct {
	SM      SMState
	Carbons bool
}

type wireSuccess struct {
	AdditionalData *string `xml:"additional-data"`
	AuthzID        string  `xml:"authorization-identifier"`
	Bound          *struct {
		Enabled []struct {
			XMLName xml.Name
			sm.Enabled
		} `xml:"enabled"`
	} `xml:"urn:xmpp:bind:0 bound"`
	Token *struct {
		Token  string `xml:"token,attr"`
		Expiry string `xml:"expiry,attr"`
	} `xml:"urn:xmpp:fast:0 token"`
	Resumed *sm.Resumed `xml:"urn:xmpp:sm:3 resumed"`
	Failed  *sm.Failed  `xml:"urn:xmpp:sm:3 failed"`
}

// decodeSASL2Success decodes the <success> whose start has been read.
func decodeSASL2Success(d *xml.Decoder, start xml.StartElement) (Success, error) {
	var w wireSuccess
	if err := d.DecodeElement(&w, &start); err != nil {
		return Success{}, readError("sasl2 success", err)
	}
	return w.parse()
}

// ParseSASL2Success parses a serialized <success xmlns='urn:xmpp:sasl:2'>.
func ParseSASL2Success(data []byte) (Success, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.Token()
		if err != nil {
			return Success{}, protocolErrorf("sasl2 success: %v", err)
		}
		if start, ok := tok.(xml.StartElement); ok {
			if start.Name != (xml.Name{Space: NSSASL2, Local: "success"}) {
				return Success{}, protocolErrorf("expected sasl2 <success>, got <%s>", start.Name.Local)
			}
			return truncated(decodeSASL2Success(d, start))
		}
	}
}

func (w *wireSuccess) parse() (Success, error) {
	var s Success
	if w.AdditionalData != nil {
		p, err := decodeBase64(*w.AdditionalData)
		if err != nil {
			return s, err
		}
		s.AdditionalData = p
	}
	if w.AuthzID == "" {
		return s, protocolErrorf("sasl2 success without authorization-identifier")
	}
	j, err := jid.Parse(w.AuthzID)
	if err != nil {
		return s, protocolErrorf("sasl2 success: invalid authorization-identifier: %v", err)
	}
	s.AuthorizationIdentifier = j
	if t := w.Token; t != nil {
		// Authentication succeeded: a token the client cannot keep costs
		// the next login a password, not this one.
		exp, err := time.Parse(time.RFC3339Nano, t.Expiry)
		switch {
		case t.Token == "" || len(t.Token) > maxTokenLen:
			s.TokenDropped = fmt.Sprintf("the server's token is empty or longer than %d bytes", maxTokenLen)
		case err != nil:
			s.TokenDropped = fmt.Sprintf("the server's token has an invalid expiry %q", truncate(t.Expiry, 64))
		default:
			s.Token = &Token{Secret: []byte(t.Token), Expiry: exp}
		}
	}
	if r := w.Resumed; r != nil {
		id, h, err := r.Parse()
		if err != nil {
			return s, err
		}
		s.Resumed = &Resumed{PrevID: id, H: h}
	}
	if f := w.Failed; f != nil {
		s.ResumeFailed = f.Condition()
	}
	if w.Bound != nil {
		s.Bound = &Bound{}
		for _, e := range w.Bound.Enabled {
			switch e.XMLName.Space {
			case sm.NS:
				st, err := e.State()
				if err != nil {
					return s, err
				}
				s.Bound.SM = st
			case NSCarbons:
				s.Bound.Carbons = true
			}
		}
	}
	return s, nil
}

// saslFailure decodes a <failure> (SASL or SASL2) whose start has been read.
func saslFailure(d *xml.Decoder, start xml.StartElement) error {
	var e struct {
		Inner []struct {
			XMLName xml.Name
			Text    string `xml:",chardata"`
		} `xml:",any"`
	}
	if err := d.DecodeElement(&e, &start); err != nil {
		return readError("sasl failure", err)
	}
	f := &SASLError{Condition: "undefined-condition"}
	for _, in := range e.Inner {
		switch {
		case in.XMLName.Local == "text":
			f.Text = truncate(in.Text, 512)
		case in.XMLName.Space == NSSASL:
			f.Condition = in.XMLName.Local
		}
	}
	return f
}

// sasl2 runs the SASL2 exchange after the <authenticate> was written, then
// reads the post-authentication features.
func (n *negotiation) sasl2(ctx context.Context, r *reader, p plan) error {
	succ, err := n.sasl2Exchange(r, &p)
	if err != nil {
		return err
	}
	if !succ.AuthorizationIdentifier.Bare().Equal(n.bare) {
		return protocolErrorf("authenticated as %s, expected %s", succ.AuthorizationIdentifier.Bare(), n.bare)
	}
	n.log.Debug().Str("mechanism", p.mech).Bool("fast", p.fast).Msg("sasl2 success")
	n.res.FAST = p.fast
	n.res.AfterAuthSent = n.afterWritten && !n.tokenRefused
	n.acceptToken(p, succ)
	if resumed, err := n.resumedInline(succ); resumed || err != nil {
		return err
	}
	return n.afterSASL2(ctx, r, p, succ)
}

// sasl2Exchange reads the server's SASL2 answers up to <success>: challenges
// are answered, and a refused FAST token falls back to the password on the
// same stream.
func (n *negotiation) sasl2Exchange(r *reader, p *plan) (Success, error) {
	n.step = StepAuth
	for {
		start, err := r.next()
		if err != nil {
			if n.res.TokenRejected != "" {
				return Success{}, fmt.Errorf("%w (%w), and the password could not follow on the same stream: %w", ErrTokenRejected, &SASLError{Condition: n.res.TokenRejected}, err)
			}
			return Success{}, err
		}
		switch start.Name {
		case xml.Name{Space: NSSASL2, Local: "challenge"}:
			if err := n.challenge(r, start, p, NSSASL2); err != nil {
				return Success{}, err
			}
		case xml.Name{Space: NSSASL2, Local: "success"}:
			succ, err := decodeSASL2Success(r.d, start)
			if err != nil {
				return Success{}, err
			}
			return succ, n.finishSASL(p, succ.AdditionalData)
		case xml.Name{Space: NSSASL2, Local: "failure"}:
			ferr := saslFailure(r.d, start)
			if !p.fast {
				return Success{}, ferr
			}
			// XEP-0484: a refused token is discarded and the login falls
			// back to the password; XEP-0388 lets it happen on this stream.
			if *p, err = n.tokenFallback(ferr); err != nil {
				return Success{}, err
			}
		case xml.Name{Space: NSSASL2, Local: "continue"}:
			return Success{}, fmt.Errorf("%w: the server asks for SASL2 tasks (<continue/>), which pipebind does not support", ErrRefused)
		case xml.Name{Space: NSClient, Local: "iq"}, xml.Name{Space: NSClient, Local: "presence"}, xml.Name{Space: NSClient, Local: "message"}:
			if !n.afterWritten || !n.tokenRefused {
				return Success{}, protocolErrorf("unexpected <%s> during SASL2", start.Name.Local)
			}
			// An answer to Config.AfterAuth, which rode with the refused
			// token: the caller sends them again.
			if err := r.d.Skip(); err != nil {
				return Success{}, err
			}
		default:
			return Success{}, protocolErrorf("unexpected <%s xmlns='%s'> during SASL2", start.Name.Local, start.Name.Space)
		}
	}
}

// acceptToken takes the FAST token of a success: a requested token is
// bound to the mechanism asked for; an unrequested one rotates the token
// just used (XEP-0484 §Rotation). A token the client cannot keep is dropped
// with a warning; the login goes on.
func (n *negotiation) acceptToken(p plan, succ Success) {
	if succ.TokenDropped != "" {
		n.res.TokenDropped = succ.TokenDropped
		n.log.Warn().Str("reason", succ.TokenDropped).Msg("FAST token dropped; the next login uses the password")
	}
	t := succ.Token
	if t == nil {
		return
	}
	switch {
	case p.reqTok != "":
		t.Mechanism = p.reqTok
	case p.fast:
		t.Mechanism = p.mech
	}
	if t.Mechanism == "" {
		n.log.Debug().Msg("ignoring a FAST token that was neither requested nor a rotation")
		return
	}
	n.res.NewToken = t
}

// resumedInline applies an inline stream management answer (XEP-0198
// §SASL2) and reports whether the session was resumed: the stream is then
// re-established right after </success>; no features follow and nothing
// was bound.
func (n *negotiation) resumedInline(succ Success) (bool, error) {
	if (succ.Resumed != nil || succ.ResumeFailed != "") && !n.resumeSent {
		return false, protocolErrorf("sm resume answered but none was requested")
	}
	n.res.ResumeFailed = succ.ResumeFailed
	rs := succ.Resumed
	if rs == nil {
		return false, nil
	}
	if rs.PrevID != n.cfg.Resume.ID {
		return false, protocolErrorf("sm resumed %q, requested %q", rs.PrevID, n.cfg.Resume.ID)
	}
	n.res.Resumed, n.res.ResumedH = true, rs.H
	n.res.JID = succ.AuthorizationIdentifier
	if n.res.JID.Resourcepart() == "" {
		n.res.JID = n.cfg.Resume.JID
	}
	if n.res.JID.Resourcepart() == "" {
		return false, protocolErrorf("sm resumed but the session's full JID is unknown")
	}
	n.res.SM = SMState{Enabled: true, ID: rs.PrevID, Resumable: true}
	n.conn.DropStrayFeatures() // Prosody 13 sends features anyway
	return true, nil
}

// afterSASL2 reads the features that follow <success> (XEP-0388: no
// restart) and takes the inline Bind 2 result, or binds the classic way on
// this stream.
func (n *negotiation) afterSASL2(ctx context.Context, r *reader, p plan, succ Success) error {
	n.step = StepFeatures
	start, err := r.next()
	if err != nil {
		return err
	}
	if start.Name != (xml.Name{Space: NSStream, Local: "features"}) {
		return protocolErrorf("expected <stream:features> after sasl2 success, got <%s>", start.Name.Local)
	}
	post, err := decodeFeatures(r.d, start)
	if err != nil {
		return err
	}
	mergePostAuth(&n.res.Features, post)
	if succ.Bound != nil {
		if succ.AuthorizationIdentifier.Resourcepart() == "" {
			return protocolErrorf("bound without a full JID in authorization-identifier")
		}
		n.res.JID = succ.AuthorizationIdentifier
		n.res.SM = succ.Bound.SM
		// Servers enable carbons requested inline silently (ejabberd does
		// not echo them): requested and bound means enabled.
		n.res.Carbons = succ.Bound.Carbons || n.requestedCarbons(p)
		return nil
	}
	if !post.ClassicBind {
		return protocolErrorf("authenticated but neither bound nor offered resource binding")
	}
	return n.bindClassic(ctx, r, post)
}

func (n *negotiation) requestedCarbons(p plan) bool {
	return !n.cfg.NoCarbons && p.f.Bind2 && containsString(p.f.Bind2Inline, NSCarbons)
}

// challenge answers a SASL challenge (ns is the SASL or SASL2 namespace).
func (n *negotiation) challenge(r *reader, start xml.StartElement, p *plan, ns string) error {
	var text string
	if err := r.d.DecodeElement(&text, &start); err != nil {
		return readError("challenge", err)
	}
	data, err := decodeBase64(text)
	if err != nil {
		return err
	}
	if !p.more {
		return protocolErrorf("unexpected SASL challenge after the final client message")
	}
	more, resp, err := p.neg.Step(data)
	if err != nil {
		if errors.Is(err, ErrDowngrade) || errors.Is(err, ErrScramIterations) {
			return fmt.Errorf("%w: %s: %w", ErrInsecure, p.mech, err)
		}
		return fmt.Errorf("%w: %s: %v", ErrProtocol, p.mech, err)
	}
	p.more = more
	p.sent++
	var b bytes.Buffer
	b.WriteString("<response xmlns='")
	b.WriteString(ns)
	b.WriteString("'>")
	writeBase64(&b, resp)
	b.WriteString("</response>")
	return n.write(n.appendAfterResponse(p, b.Bytes()))
}

// appendAfterResponse lets a path pipeline more after the final SASL
// response: the v0.3.0 draft its restart and bind, then Config.AfterAuth.
func (n *negotiation) appendAfterResponse(p *plan, resp []byte) []byte {
	if p.path == PathBind2Draft && p.finalClientMessage() {
		resp = append(resp, n.draftRestart()...)
	}
	return n.appendAfterAuth(p, resp)
}

// finishSASL verifies the server's final message: a mechanism that expects
// one (SCRAM's server signature) fails without it.
func (n *negotiation) finishSASL(p *plan, data []byte) error {
	if !p.more {
		return nil
	}
	if data == nil {
		return fmt.Errorf("%w: %s: the server's success carries no signature to verify", ErrProtocol, p.mech)
	}
	more, _, err := p.neg.Step(data)
	if err != nil {
		return fmt.Errorf("%w: %s: the server's signature did not verify: %v", ErrProtocol, p.mech, err)
	}
	p.more = more
	return nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// tokenFallback handles the server's refusal of Config.Token: it records
// the condition, plans a password login from the live features and writes
// its <authenticate> on the same stream (XEP-0484: discard the token and
// fall back; XEP-0388 keeps the stream open after a failure).
func (n *negotiation) tokenFallback(ferr error) (plan, error) {
	var se *SASLError
	if !errors.As(ferr, &se) {
		return plan{}, ferr
	}
	n.res.TokenRejected = se.Condition
	n.tokenRefused = true
	n.log.Debug().Str("condition", se.Condition).Msg("FAST token refused; falling back to the password")
	if n.cfg.Password == "" {
		return plan{}, fmt.Errorf("%w (%s) and no password to fall back to: %w", ErrTokenRejected, se.Condition, ferr)
	}
	p, err := n.plan(n.res.Features)
	if err != nil {
		return plan{}, err
	}
	if p.path != PathSASL2 {
		return plan{}, fmt.Errorf("%w (%s): the password login would need another path (%s)", ErrTokenRejected, se.Condition, p.path)
	}
	burst, err := n.firstAuth(&p)
	if err != nil {
		return plan{}, err
	}
	if err := n.write(burst); err != nil {
		return plan{}, err
	}
	n.res.Mechanism = p.mech
	return p, nil
}
