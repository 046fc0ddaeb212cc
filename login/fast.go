package login

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"crypto/tls"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"

	"mellium.im/sasl"
)

// FAST (XEP-0484) token authentication with the Hashed Token mechanisms
// (draft-schmaus-kitten-sasl-ht): one round trip, mutual authentication.
//
//	initiator:  authcid NUL HMAC-H(token, "Initiator" || cb-data)
//	responder:  HMAC-H(token, "Responder" || cb-data)  (SASL2 additional data)
//
// A mechanism's name is HT-<hash>-<binding>. The hash H is SHA-256,
// SHA-384, SHA-512 (Conversations, Prosody and ejabberd offer SHA-256;
// MongooseIM also SHA-384, SHA-512 and the SHA3 family), SHA3-256,
// SHA3-384 or SHA3-512. cb-data is empty for -NONE, the RFC 9266
// tls-exporter data for -EXPR, the RFC 5929 tls-server-end-point data for
// -ENDP and the tls-unique data for -UNIQ (TLS 1.2 only).

// ErrFASTResponder reports a missing or wrong Responder signature: the
// server did not prove it knows the token.
var ErrFASTResponder = errors.New("sasl: FAST responder signature did not verify")

// htBindings are the channel bindings of the HT mechanisms, preferred
// first: a binding is what makes a token that leaked through a
// man-in-the-middle useless elsewhere, so it ranks above the hash.
var htBindings = [...]struct{ suffix, cb string }{
	{"EXPR", CBTLSExporter}, {"ENDP", CBTLSServerEndPoint}, {"UNIQ", CBTLSUnique}, {"NONE", ""},
}

// htHashes are the HT hash functions, preferred first: the longer digest,
// and SHA-2 before SHA-3 of the same length (the more widely deployed).
var htHashes = [...]struct {
	name string
	new  func() hash.Hash
}{
	{"SHA-512", sha512.New}, {"SHA3-512", func() hash.Hash { return sha3.New512() }},
	{"SHA-384", sha512.New384}, {"SHA3-384", func() hash.Hash { return sha3.New384() }},
	{"SHA-256", sha256.New}, {"SHA3-256", func() hash.Hash { return sha3.New256() }},
}

// FASTMechanisms lists the FAST mechanisms NewFAST implements, most
// preferred first: by channel binding (EXPR, ENDP, UNIQ, then NONE), then
// by hash (SHA-512, SHA3-512, SHA-384, SHA3-384, SHA-256, SHA3-256).
// ChooseFAST takes the first the server offers and the connection allows,
// so UNIQ is never chosen on TLS 1.3, nor NONE over an unverified
// certificate.
var FASTMechanisms = fastMechanisms()

func fastMechanisms() []string {
	var names []string
	for _, b := range htBindings {
		for _, h := range htHashes {
			names = append(names, "HT-"+h.name+"-"+b.suffix)
		}
	}
	return names
}

// parseHT maps a FAST mechanism name to its channel-binding type ("" for
// NONE) and hash.
func parseHT(name string) (cb string, h func() hash.Hash, ok bool) {
	rest, found := strings.CutPrefix(name, "HT-")
	if !found {
		return "", nil, false
	}
	for _, b := range htBindings {
		hashName, found := strings.CutSuffix(rest, "-"+b.suffix)
		if !found {
			continue
		}
		for _, hh := range htHashes {
			if hh.name == hashName {
				return b.cb, hh.new, true
			}
		}
	}
	return "", nil, false
}

// fastCB maps a FAST mechanism to its channel-binding type ("" for NONE).
func fastCB(name string) (cb string, ok bool) {
	cb, _, ok = parseHT(name)
	return cb, ok
}

