package login

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"strings"
	"sync"

	"mellium.im/sasl"

	"github.com/pipebind/pipebind/internal/kdfcount"
)

// SCRAM (RFC 5802, RFC 7677) client with cached keys, channel binding
// (RFC 5929 tls-server-end-point, RFC 9266 tls-exporter) and XEP-0474 SSDP
// downgrade protection.

// MinScramIterations is the lowest PBKDF2 iteration count a SCRAM login
// accepts (RFC 7677 §4: at least 4096).
const MinScramIterations = 4096

// Channel-binding types (XEP-0440 names).
const (
	CBTLSExporter       = "tls-exporter"
	CBTLSServerEndPoint = "tls-server-end-point"
	CBTLSUnique         = "tls-unique"
)

var (
	// ErrDowngrade reports that the XEP-0474 SSDP hash sent by the server
	// does not match the mechanism and channel-binding lists the client saw:
	// an active attacker changed them.
	ErrDowngrade = errors.New("sasl: SCRAM downgrade detected (XEP-0474 hash mismatch)")
	// ErrScramIterations reports a server iteration count below
	// MinScramIterations.
	ErrScramIterations = errors.New("sasl: SCRAM iteration count too low")
	// ErrServerSignature reports a missing or wrong server signature (v=) in
	// the server-final-message: the server did not prove it knows the keys.
	ErrServerSignature = errors.New("sasl: SCRAM server signature did not verify")
)

// ScramServerError is a server-final-message carrying e=server-error-value.
type ScramServerError struct{ Value string }

func (e *ScramServerError) Error() string { return "sasl: SCRAM server error: " + e.Value }

// ScramKeys is what a SCRAM login derives from the password: cached per
// (account, server, mechanism, salt, iterations).
//
// Mechanism is the hash family without "-PLUS" ("SCRAM-SHA-256" for both
// SCRAM-SHA-256 and SCRAM-SHA-256-PLUS: their keys are the same). Neither the
// password nor the SaltedPassword is ever stored.
type ScramKeys struct {
	Mechanism            string
	Salt                 []byte
	Iterations           int
	ClientKey, ServerKey []byte
}

// KeyStore looks up and stores keys; implementations must be safe for
// concurrent use. A nil KeyStore means no cache. One KeyStore serves one
// (account, server) pair: the caller scopes it.
type KeyStore interface {
	ScramKeys(mechanism string, salt []byte, iterations int) (ScramKeys, bool)
	PutScramKeys(ScramKeys)
}

// MemoryKeyStore is an in-memory KeyStore for one account on one server.
// The zero value is ready to use.
type MemoryKeyStore struct {
	mu   sync.Mutex
	keys map[string]ScramKeys
}

func memKey(mech string, salt []byte, iter int) string {
	return mech + "\x00" + strconv.Itoa(iter) + "\x00" + string(salt)
}

// ScramKeys implements KeyStore.
func (s *MemoryKeyStore) ScramKeys(mech string, salt []byte, iter int) (ScramKeys, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[memKey(mech, salt, iter)]
	return k, ok
}

// PutScramKeys implements KeyStore.
func (s *MemoryKeyStore) PutScramKeys(k ScramKeys) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = make(map[string]ScramKeys)
	}
	s.keys[memKey(k.Mechanism, k.Salt, k.Iterations)] = k
}

// Clear forgets all keys (call it when the password changes or a login
// with cached keys is refused).
func (s *MemoryKeyStore) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = nil
}

// ScramOptions configures a SCRAM mechanism beyond its name.
type ScramOptions struct {
	// KeyStore caches the derived keys; nil derives them on every login.
	KeyStore KeyStore
	// ChannelBinding is the type used by a -PLUS mechanism: CBTLSExporter
	// (the default) or CBTLSServerEndPoint. Ignored for non-PLUS names.
	ChannelBinding string
	// Advertised is the list of SASL mechanisms the server advertised on the
	// SASL profile used (SASL2 or RFC 6120), and ChannelBindings the
	// XEP-0440 types it advertised (nil: no <sasl-channel-binding/>).
	// When Advertised is non-nil and the server-first-message carries the
	// XEP-0474 "h" attribute, the hash is checked against them and a
	// mismatch fails the login with ErrDowngrade. When Advertised is nil the
	// attribute is not checked (it is still covered by the proof).
	Advertised, ChannelBindings []string
	// Lists, if non-nil, overrides Advertised and ChannelBindings and is
	// called when the server-first-message arrives: a login pipelined from
	// cached features can then hash the live lists.
	Lists func() (advertised, channelBindings []string)

	nonce func() []byte // test hook
}

