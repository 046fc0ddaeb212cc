package login

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/pipebind/pipebind/internal/kdfcount"
)

func creds(user, pw string) sasl.Option {
	return sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(pw), nil })
}

func fixedNonce(s string) func() []byte { return func() []byte { return []byte(s) } }

// rfcExchange runs a SCRAM client against the fixed messages of an RFC
// example.
type rfcExample struct {
	name, nonce              string
	clientFirst, serverFirst string
	clientFinal, serverFinal string
	password                 string
}

var (
	rfc5802 = rfcExample{
		name:        "SCRAM-SHA-1",
		nonce:       "fyko+d2lbbFgONRv9qkxdawL",
		clientFirst: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
		serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
		clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
		serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
		password:    "pencil",
	}
	rfc7677 = rfcExample{
		name:        "SCRAM-SHA-256",
		nonce:       "rOprNGfwEbeRWgbNEkqO",
		clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
		serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		clientFinal: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		password:    "pencil",
	}
)

func rfcClient(t testing.TB, ex rfcExample, ks KeyStore) *sasl.Negotiator {
	t.Helper()
	m, ok := NewScramOptions(ex.name, ScramOptions{KeyStore: ks, nonce: fixedNonce(ex.nonce)})
	if !ok {
		t.Fatalf("NewScramOptions(%s) not ok", ex.name)
	}
	return sasl.NewClient(m, creds("user", ex.password))
}

// runRFC runs the whole example and returns the error of the last step.
func runRFC(t testing.TB, ex rfcExample, ks KeyStore, serverFirst, serverFinal string) error {
	t.Helper()
	c := rfcClient(t, ex, ks)
	more, first, err := c.Step(nil)
	if err != nil || !more || string(first) != ex.clientFirst {
		t.Fatalf("client-first = %q, %v, %v; want %q", first, more, err, ex.clientFirst)
	}
	more, final, err := c.Step([]byte(serverFirst))
	if err != nil {
		return err
	}
	if !more {
		t.Fatal("client-final: more = false")
	}
	if serverFirst == ex.serverFirst && string(final) != ex.clientFinal {
		t.Fatalf("client-final = %q, want %q", final, ex.clientFinal)
	}
	more, _, err = c.Step([]byte(serverFinal))
	if err == nil && more {
		t.Fatal("more after server-final")
	}
	return err
}

func TestScramRFCExamples(t *testing.T) {
	for _, ex := range []rfcExample{rfc5802, rfc7677} {
		t.Run(ex.name, func(t *testing.T) {
			before := kdfcount.PBKDF2()
			if err := runRFC(t, ex, nil, ex.serverFirst, ex.serverFinal); err != nil {
				t.Fatal(err)
			}
			if d := kdfcount.PBKDF2() - before; d != 1 {
				t.Errorf("cold login did %d PBKDF2 derivations, want 1", d)
			}
		})
	}
}

func TestScramWarmLoginUsesKeyStore(t *testing.T) {
	for _, ex := range []rfcExample{rfc5802, rfc7677} {
		t.Run(ex.name, func(t *testing.T) {
			ks := &MemoryKeyStore{}
			if err := runRFC(t, ex, ks, ex.serverFirst, ex.serverFinal); err != nil {
				t.Fatal(err)
			}
			salt, _, _ := strings.Cut(strings.SplitN(ex.serverFirst, ",s=", 2)[1], ",")
			k, ok := ks.ScramKeys(ex.name, mustB64(t, salt), 4096)
			if !ok {
				t.Fatal("keys not stored after a verified login")
			}
			if k.Mechanism != ex.name || k.Iterations != 4096 || len(k.ClientKey) == 0 || len(k.ServerKey) == 0 {
				t.Fatalf("stored keys %+v", k)
			}
			before := kdfcount.PBKDF2()
			if err := runRFC(t, ex, ks, ex.serverFirst, ex.serverFinal); err != nil {
				t.Fatal(err)
			}
			if d := kdfcount.PBKDF2() - before; d != 0 {
				t.Errorf("warm login did %d PBKDF2 derivations, want 0", d)
			}
			// The warm login still verifies the server.
			bad := tamperB64(ex.serverFinal)
			if err := runRFC(t, ex, ks, ex.serverFirst, bad); !errors.Is(err, ErrServerSignature) {
				t.Fatalf("warm login with tampered v=: %v, want ErrServerSignature", err)
			}
			if d := kdfcount.PBKDF2() - before; d != 0 {
				t.Errorf("warm logins did %d PBKDF2 derivations, want 0", d)
			}
		})
	}
}

