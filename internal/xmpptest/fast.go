package xmpptest

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"
)

// XEP-0484: Fast Authentication Streamlining Tokens, with the Hashed Token
// SASL mechanisms of draft-schmaus-kitten-sasl-ht (HT-SHA-256-* and the
// other hashes of fast_ht.go):
//
//	client: authcid NUL HMAC-H(token, "Initiator" || cb-data)
//	server: HMAC-H(token, "Responder" || cb-data)  (SASL2 additional data)
//
// cb-data is empty for -NONE, RFC 9266 tls-exporter for -EXPR, RFC 5929
// tls-server-end-point for -ENDP and tls-unique for -UNIQ (TLS 1.2 only).
//
// Tokens are bound to (user, SASL2 <user-agent/> id) and to the mechanism
// named in <request-token/>. Each binding has the two slots of XEP-0484
// §impl-tokens: a new token goes to 'next' (replacing an unused one); using
// the 'next' token moves it to 'cur', which invalidates the older 'cur'.
// The 'next' slot is tried first. Expired tokens fail with
// credentials-expired, anything else that does not verify with
// not-authorized. A 'count' on <fast/> must grow with every use of a token
// (XEP-0484 §fast-auth; there is no TLS 0-RTT here, but a replayed count is
// refused all the same). A failed FAST <authenticate/> leaves the stream
// ready for another <authenticate/> (XEP-0388 §failure), for example with
// the password.
//
// A token authentication needs <fast xmlns='urn:xmpp:fast:0'/> in the
// <authenticate/>, a <user-agent/> with an 'id', and the authenticating JID
// in the stream's 'from' (XEP-0484 §rules-clients); a request without them
// fails with malformed-request.

const defaultFASTLifetime = 21 * 24 * time.Hour

// defaultFASTMechanisms is what a zero Config offers: one mechanism without
// channel binding and two with (XEP-0484 §support: at least one of each).
var defaultFASTMechanisms = []string{"HT-SHA-256-NONE", "HT-SHA-256-EXPR", "HT-SHA-256-ENDP"}

// fastExpiry formats a token's 'expiry' (XEP-0082 DateTime, UTC, with
// fractional seconds as Prosody sends them).
const fastExpiry = "2006-01-02T15:04:05.000000Z07:00"

// htChannelBinding maps an implemented HT mechanism to its channel-binding
// type ("" for none); fast_ht.go names the mechanisms.
func htChannelBinding(mech string) (cb string, ok bool) {
	cb, _, ok = htMechanism(mech)
	return cb, ok
}

type fastKey struct {
	user, client string
}

type fastToken struct {
	secret  string
	mech    string
	expires time.Time
	count   int64 // highest 'count' processed; -1 before any
}

// fastSlots are XEP-0484 §impl-tokens' two slots of one (user, client).
type fastSlots struct {
	cur, next *fastToken
}

// fastAuth is the server side of one HT-SHA-256-* exchange.
type fastAuth struct {
	c          *conn
	mech, cb   string
	client     string // the <user-agent/> id
	count      int64  // the <fast/> 'count', -1 if absent
	invalidate bool
	done       bool

	local  string
	rotate bool // a new token is due in <success/>
}

// newFASTAuth starts a token authentication with mechanism mech for the
// SASL2 request req.
func (c *conn) newFASTAuth(mech string, req *authRequest) (authenticator, *saslError) {
	if c.cfg.NoFAST || !slices.Contains(c.cfg.FASTMechanisms, mech) {
		return nil, &saslError{cond: "invalid-mechanism", text: "mechanism not offered"}
	}
	cb, ok := htChannelBinding(mech)
	if !ok {
		return nil, &saslError{cond: "invalid-mechanism", text: "mechanism not implemented by xmpptest"}
	}
	if req.fast == nil {
		return nil, &saslError{cond: "malformed-request", text: "token authentication needs <fast xmlns='urn:xmpp:fast:0'/>"}
	}
	if req.ua.ID == "" {
		return nil, &saslError{cond: "malformed-request", text: "FAST needs a <user-agent/> with an 'id'"}
	}
	count := int64(-1)
	if v := req.fast.attrValue("count"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, &saslError{cond: "malformed-request", text: "invalid 'count' on <fast/>"}
		}
		count = n
	}
	inv := req.fast.attrValue("invalidate")
	return &fastAuth{c: c, mech: mech, cb: cb, client: req.ua.ID, count: count,
		invalidate: inv == "true" || inv == "1"}, nil
}

