package xmpptest

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"hash"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The server side of SCRAM (RFC 5802, RFC 7677): SCRAM-SHA-1, -SHA-256 and
// -SHA-512, each also -PLUS with channel binding (RFC 9266 tls-exporter,
// RFC 5929 tls-server-end-point), and the XEP-0474 SSDP attribute in the
// server-first-message (Config.SSDP). A mechanism is only usable when
// Config.Mechanisms lists it; the defaults list no -PLUS and no SHA-512.

// scramFamily is a SCRAM hash family; base is the name without "-PLUS".
type scramFamily struct {
	base string
	h    func() hash.Hash
}

// scramFamilyOf returns the family of a SCRAM mechanism name and whether
// it is a -PLUS variant.
func scramFamilyOf(mech string) (fam scramFamily, plus, ok bool) {
	base, plus := strings.CutSuffix(mech, "-PLUS")
	switch base {
	case "SCRAM-SHA-1":
		return scramFamily{base, sha1.New}, plus, true
	case "SCRAM-SHA-256":
		return scramFamily{base, sha256.New}, plus, true
	case "SCRAM-SHA-512":
		return scramFamily{base, sha512.New}, plus, true
	}
	return scramFamily{}, false, false
}

// scramServerNonceLen is the number of random bytes of the server's part of
// the nonce (32 printable characters once encoded).
const scramServerNonceLen = 24

func newServerNonce() string {
	b := make([]byte, scramServerNonceLen)
	_, _ = rand.Read(b) // crypto/rand does not fail
	return base64.RawStdEncoding.EncodeToString(b)
}

// scramAuth is one SCRAM exchange: client-first, server-first,
// client-final, server-final.
type scramAuth struct {
	c    *conn
	mech string
	fam  scramFamily
	plus bool
	// serverNonce makes the server's part of the nonce (a test hook).
	serverNonce func() string

	steps          int
	local, authzid string
	gs2            []byte // the client's gs2-header, as sent
	cbData         []byte // channel-binding data for "p=", nil otherwise
	clientBare     []byte // client-first-message-bare
	serverFirst    []byte
	nonce          string // client nonce + server nonce
	salted         []byte
}

func (c *conn) newScram(mech string, fam scramFamily, plus bool) *scramAuth {
	return &scramAuth{c: c, mech: mech, fam: fam, plus: plus, serverNonce: newServerNonce}
}

func (a *scramAuth) identity() (string, string) { return a.local, a.authzid }

func (a *scramAuth) next(in []byte) ([]byte, bool, *saslError) {
	a.steps++
	switch {
	case len(in) == 0 || a.steps > 2:
		return nil, false, errMalformed
	case a.steps == 1:
		out, err := a.first(in)
		return out, false, err
	}
	out, err := a.final(in)
	return out, err == nil, err
}

func scramMalformed(text string) *saslError {
	return &saslError{cond: "malformed-request", text: text}
}

// scramNotAuthorized is a refused exchange; text says why without
// revealing anything secret.
func scramNotAuthorized(text string) *saslError {
	return &saslError{cond: "not-authorized", text: text}
}

// first answers the client-first-message (RFC 5802 §5.1, §7):
//
//	gs2-header = gs2-cbind-flag "," [ authzid ] ","
//	client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
func (a *scramAuth) first(msg []byte) ([]byte, *saslError) {
	flag, rest, ok := bytes.Cut(msg, []byte{','})
	if !ok {
		return nil, scramMalformed("SCRAM gs2-header is incomplete")
	}
	authzField, bare, ok := bytes.Cut(rest, []byte{','})
	if !ok {
		return nil, scramMalformed("SCRAM gs2-header is incomplete")
	}
	a.gs2 = bytes.Clone(msg[:len(msg)-len(bare)])
	var authzid string
	if len(authzField) > 0 {
		v, ok := bytes.CutPrefix(authzField, []byte("a="))
		if !ok {
			return nil, scramMalformed("SCRAM authzid must start with a=")
		}
		if authzid, ok = decodeSaslname(v); !ok {
			return nil, scramMalformed("SCRAM authzid is not a valid saslname")
		}
	}
	if serr := a.checkBindingFlag(string(flag)); serr != nil {
		return nil, serr
	}

	attrs, ok := scramAttrs(bare)
	if !ok {
		return nil, scramMalformed("SCRAM client-first-message is malformed")
	}
	if attrs[0].name == 'm' {
		// RFC 5802 §5.1: a mandatory extension this server does not know.
		return nil, scramMalformed("SCRAM mandatory extensions are not supported")
	}
	if len(attrs) < 2 || attrs[0].name != 'n' || attrs[1].name != 'r' {
		return nil, scramMalformed("SCRAM client-first-message needs n= then r=")
	}
	user, ok := decodeSaslname([]byte(attrs[0].value))
	if !ok {
		return nil, scramMalformed("SCRAM username is not a valid saslname")
	}
	cnonce := attrs[1].value
	if cnonce == "" || !printable(cnonce) {
		return nil, scramMalformed("SCRAM client nonce is not printable")
	}

	local, ok := a.c.localpart(user)
	if !ok {
		return nil, errNotAuthorized
	}
	if serr := a.c.checkAuthzid(local, authzid); serr != nil {
		return nil, serr
	}
	pw, _ := a.c.srv.password(local)
	iter := a.c.cfg.ScramIterations
	// Keyed by the family: SCRAM-SHA-256 and -PLUS share salt and keys, as
	// on real servers (the client caches them per family).
	salt, salted := a.c.srv.saltedPassword(local, pw, a.fam.base, iter, a.fam.h)
	a.local, a.authzid, a.salted = local, authzid, salted
	a.clientBare = bytes.Clone(bare)
	a.nonce = cnonce + a.serverNonce()

	sf := "r=" + a.nonce + ",s=" + base64.StdEncoding.EncodeToString(salt) + ",i=" + strconv.Itoa(iter)
	if a.c.cfg.SSDP {
		mechs, cbs := a.c.ssdpLists()
		sf += ",h=" + ssdpHash(a.fam.h, mechs, cbs)
	}
	a.serverFirst = []byte(sf)
	return bytes.Clone(a.serverFirst), nil
}