func TestScramWrongKeysNotStored(t *testing.T) {
	ks := &MemoryKeyStore{}
	ex := rfc7677
	ex.password = "wrong"
	c := rfcClient(t, ex, ks)
	c.Step(nil)
	if _, _, err := c.Step([]byte(ex.serverFirst)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Step([]byte(ex.serverFinal)); !errors.Is(err, ErrServerSignature) {
		t.Fatalf("wrong password: %v, want ErrServerSignature", err)
	}
	if len(ks.keys) != 0 {
		t.Fatal("keys of an unverified login were stored")
	}
}

func mustB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tamperB64 flips a bit of the value of a "v=" message.
func tamperB64(msg string) string {
	b, _ := base64.StdEncoding.DecodeString(msg[2:])
	b[0] ^= 1
	return "v=" + base64.StdEncoding.EncodeToString(b)
}

func TestScramRefusals(t *testing.T) {
	ex := rfc5802
	sf := ex.serverFirst
	for _, tc := range []struct {
		name                     string
		serverFirst, serverFinal string
		want                     error
		contains                 string
	}{
		{"iterations 4095", strings.Replace(sf, "i=4096", "i=4095", 1), ex.serverFinal, ErrScramIterations, ""},
		{"iterations 1", strings.Replace(sf, "i=4096", "i=1", 1), ex.serverFinal, ErrScramIterations, ""},
		{"tampered v", sf, tamperB64(ex.serverFinal), ErrServerSignature, ""},
		{"missing server-final", sf, "", ErrServerSignature, ""},
		{"server error", sf, "e=invalid-proof", nil, "invalid-proof"},
		{"no v", sf, "x=1", ErrServerSignature, ""},
		{"reserved m", "m=ext," + sf, ex.serverFinal, nil, "reserved"},
		{"foreign nonce", strings.Replace(sf, "r=fyko", "r=fyk0", 1), ex.serverFinal, nil, "nonce"},
		{"nonce not extended", "r=" + ex.nonce + ",s=QSXCR+Q6sek8bf92,i=4096", ex.serverFinal, nil, "nonce"},
		{"no salt", "r=fyko+d2lbbFgONRv9qkxdawL3rfc,i=4096", ex.serverFinal, nil, "salt"},
		{"no iterations", "r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92", ex.serverFinal, nil, "iteration"},
		{"server-first error", "e=other-error", ex.serverFinal, nil, "other-error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runRFC(t, ex, nil, tc.serverFirst, tc.serverFinal)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.contains != "" && !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.contains)
			}
		})
	}
	var se *ScramServerError
	if err := runRFC(t, ex, nil, sf, "e=invalid-proof"); !errors.As(err, &se) || se.Value != "invalid-proof" {
		t.Fatalf("e=: %v", err)
	}
}

