package login

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"

	"mellium.im/sasl"
)

// FAST (XEP-0484) token authentication with the Hashed Token mechanisms
// (draft-schmaus-kitten-sasl-ht): one round trip, mutual authentication.
//
//	initiator:  authcid NUL HMAC-SHA-256(token, "Initiator" || cb-data)
//	responder:  HMAC-SHA-256(token, "Responder" || cb-data)  (SASL2 additional data)
//
// cb-data is empty for -NONE, the RFC 9266 tls-exporter data for -EXPR, the
// RFC 5929 tls-server-end-point data for -ENDP and the tls-unique data for
// -UNIQ (TLS 1.2 only).

// ErrFASTResponder reports a missing or wrong Responder signature: the
// server did not prove it knows the token.
var ErrFASTResponder = errors.New("sasl: FAST responder signature did not verify")

// FASTMechanisms lists the FAST mechanisms NewFAST implements, most
// preferred first (channel binding first).
var FASTMechanisms = []string{"HT-SHA-256-EXPR", "HT-SHA-256-ENDP", "HT-SHA-256-UNIQ", "HT-SHA-256-NONE"}

// fastCB maps a FAST mechanism to its channel-binding type ("" for NONE).
func fastCB(name string) (cb string, ok bool) {
	switch name {
	case "HT-SHA-256-NONE":
		return "", true
	case "HT-SHA-256-EXPR":
		return CBTLSExporter, true
	case "HT-SHA-256-ENDP":
		return CBTLSServerEndPoint, true
	case "HT-SHA-256-UNIQ":
		return CBTLSUnique, true
	}
	return "", false
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

// NewFAST returns the FAST mechanism name (HT-SHA-256-NONE, -EXPR, -ENDP or
// -UNIQ) authenticating with token, the secret of the server's <token/>
// element as received. The authcid is the username of the negotiator's
// Credentials (the localpart). Start fails when the negotiator's TLS state
// does not allow the mechanism (see FASTAllowed; -UNIQ on TLS 1.3 always
// fails). The mechanism expects the server's additional data (the Responder
// signature) and fails without it or on a mismatch.
func NewFAST(name string, token []byte) (sasl.Mechanism, bool) {
	cb, ok := fastCB(name)
	if !ok || len(token) == 0 {
		return sasl.Mechanism{}, false
	}
	f := &fastClient{name: name, cb: cb, token: bytes.Clone(token)}
	return sasl.Mechanism{Name: name, Start: f.start, Next: f.next}, true
}

type fastClient struct {
	name, cb string
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
	initiator := hmacSum(sha256.New, f.token, slices.Concat([]byte("Initiator"), cb))
	responder := hmacSum(sha256.New, f.token, slices.Concat([]byte("Responder"), cb))
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