func (a *fastAuth) next(in []byte) ([]byte, bool, *saslError) {
	if a.done {
		return nil, false, errMalformed
	}
	a.done = true
	user, initiator, ok := bytes.Cut(in, []byte{0})
	if !ok || len(user) == 0 || len(initiator) == 0 {
		return nil, false, errMalformed
	}
	local, ok := a.c.localpart(string(user))
	if !ok {
		return nil, false, errNotAuthorized
	}
	if a.c.streamFrom == "" {
		return nil, false, &saslError{cond: "malformed-request", text: "FAST needs the authenticating JID in the stream's 'from'"}
	}
	want, err := jid.New(local, a.c.cfg.Domain, "")
	if from, ferr := jid.Parse(a.c.streamFrom); err != nil || ferr != nil || !from.Bare().Equal(want) {
		return nil, false, errNotAuthorized
	}
	cbData, serr := a.c.channelBinding(a.cb)
	if serr != nil {
		return nil, false, serr
	}
	responder, rotate, serr := a.c.srv.verifyFAST(fastKey{local, a.client}, a, initiator, cbData, &a.c.cfg)
	if serr != nil {
		return nil, false, serr
	}
	a.local, a.rotate = local, rotate
	return responder, true, nil
}

func (a *fastAuth) identity() (string, string) { return a.local, "" }

// verifyFAST checks an Initiator hash against the tokens of k and, on
// success, updates the slots and returns the Responder hash and whether the
// token is due for rotation.
func (s *Server) verifyFAST(k fastKey, a *fastAuth, initiator, cbData []byte, cfg *Config) ([]byte, bool, *saslError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cond, ok := s.fastFail[k.user]; ok {
		delete(s.fastFail, k.user)
		return nil, false, &saslError{cond: cond, text: "the server no longer trusts this token"}
	}
	slots := s.fast[k]
	if slots == nil {
		return nil, false, errNotAuthorized
	}
	defer func() {
		if slots.cur == nil && slots.next == nil {
			delete(s.fast, k)
		}
	}()
	now := s.nowLocked()
	for i, tok := range []*fastToken{slots.next, slots.cur} {
		if tok == nil || !hmac.Equal(htHash(a.mech, tok.secret, "Initiator", cbData), initiator) {
			continue
		}
		isNext := i == 0
		switch {
		case tok.mech != a.mech:
			// XEP-0484: a token is bound to the mechanism it was requested for.
			return nil, false, errNotAuthorized
		case !now.Before(tok.expires):
			if isNext {
				slots.next = nil
			} else {
				slots.cur = nil
			}
			return nil, false, &saslError{cond: "credentials-expired", text: "the token has expired"}
		case a.count >= 0 && a.count <= tok.count:
			return nil, false, &saslError{cond: "not-authorized", text: "replayed 'count'"}
		}
		if a.count >= 0 {
			tok.count = a.count
		}
		if isNext {
			// Using the newer token invalidates the older one.
			slots.cur, slots.next = tok, nil
		}
		if a.invalidate {
			slots.cur = nil
		}
		rotate := !a.invalidate && (cfg.FASTRotate || tok.expires.Sub(now) < cfg.FASTTokenLifetime/2)
		return htHash(a.mech, tok.secret, "Responder", cbData), rotate, nil
	}
	return nil, false, errNotAuthorized
}

// htHash is HMAC-H(token, label || cb-data), H the hash of mechanism mech.
func htHash(mech, token, label string, cbData []byte) []byte {
	_, h, _ := htMechanism(mech)
	m := hmac.New(h, []byte(token))
	m.Write([]byte(label))
	m.Write(cbData)
	return m.Sum(nil)
}

// issueFAST puts a new token for mechanism mech into the 'next' slot of
// (local, client), replacing an unused one (XEP-0484 §token-rotation), and
// returns the <token/> for <success/>.
func (s *Server) issueFAST(local, client, mech string, lifetime time.Duration) *element {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand does not fail
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := &fastToken{
		secret:  "secret-token:xmpptest-fast-" + base64.RawURLEncoding.EncodeToString(b),
		mech:    mech,
		expires: s.nowLocked().Add(lifetime).UTC().Truncate(time.Microsecond),
		count:   -1,
	}
	k := fastKey{local, client}
	if s.fast[k] == nil {
		s.fast[k] = &fastSlots{}
	}
	s.fast[k].next = tok
	s.st(local).TokensIssued++
	return newElement(nsFAST, "token", "expiry", tok.expires.Format(fastExpiry), "token", tok.secret)
}