func TestScramConstructors(t *testing.T) {
	for _, n := range []string{"SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-512", "SCRAM-SHA-512-PLUS"} {
		if m, ok := NewScram(n, nil); !ok || m.Name != n {
			t.Errorf("NewScram(%s) = %v, %v", n, m.Name, ok)
		}
	}
	for _, n := range []string{"PLAIN", "SCRAM-MD5", "SCRAM-SHA-256-PLUSX", ""} {
		if _, ok := NewScram(n, nil); ok {
			t.Errorf("NewScram(%s) ok", n)
		}
	}
	if _, ok := NewScramPlus("SCRAM-SHA-256", CBTLSExporter, nil); ok {
		t.Error("NewScramPlus accepted a non-PLUS name")
	}
	if _, ok := NewScramPlus("SCRAM-SHA-256-PLUS", "tls-unique", nil); ok {
		t.Error("NewScramPlus accepted tls-unique")
	}
	if _, ok := NewScramPlus("SCRAM-SHA-256-PLUS", CBTLSServerEndPoint, nil); !ok {
		t.Error("NewScramPlus refused tls-server-end-point")
	}
}

func TestScramNonce(t *testing.T) {
	m, _ := NewScram("SCRAM-SHA-256", nil)
	seen := map[string]bool{}
	for range 20 {
		c := sasl.NewClient(m, creds("user", "pencil"))
		_, first, err := c.Step(nil)
		if err != nil {
			t.Fatal(err)
		}
		nonce := strings.TrimPrefix(string(first), "n,,n=user,r=")
		if len(nonce) < 24 || strings.ContainsAny(nonce, ",=") || seen[nonce] {
			t.Fatalf("nonce %q", nonce)
		}
		for _, r := range nonce {
			if r < 0x21 || r > 0x7e {
				t.Fatalf("nonce %q is not printable", nonce)
			}
		}
		seen[nonce] = true
	}
}

func TestScramGS2Flag(t *testing.T) {
	cs := tls.ConnectionState{Version: tls.VersionTLS13}
	for _, tc := range []struct {
		name   string
		opts   []sasl.Option
		prefix string
	}{
		{"no TLS state", []sasl.Option{sasl.RemoteMechanisms("SCRAM-SHA-256")}, "n,,"},
		{"server offers no PLUS", []sasl.Option{sasl.TLSState(cs), sasl.RemoteMechanisms("SCRAM-SHA-1", "SCRAM-SHA-256")}, "y,,"},
		{"server offers PLUS", []sasl.Option{sasl.TLSState(cs), sasl.RemoteMechanisms("SCRAM-SHA-256", "SCRAM-SHA-1-PLUS")}, "n,,"},
		{"offer unknown", []sasl.Option{sasl.TLSState(cs)}, "n,,"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := NewScram("SCRAM-SHA-256", nil)
			c := sasl.NewClient(m, append(tc.opts, creds("user", "pencil"))...)
			_, first, err := c.Step(nil)
			if err != nil || !strings.HasPrefix(string(first), tc.prefix+"n=user,r=") {
				t.Fatalf("client-first %q, %v; want prefix %q", first, err, tc.prefix)
			}
		})
	}
	// authzid and username are saslname-escaped.
	m, _ := NewScram("SCRAM-SHA-256", nil)
	c := sasl.NewClient(m, sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte("a,b=c"), []byte("pw"), []byte("x=y")
	}))
	_, first, _ := c.Step(nil)
	if !strings.HasPrefix(string(first), "n,a=x=3Dy,n=a=2Cb=3Dc,r=") {
		t.Fatalf("client-first %q", first)
	}
	// -PLUS without TLS state fails.
	m, _ = NewScram("SCRAM-SHA-256-PLUS", nil)
	if _, _, err := sasl.NewClient(m, creds("user", "pw")).Step(nil); err == nil {
		t.Fatal("-PLUS without TLS state accepted")
	}
}

// testServer is an independent SCRAM server for the tests: channel binding
// and SSDP included.
type testServer struct {
	h              func() hash.Hash
	password       string
	salt           []byte
	iter           int
	gs2            string // expected gs2 header
	cbData         []byte // expected channel-binding data
	ssdp           string // h= attribute to send, "" for none
	nonce          string
	first          string // client-first-message-bare
	serverFirstMsg string
}