type scramFamily struct {
	base string // name without -PLUS
	h    func() hash.Hash
}

func scramHash(name string) (scramFamily, bool) {
	base := strings.TrimSuffix(name, "-PLUS")
	switch base {
	case "SCRAM-SHA-1":
		return scramFamily{base, sha1.New}, true
	case "SCRAM-SHA-256":
		return scramFamily{base, sha256.New}, true
	case "SCRAM-SHA-512":
		return scramFamily{base, sha512.New}, true
	}
	return scramFamily{}, false
}

// NewScram returns the SCRAM mechanism name ("SCRAM-SHA-1",
// "SCRAM-SHA-256", "SCRAM-SHA-512" and their "-PLUS" variants) using keys
// from ks when salt and iterations match, computing (PBKDF2) and storing
// them otherwise. -PLUS variants bind to tls-exporter.
func NewScram(name string, ks KeyStore) (sasl.Mechanism, bool) {
	return NewScramOptions(name, ScramOptions{KeyStore: ks})
}

// NewScramPlus is NewScram for a -PLUS name with channel-binding type
// cbType (CBTLSExporter or CBTLSServerEndPoint).
func NewScramPlus(name, cbType string, ks KeyStore) (sasl.Mechanism, bool) {
	if !isPlus(name) {
		return sasl.Mechanism{}, false
	}
	return NewScramOptions(name, ScramOptions{KeyStore: ks, ChannelBinding: cbType})
}

// NewScramOptions is NewScram with all options. It reports false for an
// unknown mechanism or channel-binding type.
//
// The negotiator must carry the credentials (sasl.Credentials), the remote
// mechanisms (sasl.RemoteMechanisms) and, for channel binding or to send
// the "y" flag, the TLS state (sasl.TLSState).
func NewScramOptions(name string, o ScramOptions) (sasl.Mechanism, bool) {
	fam, ok := scramHash(name)
	if !ok {
		return sasl.Mechanism{}, false
	}
	if isPlus(name) {
		switch o.ChannelBinding {
		case "":
			o.ChannelBinding = CBTLSExporter
		case CBTLSExporter, CBTLSServerEndPoint:
		default:
			return sasl.Mechanism{}, false
		}
	}
	c := &scramClient{name: name, fam: fam, o: o}
	return sasl.Mechanism{Name: name, Start: c.start, Next: c.next}, true
}

type scramClient struct {
	name string
	fam  scramFamily
	o    ScramOptions
}

// scramState is carried by the negotiator between steps.
type scramState struct {
	gs2             []byte
	clientFirstBare []byte
	nonce           []byte
	// after the client-final-message
	serverSig []byte
	keys      ScramKeys
	derived   bool // keys were derived (not read from the store)
}

// scramNonceLen is the number of random bytes in a client nonce (32
// printable characters once base64-encoded).
const scramNonceLen = 24

func newScramNonce() []byte {
	b := make([]byte, scramNonceLen)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	out := make([]byte, base64.RawStdEncoding.EncodedLen(len(b)))
	base64.RawStdEncoding.Encode(out, b)
	return out
}

// escapeSaslname escapes '=' and ',' (RFC 5802 §5.1).
func escapeSaslname(s []byte) []byte {
	if !bytes.ContainsAny(s, "=,") {
		return s
	}
	var b bytes.Buffer
	for _, c := range s {
		switch c {
		case '=':
			b.WriteString("=3D")
		case ',':
			b.WriteString("=2C")
		default:
			b.WriteByte(c)
		}
	}
	return b.Bytes()
}

