package login

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"time"

	"mellium.im/sasl"

	"github.com/pipebind/pipebind/features"
	"github.com/pipebind/pipebind/sm"
)

// plan is the login chosen from a set of features.
type plan struct {
	path   Path
	mech   string
	remote []string // the mechanisms offered on that path
	f      features.Features
	neg    *sasl.Negotiator
	more   bool   // the mechanism expects more server data
	sent   int    // client SASL messages sent so far
	fast   bool   // mech is Config.Token's FAST mechanism
	reqTok string // the FAST mechanism a token is requested for, or ""
}

// finalClientMessage reports whether the SASL message just produced is the
// client's last one (PLAIN: the first; SCRAM: the second, client-final).
func (p *plan) finalClientMessage() bool {
	if p.fast {
		return true // one message; the server's answer only proves it
	}
	if strings.HasPrefix(p.mech, "SCRAM-") {
		return p.sent >= 2
	}
	return !p.more
}

// plan chooses path and mechanism from features f. It never chooses
// something f does not offer, nor a mechanism the connection does not allow.
func (n *negotiation) plan(f features.Features) (plan, error) {
	p := plan{f: f, path: n.cfg.Path}
	if p.path == PathAuto {
		switch {
		case f.SASL2 && f.Bind2:
			p.path = PathSASL2
		case f.Bind2Draft && len(f.SASLMechanisms) > 0:
			p.path = PathBind2Draft
		case len(f.SASLMechanisms) > 0:
			p.path = PathClassic
		case f.SASL2:
			p.path = PathSASL2
		default:
			return p, fmt.Errorf("%w: the server offers no SASL mechanism", ErrRefused)
		}
	}
	switch p.path {
	case PathSASL2:
		if !f.SASL2 {
			return p, fmt.Errorf("%w: path sasl2 forced but the server does not offer SASL2", ErrRefused)
		}
		p.remote = f.SASL2Mechanisms
	case PathBind2Draft:
		if !f.Bind2Draft {
			return p, fmt.Errorf("%w: path bind2-draft forced but the server does not advertise urn:xmpp:bind2:0", ErrRefused)
		}
		p.remote = f.SASLMechanisms
	case PathClassic:
		p.remote = f.SASLMechanisms
	}
	if p.path == PathSASL2 && n.tokenUsable(f) {
		p.mech, p.fast = n.cfg.Token.Mechanism, true
		return p, nil
	}
	mech, ok := chooseMechanism(n.cfg.Mechanisms, p.remote, f.ChannelBindings, n.tls, n.cfg.InsecureAllowPlain)
	if !ok {
		if slices.Contains(p.remote, "PLAIN") && len(n.tls.VerifiedChains) == 0 && !n.cfg.InsecureAllowPlain {
			return p, fmt.Errorf("%w: the server offers only PLAIN among allowed mechanisms and its certificate was not verified", ErrInsecure)
		}
		return p, fmt.Errorf("%w: no acceptable SASL mechanism (offered %v, allowed %v)", ErrRefused, p.remote, n.cfg.Mechanisms)
	}
	if n.downgrade(mech, p.remote, f.ChannelBindings) {
		return p, &DowngradeError{Pinned: n.cfg.Pin, Mechanism: mech}
	}
	if n.cfg.Password == "" {
		return p, fmt.Errorf("%w: %w: %s needs it and Config.Password is empty", ErrAuth, ErrNeedPassword, mech)
	}
	p.mech = mech
	if p.path == PathSASL2 && n.cfg.RequestToken && n.cfg.UserAgent.ID != "" {
		p.reqTok, _ = ChooseFAST(f.FASTMechanisms, n.tls)
	}
	return p, nil
}

// downgrade reports whether mech, the best allowed mechanism of those the
// server offers, is weaker than the account's pin: what an attacker who
// strips the stronger mechanisms from the features would cause. When the
// server still offers a mechanism as strong as the pin and only the
// caller's own Config.Mechanisms leaves it out, nothing was stripped: the
// caller chose, and the login goes on (the pin stays).
func (n *negotiation) downgrade(mech string, offered, cbTypes []string) bool {
	pin := n.cfg.Pin
	if pin == "" || n.cfg.AllowDowngrade || !Stronger(pin, mech) {
		return false
	}
	best, ok := chooseMechanism(DefaultMechanisms(), offered, cbTypes, n.tls, n.cfg.InsecureAllowPlain)
	return !ok || Stronger(pin, best)
}