func (s *testServer) serverFirst(t testing.TB, clientFirst []byte) []byte {
	t.Helper()
	cf := string(clientFirst)
	if !strings.HasPrefix(cf, s.gs2) {
		t.Fatalf("client-first %q, want gs2 header %q", cf, s.gs2)
	}
	s.first = strings.TrimPrefix(cf, s.gs2)
	cnonce := s.first[strings.Index(s.first, ",r=")+3:]
	s.nonce = cnonce + "srvNONCE"
	s.serverFirstMsg = fmt.Sprintf("r=%s,s=%s,i=%d", s.nonce, base64.StdEncoding.EncodeToString(s.salt), s.iter)
	if s.ssdp != "" {
		s.serverFirstMsg += ",h=" + s.ssdp
	}
	return []byte(s.serverFirstMsg)
}

func (s *testServer) serverFinal(t testing.TB, clientFinal []byte) ([]byte, error) {
	t.Helper()
	cf := string(clientFinal)
	i := strings.LastIndex(cf, ",p=")
	without, proofB64 := cf[:i], cf[i+3:]
	wantC := "c=" + base64.StdEncoding.EncodeToString(append([]byte(s.gs2), s.cbData...)) + ",r=" + s.nonce
	if without != wantC {
		return nil, fmt.Errorf("client-final-without-proof %q, want %q", without, wantC)
	}
	salted, err := pbkdf2.Key(s.h, s.password, s.salt, s.iter, s.h().Size())
	if err != nil {
		t.Fatal(err)
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(s.h, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	auth := s.first + "," + s.serverFirstMsg + "," + without
	clientKey := mac(salted, "Client Key")
	st := s.h()
	st.Write(clientKey)
	sig := mac(st.Sum(nil), auth)
	proof, _ := base64.StdEncoding.DecodeString(proofB64)
	if len(proof) != len(sig) {
		return nil, errors.New("bad proof length")
	}
	got := make([]byte, len(sig))
	subtle.XORBytes(got, proof, sig)
	st = s.h()
	st.Write(got)
	st2 := s.h()
	st2.Write(clientKey)
	if !bytes.Equal(st.Sum(nil), st2.Sum(nil)) {
		return nil, errors.New("invalid proof")
	}
	return []byte("v=" + base64.StdEncoding.EncodeToString(mac(mac(salted, "Server Key"), auth))), nil
}

// exchange runs client c against s and returns the client's error.
func (s *testServer) exchange(t testing.TB, c *sasl.Negotiator) error {
	t.Helper()
	_, first, err := c.Step(nil)
	if err != nil {
		return err
	}
	_, final, err := c.Step(s.serverFirst(t, first))
	if err != nil {
		return err
	}
	sf, err := s.serverFinal(t, final)
	if err != nil {
		t.Fatalf("server refused: %v", err)
	}
	more, _, err := c.Step(sf)
	if err == nil && more {
		t.Fatal("more after server-final")
	}
	return err
}

func TestSSDPHashXEPExample(t *testing.T) {
	// XEP-0474 §Full Example.
	got := SSDPHash(sha1.New, []string{"SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"}, []string{"tls-server-end-point", "tls-exporter"})
	if got != "G6k/rBLDqgOhRRaCuuatSDFkJ08=" {
		t.Fatalf("SSDPHash = %s", got)
	}
	// Without XEP-0440 no 0x1F separator.
	d := sha256.Sum256([]byte("SCRAM-SHA-1\x1eSCRAM-SHA-256"))
	if got := SSDPHash(sha256.New, []string{"SCRAM-SHA-256", "SCRAM-SHA-1"}, nil); got != base64.StdEncoding.EncodeToString(d[:]) {
		t.Fatalf("SSDPHash without channel bindings = %s", got)
	}
}

func TestScramSSDP(t *testing.T) {
	mechs := []string{"SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"}
	cbs := []string{"tls-exporter", "tls-server-end-point"}
	serverHash := SSDPHash(sha256.New, mechs, cbs)
	for _, tc := range []struct {
		name       string
		advertised []string
		cbs        []string
		lists      func() ([]string, []string)
		want       error
	}{
		{"match", []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1"}, []string{"tls-server-end-point", "tls-exporter"}, nil, nil},
		{"mechanism stripped", []string{"SCRAM-SHA-1", "SCRAM-SHA-256"}, cbs, nil, ErrDowngrade},
		{"channel binding stripped", mechs, []string{"tls-server-end-point"}, nil, ErrDowngrade},
		{"channel bindings hidden", mechs, nil, nil, ErrDowngrade},
		{"not checked without lists", nil, nil, nil, nil},
		{"late lists match", nil, nil, func() ([]string, []string) { return mechs, cbs }, nil},
		{"late lists mismatch", mechs, cbs, func() ([]string, []string) { return mechs[:2], cbs }, ErrDowngrade},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &testServer{h: sha256.New, password: "pencil", salt: []byte("saltsalt"), iter: 4096, gs2: "n,,", ssdp: serverHash}
			m, _ := NewScramOptions("SCRAM-SHA-256", ScramOptions{Advertised: tc.advertised, ChannelBindings: tc.cbs, Lists: tc.lists})
			err := s.exchange(t, sasl.NewClient(m, creds("user", "pencil"), sasl.RemoteMechanisms(mechs...)))
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// tlsPair returns the client's and the server's state of a real TLS
// connection over loopback. verified reports whether the client verified
// the server's certificate.
func tlsPair(t testing.TB, maxVersion uint16) (client, server tls.ConnectionState, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "example.org"},
		DNSNames:              []string{"example.org"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		cs  tls.ConnectionState
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- res{err: err}
			return
		}
		s := tls.Server(c, &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
			MaxVersion:   maxVersion,
		})
		err = s.Handshake()
		ch <- res{s.ConnectionState(), err}
		// Keep reading so TLS 1.3 session tickets can be written.
		go func() { _, _ = s.Read(make([]byte, 1)); s.Close() }()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, &tls.Config{RootCAs: pool, ServerName: "example.org", MaxVersion: maxVersion})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return tc.ConnectionState(), r.cs, cert
}

func TestScramPlusRealTLS(t *testing.T) {
	client, server, cert := tlsPair(t, tls.VersionTLS13)
	if client.Version != tls.VersionTLS13 {
		t.Fatalf("TLS version %x", client.Version)
	}
	exporter, err := server.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	endpoint := sha256.Sum256(cert.Raw) // ECDSA-with-SHA256 certificate
	for _, tc := range []struct {
		mech, cb string
		data     []byte
	}{
		{"SCRAM-SHA-256-PLUS", CBTLSExporter, exporter},
		{"SCRAM-SHA-1-PLUS", CBTLSExporter, exporter},
		{"SCRAM-SHA-256-PLUS", CBTLSServerEndPoint, endpoint[:]},
		{"SCRAM-SHA-512-PLUS", "", exporter}, // default type
	} {
		t.Run(tc.mech+"/"+tc.cb, func(t *testing.T) {
			fam, _ := scramHash(tc.mech)
			cb := tc.cb
			if cb == "" {
				cb = CBTLSExporter
			}
			s := &testServer{h: fam.h, password: "pencil", salt: []byte("NaCl-NaCl"), iter: 4096, gs2: "p=" + cb + ",,", cbData: tc.data}
			m, ok := NewScramOptions(tc.mech, ScramOptions{ChannelBinding: tc.cb})
			if !ok {
				t.Fatal("not ok")
			}
			c := sasl.NewClient(m, creds("user", "pencil"), sasl.TLSState(client), sasl.RemoteMechanisms(tc.mech))
			if err := s.exchange(t, c); err != nil {
				t.Fatal(err)
			}
		})
	}
	// A different TLS connection's binding data does not verify.
	other, _, _ := tlsPair(t, tls.VersionTLS13)
	s := &testServer{h: sha256.New, password: "pencil", salt: []byte("NaCl-NaCl"), iter: 4096, gs2: "p=tls-exporter,,", cbData: exporter}
	m, _ := NewScram("SCRAM-SHA-256-PLUS", nil)
	c := sasl.NewClient(m, creds("user", "pencil"), sasl.TLSState(other))
	_, first, _ := c.Step(nil)
	_, final, err := c.Step(s.serverFirst(t, first))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.serverFinal(t, final); err == nil {
		t.Fatal("server accepted the binding of another connection")
	}
}

// TestScramMelliumServer interoperates with mellium's server-side SCRAM
// (what internal/xmpptest uses).
func TestScramMelliumServer(t *testing.T) {
	salt := []byte("pipebind-salt")
	for _, tc := range []struct {
		server   sasl.Mechanism
		h        func() hash.Hash
		password string
		ok       bool
	}{
		{sasl.ScramSha256, sha256.New, "pencil", true},
		{sasl.ScramSha1, sha1.New, "pencil", true},
		{sasl.ScramSha256, sha256.New, "wrong", false},
	} {
		t.Run(tc.server.Name+"/"+tc.password, func(t *testing.T) {
			srv := sasl.NewServer(tc.server, nil, sasl.SaltedCredentials(func(u, _ []byte, _ string) ([]byte, []byte, int64, error) {
				if string(u) != "user" {
					return nil, nil, 0, sasl.ErrAuthn
				}
				sp, err := pbkdf2.Key(tc.h, "pencil", salt, 4096, tc.h().Size())
				return salt, sp, 4096, err
			}))
			ks := &MemoryKeyStore{}
			for round := range 2 {
				srv.Reset()
				m, _ := NewScram(tc.server.Name, ks)
				c := sasl.NewClient(m, creds("user", tc.password), sasl.RemoteMechanisms(tc.server.Name))
				before := kdfcount.PBKDF2()
				_, cf, err := c.Step(nil)
				if err != nil {
					t.Fatal(err)
				}
				_, sf, err := srv.Step(cf)
				if err != nil {
					t.Fatal(err)
				}
				_, fin, err := c.Step(sf)
				if err != nil {
					t.Fatal(err)
				}
				_, sfin, err := srv.Step(fin)
				if !tc.ok {
					if err == nil {
						t.Fatal("server accepted a wrong password")
					}
					if len(ks.keys) != 0 {
						t.Fatal("keys stored for a refused login")
					}
					return
				}
				if err != nil {
					t.Fatalf("server: %v", err)
				}
				if _, _, err := c.Step(sfin); err != nil {
					t.Fatalf("client on server-final %q: %v", sfin, err)
				}
				if want := uint64(1 - round); kdfcount.PBKDF2()-before != want {
					t.Fatalf("round %d: %d PBKDF2 calls, want %d", round, kdfcount.PBKDF2()-before, want)
				}
			}
		})
	}
}

// benchExchange precomputes a SCRAM-SHA-256 exchange at 4096 iterations
// with a fixed nonce so that the benchmark measures the client only.
func benchExchange(b *testing.B) (serverFirst, serverFinal []byte) {
	s := &testServer{h: sha256.New, password: "pencil", salt: []byte("bench-salt"), iter: 4096, gs2: "n,,"}
	m, _ := NewScramOptions("SCRAM-SHA-256", ScramOptions{nonce: fixedNonce("benchbenchbenchbenchbench")})
	c := sasl.NewClient(m, creds("user", "pencil"))
	_, first, _ := c.Step(nil)
	serverFirst = s.serverFirst(b, first)
	_, final, err := c.Step(serverFirst)
	if err != nil {
		b.Fatal(err)
	}
	serverFinal, err = s.serverFinal(b, final)
	if err != nil {
		b.Fatal(err)
	}
	return serverFirst, serverFinal
}

func benchLogin(b *testing.B, ks KeyStore) {
	sf, sfin := benchExchange(b)
	m, _ := NewScramOptions("SCRAM-SHA-256", ScramOptions{KeyStore: ks, nonce: fixedNonce("benchbenchbenchbenchbench")})
	if ks != nil { // prime the store
		c := sasl.NewClient(m, creds("user", "pencil"))
		c.Step(nil)
		c.Step(sf)
		if _, _, err := c.Step(sfin); err != nil {
			b.Fatal(err)
		}
	}
	before := kdfcount.PBKDF2()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c := sasl.NewClient(m, creds("user", "pencil"))
		c.Step(nil)
		c.Step(sf)
		if _, _, err := c.Step(sfin); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(kdfcount.PBKDF2()-before)/float64(b.N), "pbkdf2/op")
}

// BenchmarkScramLoginCold is the client-side cost of a SCRAM-SHA-256 login
// at 4096 iterations without a key cache.
func BenchmarkScramLoginCold(b *testing.B) { benchLogin(b, nil) }

// BenchmarkScramLoginWarm is the same login with the keys cached.
func BenchmarkScramLoginWarm(b *testing.B) { benchLogin(b, &MemoryKeyStore{}) }

// TestScramMelliumServerYFlag: a client able to bind that sees no -PLUS
// offer sends "y,,", which mellium's server accepts and signs.
func TestScramMelliumServerYFlag(t *testing.T) {
	salt := []byte("pipebind-salt")
	srv := sasl.NewServer(sasl.ScramSha256, nil, sasl.SaltedCredentials(func(_, _ []byte, _ string) ([]byte, []byte, int64, error) {
		sp, err := pbkdf2.Key(sha256.New, "pencil", salt, 4096, 32)
		return salt, sp, 4096, err
	}))
	m, _ := NewScram("SCRAM-SHA-256", nil)
	c := sasl.NewClient(m, creds("user", "pencil"), sasl.TLSState(tls.ConnectionState{Version: tls.VersionTLS13}), sasl.RemoteMechanisms("SCRAM-SHA-256"))
	_, cf, _ := c.Step(nil)
	if !bytes.HasPrefix(cf, []byte("y,,")) {
		t.Fatalf("client-first %q", cf)
	}
	_, sf, err := srv.Step(cf)
	if err != nil {
		t.Fatal(err)
	}
	_, fin, err := c.Step(sf)
	if err != nil {
		t.Fatal(err)
	}
	_, sfin, err := srv.Step(fin)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Step(sfin); err != nil {
		t.Fatal(err)
	}
}

// TestScramKeyStoreConcurrent shares one KeyStore between parallel logins.
func TestScramKeyStoreConcurrent(t *testing.T) {
	ks := &MemoryKeyStore{}
	errc := make(chan error, 8)
	for range 8 {
		go func() {
			s := &testServer{h: sha256.New, password: "pencil", salt: []byte("shared-salt"), iter: 4096, gs2: "n,,"}
			m, _ := NewScram("SCRAM-SHA-256", ks)
			c := sasl.NewClient(m, creds("user", "pencil"))
			_, first, err := c.Step(nil)
			if err != nil {
				errc <- err
				return
			}
			_, final, err := c.Step(s.serverFirst(t, first))
			if err != nil {
				errc <- err
				return
			}
			sf, err := s.serverFinal(t, final)
			if err != nil {
				errc <- err
				return
			}
			_, _, err = c.Step(sf)
			errc <- err
		}()
	}
	for range 8 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := ks.ScramKeys("SCRAM-SHA-256", []byte("shared-salt"), 4096); !ok {
		t.Fatal("keys not stored")
	}
}