// gs2Header decides the channel-binding flag (RFC 5802 §6):
//   - -PLUS: "p=<type>";
//   - otherwise "y" when the client could bind (the negotiator has a TLS
//     state) but the server offered no -PLUS mechanism, "n" when it did (the
//     client chose not to bind) or when the offer is unknown.
func (c *scramClient) gs2Header(n *sasl.Negotiator) ([]byte, error) {
	_, _, authz := n.Credentials()
	var flag string
	switch {
	case isPlus(c.name):
		if n.TLSState() == nil {
			return nil, errors.New("sasl: SCRAM with channel binding requires a TLS connection")
		}
		flag = "p=" + c.o.ChannelBinding
	case n.TLSState() != nil && n.RemoteMechanisms() != nil &&
		!slices.ContainsFunc(n.RemoteMechanisms(), func(m string) bool {
			return strings.HasPrefix(m, "SCRAM-") && isPlus(m)
		}):
		flag = "y"
	default:
		flag = "n"
	}
	h := []byte(flag + ",")
	if len(authz) > 0 {
		h = append(h, "a="...)
		h = append(h, escapeSaslname(authz)...)
	}
	return append(h, ','), nil
}

func (c *scramClient) start(n *sasl.Negotiator) (bool, []byte, any, error) {
	if n.State()&sasl.Receiving != 0 {
		return false, nil, nil, errors.New("sasl: this SCRAM mechanism is client-only")
	}
	gs2, err := c.gs2Header(n)
	if err != nil {
		return false, nil, nil, err
	}
	user, _, _ := n.Credentials()
	nonce := newScramNonce()
	if c.o.nonce != nil {
		nonce = c.o.nonce()
	}
	bare := slices.Concat([]byte("n="), escapeSaslname(user), []byte(",r="), nonce)
	st := &scramState{gs2: gs2, clientFirstBare: bare, nonce: nonce}
	return true, slices.Concat(gs2, bare), st, nil
}

func (c *scramClient) next(n *sasl.Negotiator, challenge []byte, data any) (bool, []byte, any, error) {
	st, ok := data.(*scramState)
	if !ok || n.State()&sasl.Receiving != 0 {
		return false, nil, nil, sasl.ErrInvalidState
	}
	switch n.State() & sasl.StepMask {
	case sasl.AuthTextSent:
		return c.clientFinal(n, challenge, st)
	case sasl.ResponseSent:
		return false, nil, nil, c.verifyServerFinal(challenge, st)
	}
	return false, nil, nil, sasl.ErrTooManySteps
}

// scramAttrs splits a SCRAM message into its attributes, in order.
func scramAttrs(msg []byte) ([][2]string, error) {
	var out [][2]string
	for f := range strings.SplitSeq(string(msg), ",") {
		if len(f) < 2 || f[1] != '=' || !('a' <= f[0] && f[0] <= 'z' || 'A' <= f[0] && f[0] <= 'Z') {
			return nil, fmt.Errorf("sasl: malformed SCRAM attribute %q", truncate(f, 32))
		}
		out = append(out, [2]string{f[:1], f[2:]})
	}
	return out, nil
}