// checkLive verifies a plan made from cached features against the live
// ones. The plan stands only if the live features would have chosen the same
// path and mechanism: a stale cache never keeps a login on a weaker or
// withdrawn mechanism.
func (n *negotiation) checkLive(p plan, live features.Features) error {
	lp, err := n.plan(live)
	if err != nil {
		return err
	}
	if lp.path != p.path {
		return fmt.Errorf("path %s cached, %s live", p.path, lp.path)
	}
	if lp.mech != p.mech {
		return fmt.Errorf("mechanism %s cached, %s live", p.mech, lp.mech)
	}
	return nil
}

// firstAuth starts SASL for p and returns the first authentication element
// (<authenticate> for SASL2, <auth> otherwise).
func (n *negotiation) firstAuth(p *plan) ([]byte, error) {
	n.step = StepAuth
	neg, err := n.newSASL(p.mech, p.remote)
	if err != nil {
		return nil, err
	}
	more, resp, err := neg.Step(nil)
	if err != nil {
		return nil, fmt.Errorf("%w: sasl start: %v", ErrRefused, err)
	}
	p.neg, p.more, p.sent = neg, more, 1
	var b bytes.Buffer
	if p.path == PathSASL2 {
		b.WriteString("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='")
		escapeAttr(&b, p.mech)
		b.WriteString("'><initial-response>")
		writeBase64(&b, resp)
		b.WriteString("</initial-response>")
		if p.fast {
			b.WriteString("<fast xmlns='urn:xmpp:fast:0'/>")
		} else if p.reqTok != "" {
			b.WriteString("<request-token xmlns='urn:xmpp:fast:0' mechanism='")
			escapeAttr(&b, p.reqTok)
			b.WriteString("'/>")
		}
		n.userAgent(&b)
		if r := n.cfg.Resume; r != nil && p.f.SMInline && r.ID != "" {
			// XEP-0198 §SASL2: processed first; on success the bind below
			// is ignored, on failure it binds a fresh session.
			b.Write(sm.AppendResume(nil, *r))
			n.resumeSent = true
		}
		if p.f.Bind2 {
			n.bind2Request(&b, p.f)
		}
		b.WriteString("</authenticate>")
		return n.appendAfterAuth(p, b.Bytes()), nil
	}
	b.WriteString("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='")
	escapeAttr(&b, p.mech)
	b.WriteString("'>")
	writeBase64(&b, resp)
	b.WriteString("</auth>")
	if p.path == PathBind2Draft && p.finalClientMessage() {
		// XEP-0386 v0.3.0 §Pipelining: the post-authentication header and
		// the bind may follow the final authentication element.
		b.Write(n.draftRestart())
		return n.appendAfterAuth(p, b.Bytes()), nil
	}
	return b.Bytes(), nil
}

// appendAfterAuth appends Config.AfterAuth to the write that carries the
// client's final authentication message (and, on the v0.3.0 path, the
// restart and <bind/>), when the login is expected to succeed.
func (n *negotiation) appendAfterAuth(p *plan, w []byte) []byte {
	if len(n.cfg.AfterAuth) == 0 || n.afterWritten || p.path == PathClassic || !p.finalClientMessage() || !n.expectSuccess(p) {
		return w
	}
	n.afterWritten = true
	return append(w, n.cfg.AfterAuth...)
}

// expectSuccess reports whether the authentication about to be sent is
// expected to succeed: a FAST token, PLAIN (chosen only over a verified
// certificate, or where the user allowed an unverified one), or SCRAM with
// keys derived from a password that worked before.
func (n *negotiation) expectSuccess(p *plan) bool {
	return p.fast || p.mech == "PLAIN" || strings.HasPrefix(p.mech, "SCRAM-") && n.keysHit
}

// keyStore is Config.KeyStore, observed: a hit means the password worked
// before.
func (n *negotiation) keyStore() KeyStore {
	if n.cfg.KeyStore == nil {
		return nil
	}
	return observedKeys{KeyStore: n.cfg.KeyStore, hit: &n.keysHit}
}