// checkBindingFlag applies RFC 5802 §6 to the gs2-cbind-flag and, for "p=",
// fetches this connection's channel-binding data.
func (a *scramAuth) checkBindingFlag(flag string) *saslError {
	switch {
	case flag == "n":
		if a.plus {
			return scramMalformed("a -PLUS mechanism needs channel binding (p=)")
		}
	case flag == "y":
		if a.plus {
			return scramMalformed("a -PLUS mechanism needs channel binding (p=)")
		}
		// The client could bind but saw no -PLUS: if this server offers
		// one, someone removed it from the features.
		if a.c.offersChannelBinding() {
			return scramNotAuthorized("the client believes the server does not support channel binding, but it does")
		}
	case strings.HasPrefix(flag, "p="):
		cb := flag[2:]
		if !a.plus {
			return scramMalformed("channel binding requested with a mechanism without -PLUS")
		}
		if !validCBName(cb) {
			return scramMalformed("SCRAM channel-binding name is malformed")
		}
		d, serr := a.c.channelBinding(cb)
		if serr != nil || len(d) == 0 {
			return scramNotAuthorized("unsupported channel-binding type")
		}
		a.cbData = d
	default:
		return scramMalformed("SCRAM gs2-cbind-flag must be n, y or p=")
	}
	return nil
}

// final checks the client-final-message (RFC 5802 §5.1, §7):
//
//	channel-binding "," nonce ["," extensions] "," proof
//
// and answers the server-final-message "v=" ServerSignature.
func (a *scramAuth) final(msg []byte) ([]byte, *saslError) {
	attrs, ok := scramAttrs(msg)
	if !ok || len(attrs) < 3 || attrs[0].name != 'c' || attrs[1].name != 'r' || attrs[len(attrs)-1].name != 'p' {
		return nil, scramMalformed("SCRAM client-final-message needs c=, r= and p= last")
	}
	without := msg[:bytes.LastIndex(msg, []byte(",p="))]
	cbind, err := base64.StdEncoding.DecodeString(attrs[0].value)
	if err != nil {
		return nil, &saslError{cond: "incorrect-encoding"}
	}
	proof, err := base64.StdEncoding.DecodeString(attrs[len(attrs)-1].value)
	if err != nil {
		return nil, &saslError{cond: "incorrect-encoding"}
	}
	// RFC 5802 §6: the server MUST validate c= (gs2-header + cbind-data).
	if !hmac.Equal(cbind, slices.Concat(a.gs2, a.cbData)) {
		return nil, scramNotAuthorized("channel binding does not match")
	}
	if attrs[1].value != a.nonce {
		return nil, scramNotAuthorized("nonce does not match")
	}
	size := a.fam.h().Size()
	if len(proof) != size {
		return nil, scramNotAuthorized("invalid proof")
	}

	authMessage := slices.Concat(a.clientBare, []byte{','}, a.serverFirst, []byte{','}, without)
	clientKey := scramHMAC(a.fam.h, a.salted, []byte("Client Key"))
	storedKey := scramH(a.fam.h, clientKey)
	clientSig := scramHMAC(a.fam.h, storedKey, authMessage)
	recovered := make([]byte, size)
	subtle.XORBytes(recovered, proof, clientSig)
	if subtle.ConstantTimeCompare(scramH(a.fam.h, recovered), storedKey) != 1 {
		return nil, errNotAuthorized
	}
	serverKey := scramHMAC(a.fam.h, a.salted, []byte("Server Key"))
	sig := scramHMAC(a.fam.h, serverKey, authMessage)
	return []byte("v=" + base64.StdEncoding.EncodeToString(sig)), nil
}