func (c *scramClient) clientFinal(n *sasl.Negotiator, serverFirst []byte, st *scramState) (bool, []byte, any, error) {
	if len(serverFirst) == 0 {
		return false, nil, nil, errors.New("sasl: empty SCRAM server-first-message")
	}
	attrs, err := scramAttrs(serverFirst)
	if err != nil {
		return false, nil, nil, err
	}
	var (
		nonce, ssdp []byte
		salt        []byte
		iter        = -1
		seen        = map[string]bool{}
	)
	for i, a := range attrs {
		if seen[a[0]] {
			return false, nil, nil, fmt.Errorf("sasl: duplicate SCRAM attribute %q", a[0])
		}
		seen[a[0]] = true
		switch a[0] {
		case "m":
			return false, nil, nil, errors.New("sasl: server sent the reserved SCRAM attribute m")
		case "e":
			return false, nil, nil, &ScramServerError{Value: truncate(a[1], 128)}
		case "r":
			if i != 0 {
				return false, nil, nil, errors.New("sasl: SCRAM nonce is not the first attribute")
			}
			nonce = []byte(a[1])
		case "s":
			if salt, err = base64.StdEncoding.DecodeString(a[1]); err != nil || len(salt) == 0 {
				return false, nil, nil, errors.New("sasl: invalid SCRAM salt")
			}
		case "i":
			if iter, err = strconv.Atoi(a[1]); err != nil || iter < 1 {
				return false, nil, nil, errors.New("sasl: invalid SCRAM iteration count")
			}
		case "h": // XEP-0474 SSDP
			ssdp = []byte(a[1])
		}
	}
	switch {
	case nonce == nil || !bytes.HasPrefix(nonce, st.nonce) || len(nonce) == len(st.nonce):
		return false, nil, nil, errors.New("sasl: server nonce does not extend the client nonce")
	case salt == nil:
		return false, nil, nil, errors.New("sasl: SCRAM server-first-message without salt")
	case iter < 0:
		return false, nil, nil, errors.New("sasl: SCRAM server-first-message without iteration count")
	case iter < MinScramIterations:
		return false, nil, nil, fmt.Errorf("%w: the server asks for %d, at least %d are required", ErrScramIterations, iter, MinScramIterations)
	}
	if err := c.checkSSDP(ssdp); err != nil {
		return false, nil, nil, err
	}

	cbData, err := c.channelBinding(n)
	if err != nil {
		return false, nil, nil, err
	}
	without := slices.Concat([]byte("c="), []byte(base64.StdEncoding.EncodeToString(slices.Concat(st.gs2, cbData))), []byte(",r="), nonce)
	authMessage := slices.Concat(st.clientFirstBare, []byte(","), serverFirst, []byte(","), without)

	keys, derived, err := c.keys(n, salt, iter)
	if err != nil {
		return false, nil, nil, err
	}
	h := c.fam.h
	storedKey := h()
	storedKey.Write(keys.ClientKey)
	clientSig := hmacSum(h, storedKey.Sum(nil), authMessage)
	proof := make([]byte, len(keys.ClientKey))
	subtle.XORBytes(proof, keys.ClientKey, clientSig)

	st.serverSig = hmacSum(h, keys.ServerKey, authMessage)
	st.keys, st.derived = keys, derived
	final := slices.Concat(without, []byte(",p="), []byte(base64.StdEncoding.EncodeToString(proof)))
	return true, final, st, nil
}

