package xmpptest

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"hash"
	"strings"

	"mellium.im/xmpp/jid"
)

// This file holds the SASL mechanisms shared by classic SASL (classic.go)
// and SASL2 (sasl2.go): PLAIN with a small parser, and the salted-password
// cache of SCRAM, whose exchange (with -PLUS channel binding and XEP-0474
// SSDP) is in scram_server.go.

// saslError is a SASL failure with an RFC 6120 §6.5 condition.
type saslError struct {
	cond, text string
}

func (e *saslError) Error() string { return "sasl: " + e.cond }

var (
	errNotAuthorized = &saslError{cond: "not-authorized", text: "Invalid username or password"}
	errMalformed     = &saslError{cond: "malformed-request"}
	errBadAuthzid    = &saslError{cond: "invalid-authzid"}
)

// authenticator runs the server side of one SASL exchange.
type authenticator interface {
	// next consumes one client message and returns either a challenge
	// (done false) or the additional data of success (done true, nil if the
	// mechanism has none).
	next(in []byte) (out []byte, done bool, err *saslError)
	// identity returns the authenticated localpart and the authzid the
	// client asked for, after success.
	identity() (local, authzid string)
}

// exchange is a SASL exchange in progress on a connection.
type exchange struct {
	mech  string
	auth  authenticator
	sasl2 *authRequest // nil for classic SASL
}

// newAuthenticator starts mechanism mech if the connection offers it.
func (c *conn) newAuthenticator(mech string) (authenticator, *saslError) {
	if !c.cfg.offers(mech) {
		return nil, &saslError{cond: "invalid-mechanism", text: "mechanism not offered"}
	}
	if mech == "PLAIN" {
		return &plainAuth{c: c}, nil
	}
	if fam, plus, ok := scramFamilyOf(mech); ok {
		return c.newScram(mech, fam, plus), nil
	}
	return nil, &saslError{cond: "invalid-mechanism", text: "mechanism not implemented by xmpptest"}
}

// localpart maps a SASL username ("alice" or "alice@domain") to a configured
// user's localpart.
func (c *conn) localpart(username string) (local string, ok bool) {
	local = username
	if l, d, found := strings.Cut(username, "@"); found {
		if !strings.EqualFold(d, c.cfg.Domain) {
			return "", false
		}
		local = l
	}
	if _, ok := c.srv.password(local); !ok {
		return "", false
	}
	return local, true
}

// checkAuthzid allows an empty authzid or the user's own bare JID (no proxy
// authorization), and (XEP-0388) one matching the stream's 'from'.
func (c *conn) checkAuthzid(local, authzid string) *saslError {
	if authzid == "" {
		return nil
	}
	want, err := jid.New(local, c.cfg.Domain, "")
	if err != nil {
		return errBadAuthzid
	}
	got, err := jid.Parse(authzid)
	if err != nil || !got.Equal(want) {
		return errBadAuthzid
	}
	if c.streamFrom != "" {
		if from, err := jid.Parse(c.streamFrom); err != nil || !from.Bare().Equal(want) {
			return errBadAuthzid
		}
	}
	return nil
}

// plainAuth is RFC 4616 PLAIN: authzid NUL authcid NUL passwd.
type plainAuth struct {
	c              *conn
	local, authzid string
}

func (a *plainAuth) next(in []byte) ([]byte, bool, *saslError) {
	parts := bytes.Split(in, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		return nil, false, errMalformed
	}
	local, ok := a.c.localpart(string(parts[1]))
	if !ok {
		return nil, false, errNotAuthorized
	}
	pw, _ := a.c.srv.password(local)
	if subtle.ConstantTimeCompare([]byte(pw), parts[2]) != 1 {
		return nil, false, errNotAuthorized
	}
	if err := a.c.checkAuthzid(local, string(parts[0])); err != nil {
		return nil, false, err
	}
	a.local, a.authzid = local, string(parts[0])
	return nil, true, nil
}

func (a *plainAuth) identity() (string, string) { return a.local, a.authzid }

// scramKey identifies cached salted credentials.
type scramKey struct {
	user, mech string
	iterations int
}

type scramEntry struct {
	password     string
	salt, salted []byte
}

// saltedPassword returns a per-user salt and the PBKDF2 salted password,
// computed once per password, SCRAM family (a -PLUS variant shares its
// base mechanism's entry) and iteration count.
func (s *Server) saltedPassword(user, password, mech string, iterations int, h func() hash.Hash) (salt, salted []byte) {
	k := scramKey{user, mech, iterations}
	s.mu.Lock()
	e := s.scram[k]
	s.mu.Unlock()
	if e != nil && e.password == password {
		return e.salt, e.salted
	}
	salt = []byte(randomID(12))
	salted, err := pbkdf2.Key(h, password, salt, iterations, h().Size())
	if err != nil {
		panic(fmt.Sprintf("xmpptest: pbkdf2: %v", err)) // only for FIPS-invalid parameters
	}
	s.mu.Lock()
	s.scram[k] = &scramEntry{password: password, salt: salt, salted: salted}
	s.mu.Unlock()
	return salt, salted
}

// decodeSASL decodes base64 SASL data, ignoring whitespace; "=" is the
// explicit empty response of RFC 6120 §6.4.2.
func decodeSASL(s string) ([]byte, *saslError) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
	if s == "" || s == "=" {
		return []byte{}, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, &saslError{cond: "incorrect-encoding"}
	}
	return b, nil
}

// encodeSASL encodes SASL data for an element body.
func encodeSASL(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// authenticated records a successful authentication as local.
func (c *conn) authenticated(local, mech string) error {
	bare, err := jid.New(local, c.cfg.Domain, "")
	if err != nil {
		return &streamError{cond: "internal-server-error", text: "user is not a valid localpart"}
	}
	c.user, c.bare = local, bare
	c.log.set(func(l *ConnLog) { l.mechanism = mech })
	c.srv.count(local, func(st *LoginStats) {
		if strings.HasPrefix(mech, "HT-") {
			st.FAST++
		} else {
			st.Password++
		}
	})
	return nil
}