// fastTokenFor returns the <token/> to put into <success/>, or nil: a new
// token when the client asked for one with <request-token/> (for a FAST
// mechanism this server offers and implements), or when the FAST token it
// used is due for rotation. XEP-0484: no token without a <user-agent/> id,
// and none after invalidate='true' unless requested.
func (c *conn) fastTokenFor(ex *exchange) *element {
	req := ex.sasl2
	if c.cfg.NoFAST || req.ua.ID == "" {
		return nil
	}
	mech := ""
	if m := req.requestToken; m != "" && slices.Contains(c.cfg.FASTMechanisms, m) {
		if _, ok := htChannelBinding(m); ok {
			mech = m
		}
	}
	if fa, ok := ex.auth.(*fastAuth); ok && mech == "" && fa.rotate {
		mech = fa.mech
	}
	if mech == "" {
		return nil
	}
	return c.srv.issueFAST(c.user, req.ua.ID, mech, c.cfg.FASTTokenLifetime)
}

// channelBinding returns the server side's channel-binding data of type cb
// for this connection ("" is none).
func (c *conn) channelBinding(cb string) ([]byte, *saslError) {
	if cb == "" {
		return nil, nil
	}
	unavailable := &saslError{cond: "malformed-request", text: "channel binding " + cb + " is not available on this connection"}
	cs := c.tlsState
	if cs == nil {
		return nil, unavailable
	}
	switch cb {
	case "tls-exporter":
		d, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
		if err != nil {
			return nil, unavailable
		}
		return d, nil
	case "tls-server-end-point":
		d, err := c.srv.endPoint()
		if err != nil {
			return nil, unavailable
		}
		return d, nil
	case "tls-unique":
		if cs.Version >= tls.VersionTLS13 || cs.DidResume || len(cs.TLSUnique) == 0 {
			return nil, unavailable
		}
		return bytes.Clone(cs.TLSUnique), nil
	}
	return nil, unavailable
}

// endPoint is RFC 5929 tls-server-end-point for the server's certificate:
// its hash with the certificate signature's hash function, SHA-256 for MD5
// and SHA-1.
func (s *Server) endPoint() ([]byte, error) {
	cert, err := x509.ParseCertificate(s.certs.server.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("xmpptest: parsing the server certificate: %w", err)
	}
	var h hash.Hash
	switch cert.SignatureAlgorithm {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1,
		x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.ECDSAWithSHA256, x509.DSAWithSHA256:
		h = sha256.New()
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		h = sha512.New384()
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		h = sha512.New()
	default:
		return nil, errors.New("xmpptest: tls-server-end-point is undefined for this certificate's signature")
	}
	h.Write(cert.Raw)
	return h.Sum(nil), nil
}

// InvalidateFASTTokens removes every FAST token of the user local, for all
// of its clients, as a server does after a password change. Their next use
// fails with not-authorized. It returns how many tokens it removed.
func (s *Server) InvalidateFASTTokens(local string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, slots := range s.fast {
		if k.user != local {
			continue
		}
		for _, t := range []*fastToken{slots.cur, slots.next} {
			if t != nil {
				n++
			}
		}
		delete(s.fast, k)
	}
	return n
}

// FailNextFAST makes the next FAST authentication of the user local fail
// with the RFC 6120 §6.5 condition cond, such as "credentials-expired" (a
// server that no longer trusts the token, XEP-0484 §rules-servers) or
// "not-authorized", whatever token it presents. It applies once; the tokens
// themselves are kept (see InvalidateFASTTokens). An empty cond cancels it.
func (s *Server) FailNextFAST(local, cond string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cond == "" {
		delete(s.fastFail, local)
		return
	}
	s.fastFail[local] = cond
}

// FASTTokenCount returns how many unexpired FAST tokens the user local
// holds, over all clients and both slots (at most two per client: the one
// in use and a newer one not used yet).
func (s *Server) FASTTokenCount(local string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	n := 0
	for k, slots := range s.fast {
		if k.user != local {
			continue
		}
		for _, t := range []*fastToken{slots.cur, slots.next} {
			if t != nil && now.Before(t.expires) {
				n++
			}
		}
	}
	return n
}