func hmacSum(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

// keys returns the client and server keys from the store or derives them.
func (c *scramClient) keys(n *sasl.Negotiator, salt []byte, iter int) (ScramKeys, bool, error) {
	if ks := c.o.KeyStore; ks != nil {
		if k, ok := ks.ScramKeys(c.fam.base, salt, iter); ok && k.Mechanism == c.fam.base && k.Iterations == iter &&
			bytes.Equal(k.Salt, salt) && len(k.ClientKey) == c.fam.h().Size() && len(k.ServerKey) == c.fam.h().Size() {
			return k, false, nil
		}
	}
	_, password, _ := n.Credentials()
	kdfcount.AddPBKDF2()
	salted, err := pbkdf2.Key(c.fam.h, string(password), salt, iter, c.fam.h().Size())
	if err != nil {
		return ScramKeys{}, false, fmt.Errorf("sasl: pbkdf2: %w", err)
	}
	k := ScramKeys{
		Mechanism:  c.fam.base,
		Salt:       bytes.Clone(salt),
		Iterations: iter,
		ClientKey:  hmacSum(c.fam.h, salted, []byte("Client Key")),
		ServerKey:  hmacSum(c.fam.h, salted, []byte("Server Key")),
	}
	clear(salted)
	return k, true, nil
}

func (c *scramClient) verifyServerFinal(msg []byte, st *scramState) error {
	if len(msg) == 0 {
		return fmt.Errorf("%w: empty server-final-message", ErrServerSignature)
	}
	attrs, err := scramAttrs(msg)
	if err != nil {
		return err
	}
	switch attrs[0][0] {
	case "e":
		return &ScramServerError{Value: truncate(attrs[0][1], 128)}
	case "v":
		sig, err := base64.StdEncoding.DecodeString(attrs[0][1])
		if err != nil || !hmac.Equal(sig, st.serverSig) {
			return ErrServerSignature
		}
	default:
		return fmt.Errorf("%w: server-final-message without v=", ErrServerSignature)
	}
	// The keys are proven right: cache them.
	if st.derived && c.o.KeyStore != nil {
		c.o.KeyStore.PutScramKeys(st.keys)
	}
	return nil
}

// SSDPHash is the XEP-0474 hash of the advertised mechanism and
// channel-binding lists, base64-encoded: mechanisms sorted (i;octet) and
// joined by 0x1E, then, if channel bindings were advertised, 0x1F and the
// sorted types joined by 0x1E, hashed with h.
func SSDPHash(h func() hash.Hash, mechanisms, channelBindings []string) string {
	m := slices.Clone(mechanisms)
	slices.Sort(m)
	s := strings.Join(m, "\x1e")
	if len(channelBindings) > 0 {
		cb := slices.Clone(channelBindings)
		slices.Sort(cb)
		s += "\x1f" + strings.Join(cb, "\x1e")
	}
	d := h()
	d.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(d.Sum(nil))
}

func (c *scramClient) checkSSDP(got []byte) error {
	if got == nil {
		return nil
	}
	mechs, cbs := c.o.Advertised, c.o.ChannelBindings
	if c.o.Lists != nil {
		mechs, cbs = c.o.Lists()
	}
	if mechs == nil {
		return nil
	}
	want := SSDPHash(c.fam.h, mechs, cbs)
	if subtle.ConstantTimeCompare(got, []byte(want)) != 1 {
		return ErrDowngrade
	}
	return nil
}

// channelBinding returns the cbind-data for a -PLUS mechanism (nil
// otherwise).
func (c *scramClient) channelBinding(n *sasl.Negotiator) ([]byte, error) {
	if !isPlus(c.name) {
		return nil, nil
	}
	cs := n.TLSState()
	if cs == nil {
		return nil, errors.New("sasl: SCRAM with channel binding requires a TLS connection")
	}
	return ChannelBindingData(*cs, c.o.ChannelBinding)
}

// ChannelBindingData returns the channel-binding data of type cbType for a
// TLS connection: tls-exporter (RFC 9266: 32 bytes of
// EXPORTER-Channel-Binding keying material, TLS 1.3 or extended master
// secret), tls-server-end-point (RFC 5929 §4.1: the hash of the server's
// leaf certificate) or tls-unique (TLS 1.2 only).
func ChannelBindingData(cs tls.ConnectionState, cbType string) ([]byte, error) {
	switch cbType {
	case CBTLSExporter:
		d, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
		if err != nil {
			return nil, fmt.Errorf("sasl: tls-exporter: %w", err)
		}
		return d, nil
	case CBTLSServerEndPoint:
		if len(cs.PeerCertificates) == 0 {
			return nil, errors.New("sasl: tls-server-end-point: no server certificate")
		}
		return serverEndPoint(cs.PeerCertificates[0])
	case CBTLSUnique:
		if cs.Version >= tls.VersionTLS13 || len(cs.TLSUnique) == 0 {
			return nil, errors.New("sasl: tls-unique is not defined for this connection")
		}
		return bytes.Clone(cs.TLSUnique), nil
	}
	return nil, fmt.Errorf("sasl: unsupported channel-binding type %q", cbType)
}

// serverEndPoint hashes cert with its signature's hash (MD5 and SHA-1 are
// replaced by SHA-256). Signatures without a single hash (Ed25519) are not
// defined by RFC 5929 and are refused.
func serverEndPoint(cert *x509.Certificate) ([]byte, error) {
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
		return nil, fmt.Errorf("sasl: tls-server-end-point is undefined for certificates signed with %v", cert.SignatureAlgorithm)
	}
	h.Write(cert.Raw)
	return h.Sum(nil), nil
}