// FASTAllowed reports whether FAST mechanism name can be used on a TLS
// connection with state cs:
//   - -NONE only over a certificate that was verified (without channel
//     binding a token sent through a MITM can be replayed);
//   - -EXPR when tls-exporter keying material is available (TLS 1.3, or TLS
//     1.2 with extended master secret);
//   - -ENDP when the server certificate's signature defines a hash;
//   - -UNIQ never on TLS 1.3 (tls-unique is undefined there), nor on a
//     resumed TLS 1.2 session.
func FASTAllowed(name string, cs tls.ConnectionState) bool {
	cb, ok := fastCB(name)
	if !ok || !cs.HandshakeComplete {
		return false
	}
	switch cb {
	case "":
		return len(cs.VerifiedChains) > 0
	case CBTLSUnique:
		if cs.Version >= tls.VersionTLS13 || cs.DidResume {
			return false
		}
	}
	_, err := ChannelBindingData(cs, cb)
	return err == nil
}

// ChooseFAST returns the first of FASTMechanisms that the server offers
// (offered: the <fast/> mechanisms) and FASTAllowed permits on cs.
func ChooseFAST(offered []string, cs tls.ConnectionState) (string, bool) {
	for _, m := range FASTMechanisms {
		if slices.Contains(offered, m) && FASTAllowed(m, cs) {
			return m, true
		}
	}
	return "", false
}

// NewFAST returns the FAST mechanism name (one of FASTMechanisms, such as
// HT-SHA-256-EXPR) authenticating with token, the secret of the server's <token/>
// element as received. The authcid is the username of the negotiator's
// Credentials (the localpart). Start fails when the negotiator's TLS state
// does not allow the mechanism (see FASTAllowed; -UNIQ on TLS 1.3 always
// fails). The mechanism expects the server's additional data (the Responder
// signature) and fails without it or on a mismatch.
func NewFAST(name string, token []byte) (sasl.Mechanism, bool) {
	cb, h, ok := parseHT(name)
	if !ok || len(token) == 0 {
		return sasl.Mechanism{}, false
	}
	f := &fastClient{name: name, cb: cb, hash: h, token: bytes.Clone(token)}
	return sasl.Mechanism{Name: name, Start: f.start, Next: f.next}, true
}

type fastClient struct {
	name, cb string
	hash     func() hash.Hash
	token    []byte
}

func (f *fastClient) cbData(n *sasl.Negotiator) ([]byte, error) {
	if f.cb == "" {
		return nil, nil
	}
	cs := n.TLSState()
	if cs == nil {
		return nil, fmt.Errorf("sasl: %s requires the TLS state for channel binding", f.name)
	}
	if f.cb == CBTLSUnique && (cs.Version >= tls.VersionTLS13 || cs.DidResume) {
		return nil, fmt.Errorf("sasl: %s is not allowed on this connection (TLS 1.3 or resumed)", f.name)
	}
	return ChannelBindingData(*cs, f.cb)
}

func (f *fastClient) start(n *sasl.Negotiator) (bool, []byte, any, error) {
	if n.State()&sasl.Receiving != 0 {
		return false, nil, nil, errors.New("sasl: this FAST mechanism is client-only")
	}
	user, _, _ := n.Credentials()
	if len(user) == 0 || bytes.IndexByte(user, 0) >= 0 {
		return false, nil, nil, errors.New("sasl: FAST needs a username without NUL")
	}
	cb, err := f.cbData(n)
	if err != nil {
		return false, nil, nil, err
	}
	initiator := hmacSum(f.hash, f.token, slices.Concat([]byte("Initiator"), cb))
	responder := hmacSum(f.hash, f.token, slices.Concat([]byte("Responder"), cb))
	resp := slices.Concat(user, []byte{0}, initiator)
	return true, resp, responder, nil
}

func (f *fastClient) next(n *sasl.Negotiator, challenge []byte, data any) (bool, []byte, any, error) {
	want, ok := data.([]byte)
	if !ok || n.State()&sasl.StepMask != sasl.AuthTextSent {
		return false, nil, nil, sasl.ErrTooManySteps
	}
	if len(challenge) == 0 {
		return false, nil, nil, fmt.Errorf("%w: the server sent no responder signature", ErrFASTResponder)
	}
	if !hmac.Equal(challenge, want) {
		return false, nil, nil, ErrFASTResponder
	}
	return false, nil, nil, nil
}