func scramHMAC(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

func scramH(h func() hash.Hash, b []byte) []byte {
	d := h()
	d.Write(b)
	return d.Sum(nil)
}

type scramAttr struct {
	name  byte
	value string
}

// scramAttrs splits a SCRAM message into attr=value pairs (attr is one
// ASCII letter). It reports false for an empty message or a field that is
// not of that form.
func scramAttrs(msg []byte) ([]scramAttr, bool) {
	if len(msg) == 0 {
		return nil, false
	}
	var out []scramAttr
	for f := range strings.SplitSeq(string(msg), ",") {
		if len(f) < 2 || f[1] != '=' || !('a' <= f[0] && f[0] <= 'z' || 'A' <= f[0] && f[0] <= 'Z') {
			return nil, false
		}
		out = append(out, scramAttr{f[0], f[2:]})
	}
	return out, true
}

// decodeSaslname undoes RFC 5802 §5.1 escaping ("=2C" is ',' and "=3D" is
// '='); any other '=' and invalid UTF-8 are refused, as is an empty name.
func decodeSaslname(b []byte) (string, bool) {
	if len(b) == 0 || !utf8.Valid(b) {
		return "", false
	}
	var out strings.Builder
	for i := 0; i < len(b); i++ {
		if b[i] != '=' {
			out.WriteByte(b[i])
			continue
		}
		switch {
		case i+2 < len(b) && b[i+1] == '2' && b[i+2] == 'C':
			out.WriteByte(',')
		case i+2 < len(b) && b[i+1] == '3' && b[i+2] == 'D':
			out.WriteByte('=')
		default:
			return "", false
		}
		i += 2
	}
	return out.String(), true
}

// printable is RFC 5802 "printable": %x21-2B / %x2D-7E.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// validCBName is RFC 5802 cb-name: 1*(ALPHA / DIGIT / "." / "-").
func validCBName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// offersChannelBinding reports whether this connection offers a SCRAM
// -PLUS mechanism it can serve (it needs TLS).
func (c *conn) offersChannelBinding() bool {
	if c.tlsState == nil {
		return false
	}
	return slices.ContainsFunc(c.cfg.Mechanisms, func(m string) bool {
		_, plus, ok := scramFamilyOf(m)
		return ok && plus
	})
}

// advertisedChannelBindings is the XEP-0440 list the pre-authentication
// features carry (features.go) and the SSDP hash covers: tls-exporter on
// every TLS connection. nil means no <sasl-channel-binding/>.
func (c *conn) advertisedChannelBindings() []string {
	if c.tlsState == nil {
		return nil
	}
	return []string{"tls-exporter"}
}

// ssdpLists returns the lists the SSDP hash covers: the advertised
// mechanisms (classic SASL and SASL2 advertise the same Config.Mechanisms,
// so the profile in use does not matter) and channel-binding types, or
// what Config.SSDPHashLists makes of them.
func (c *conn) ssdpLists() (mechs, cbs []string) {
	mechs, cbs = slices.Clone(c.cfg.Mechanisms), c.advertisedChannelBindings()
	if f := c.cfg.SSDPHashLists; f != nil {
		mechs, cbs = f(mechs, cbs)
	}
	return mechs, cbs
}

// ssdpHash is the XEP-0474 §hash value: the mechanisms sorted by octet
// and joined by 0x1E; if channel bindings were advertised, 0x1F and the
// sorted types joined by 0x1E; hashed with the SCRAM hash, base64. An
// empty cbs is "no XEP-0440", as the client reads an empty list.
func ssdpHash(h func() hash.Hash, mechs, cbs []string) string {
	var s bytes.Buffer
	sorted := slices.Clone(mechs)
	slices.Sort(sorted) // Go strings compare bytewise: i;octet
	for i, m := range sorted {
		if i > 0 {
			s.WriteByte(0x1e)
		}
		s.WriteString(m)
	}
	if len(cbs) > 0 {
		s.WriteByte(0x1f)
		sorted = slices.Clone(cbs)
		slices.Sort(sorted)
		for i, cb := range sorted {
			if i > 0 {
				s.WriteByte(0x1e)
			}
			s.WriteString(cb)
		}
	}
	return base64.StdEncoding.EncodeToString(scramH(h, s.Bytes()))
}