type observedKeys struct {
	KeyStore
	hit *bool
}

func (o observedKeys) ScramKeys(mechanism string, salt []byte, iterations int) (ScramKeys, bool) {
	k, ok := o.KeyStore.ScramKeys(mechanism, salt, iterations)
	*o.hit = *o.hit || ok
	return k, ok
}

func (n *negotiation) userAgent(b *bytes.Buffer) {
	ua := n.cfg.UserAgent
	if ua.ID == "" {
		return
	}
	b.WriteString("<user-agent id='")
	escapeAttr(b, ua.ID)
	b.WriteString("'><software>")
	escapeAttr(b, ua.Software)
	b.WriteString("</software>")
	if ua.Device != "" {
		b.WriteString("<device>")
		escapeAttr(b, ua.Device)
		b.WriteString("</device>")
	}
	b.WriteString("</user-agent>")
}

// bind2Request writes the inline <bind xmlns='urn:xmpp:bind:0'> with the
// features the server lists inline: carbons, SM (resumable) and CSI.
func (n *negotiation) bind2Request(b *bytes.Buffer, f features.Features) {
	b.WriteString("<bind xmlns='urn:xmpp:bind:0'><tag>")
	escapeAttr(b, n.cfg.Tag)
	b.WriteString("</tag>")
	if !n.cfg.NoCarbons && slices.Contains(f.Bind2Inline, NSCarbons) {
		b.WriteString("<enable xmlns='urn:xmpp:carbons:2'/>")
	}
	if !n.cfg.NoSM && slices.Contains(f.Bind2Inline, sm.NS) {
		b.Write(sm.AppendEnable(nil, true))
	}
	if slices.Contains(f.Bind2Inline, NSCSI) {
		if n.cfg.Inactive {
			b.WriteString("<inactive xmlns='urn:xmpp:csi:0'/>")
		} else {
			b.WriteString("<active xmlns='urn:xmpp:csi:0'/>")
		}
	}
	b.WriteString("</bind>")
}

// writeBase64 writes SASL data; an empty payload is "=" (RFC 6120 §6.4.2).
func writeBase64(b *bytes.Buffer, p []byte) {
	if len(p) == 0 {
		b.WriteByte('=')
		return
	}
	enc := base64.NewEncoder(base64.StdEncoding, b)
	enc.Write(p)
	enc.Close()
}

// decodeBase64 decodes SASL data; "=" and empty are an empty payload.
func decodeBase64(s string) ([]byte, error) {
	s = string(bytes.TrimSpace([]byte(s)))
	if s == "" || s == "=" {
		return nil, nil
	}
	p, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, protocolErrorf("invalid base64 in SASL data")
	}
	return p, nil
}

func escapeAttr(b *bytes.Buffer, s string) {
	_ = xml.EscapeText(b, []byte(s))
}

// tokenUsable reports whether Config.Token can be tried with features f: the
// server offers its mechanism inline in SASL2, the connection allows it (a
// verified certificate unless InsecureAllowPlain), it has not expired, and
// there is a user-agent id (FAST requires one).
func (n *negotiation) tokenUsable(f features.Features) bool {
	t := n.cfg.Token
	if t == nil || n.tokenRefused || len(t.Secret) == 0 || n.cfg.UserAgent.ID == "" {
		return false
	}
	if !t.Expiry.IsZero() && !time.Now().Before(t.Expiry) {
		return false
	}
	if len(n.tls.VerifiedChains) == 0 && !n.cfg.InsecureAllowPlain {
		// A token is a password: never to a server whose certificate was
		// not verified, unless the user said so (as for PLAIN).
		return false
	}
	return slices.Contains(f.FASTMechanisms, t.Mechanism) && FASTAllowed(t.Mechanism, n.tls)
}

// Stronger reports whether password mechanism a is stronger than b, by
// their order in DefaultMechanisms() (channel binding first, then the
// hash, PLAIN last). A mechanism not listed there is weaker than every
// listed one.
func Stronger(a, b string) bool { return mechRank(a) > mechRank(b) }

func mechRank(m string) int {
	if i := slices.Index(mechanismStrength[:], m); i >= 0 {
		return len(mechanismStrength) - i
	}
	return 0
}
