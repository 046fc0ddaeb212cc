package login

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"crypto/tls"
	"errors"
	"hash"
	"slices"
	"testing"

	"mellium.im/sasl"
)

// htMAC computes the XEP-0484 / SASL HT values independently of fast.go.
func htMAC(token []byte, label string, cb []byte) []byte {
	m := hmac.New(sha256.New, token)
	m.Write([]byte(label))
	m.Write(cb)
	return m.Sum(nil)
}

func fastClient1(t *testing.T, name string, token []byte, opts ...sasl.Option) *sasl.Negotiator {
	t.Helper()
	m, ok := NewFAST(name, token)
	if !ok {
		t.Fatalf("NewFAST(%s) not ok", name)
	}
	return sasl.NewClient(m, append(opts, creds("alice", "unused password"))...)
}

func TestFASTNone(t *testing.T) {
	token := []byte("WXZzciBwYmFmdmZnZiBqdmd1IGp2eXFhcmZm") // XEP-0484 example token
	c := fastClient1(t, "HT-SHA-256-NONE", token)
	more, resp, err := c.Step(nil)
	if err != nil || !more {
		t.Fatalf("Step = %v, %v", more, err)
	}
	want := append([]byte("alice\x00"), htMAC(token, "Initiator", nil)...)
	if !bytes.Equal(resp, want) {
		t.Fatalf("initial response %x, want %x", resp, want)
	}
	more, _, err = c.Step(htMAC(token, "Responder", nil))
	if err != nil || more {
		t.Fatalf("responder: %v, %v", more, err)
	}

	for name, bad := range map[string][]byte{
		"wrong responder":    htMAC([]byte("other token"), "Responder", nil),
		"initiator echoed":   htMAC(token, "Initiator", nil),
		"missing responder":  nil,
		"truncated":          htMAC(token, "Responder", nil)[:31],
		"responder with cb ": htMAC(token, "Responder", []byte{1}),
	} {
		t.Run(name, func(t *testing.T) {
			c := fastClient1(t, "HT-SHA-256-NONE", token)
			c.Step(nil)
			_, _, err := c.Step(bad)
			if !errors.Is(err, ErrFASTResponder) {
				t.Fatalf("err = %v, want ErrFASTResponder", err)
			}
		})
	}
}

func TestFASTChannelBinding(t *testing.T) {
	token := []byte("R3VyIHpiZmcgbnl2aXIgdmYgZ3VyIGp2eXFyZmcu")
	client, server, cert := tlsPair(t, tls.VersionTLS13)
	exporter, err := server.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	endpoint := sha256.Sum256(cert.Raw)
	for name, cb := range map[string][]byte{
		"HT-SHA-256-EXPR": exporter,
		"HT-SHA-256-ENDP": endpoint[:],
	} {
		t.Run(name, func(t *testing.T) {
			if !FASTAllowed(name, client) {
				t.Fatal("FASTAllowed = false")
			}
			c := fastClient1(t, name, token, sasl.TLSState(client))
			_, resp, err := c.Step(nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := append([]byte("alice\x00"), htMAC(token, "Initiator", cb)...); !bytes.Equal(resp, want) {
				t.Fatalf("initial response %x, want %x", resp, want)
			}
			if _, _, err := c.Step(htMAC(token, "Responder", cb)); err != nil {
				t.Fatal(err)
			}
			// A responder computed without the binding is refused.
			c = fastClient1(t, name, token, sasl.TLSState(client))
			c.Step(nil)
			if _, _, err := c.Step(htMAC(token, "Responder", nil)); !errors.Is(err, ErrFASTResponder) {
				t.Fatalf("err = %v, want ErrFASTResponder", err)
			}
			// Without TLS state there is nothing to bind to.
			if _, _, err := fastClient1(t, name, token).Step(nil); err == nil {
				t.Fatal("channel binding without TLS state accepted")
			}
		})
	}
}

func TestFASTUniq(t *testing.T) {
	token := []byte("token")
	// TLS 1.3: never tls-unique.
	c13, _, _ := tlsPair(t, tls.VersionTLS13)
	if FASTAllowed("HT-SHA-256-UNIQ", c13) {
		t.Fatal("UNIQ allowed on TLS 1.3")
	}
	if _, _, err := fastClient1(t, "HT-SHA-256-UNIQ", token, sasl.TLSState(c13)).Step(nil); err == nil {
		t.Fatal("UNIQ started on TLS 1.3")
	}
	fake13 := tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true, TLSUnique: []byte("x")}
	if FASTAllowed("HT-SHA-256-UNIQ", fake13) {
		t.Fatal("UNIQ allowed on TLS 1.3 with tls-unique data")
	}
	if _, _, err := fastClient1(t, "HT-SHA-256-UNIQ", token, sasl.TLSState(fake13)).Step(nil); err == nil {
		t.Fatal("UNIQ started on TLS 1.3 with tls-unique data")
	}
	// TLS 1.2: the server's tls-unique.
	c12, s12, _ := tlsPair(t, tls.VersionTLS12)
	if c12.Version != tls.VersionTLS12 || len(s12.TLSUnique) == 0 {
		t.Fatalf("TLS 1.2 state: version %x, tls-unique %x", c12.Version, s12.TLSUnique)
	}
	if !FASTAllowed("HT-SHA-256-UNIQ", c12) {
		t.Fatal("UNIQ not allowed on TLS 1.2")
	}
	c := fastClient1(t, "HT-SHA-256-UNIQ", token, sasl.TLSState(c12))
	_, resp, err := c.Step(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]byte("alice\x00"), htMAC(token, "Initiator", s12.TLSUnique)...); !bytes.Equal(resp, want) {
		t.Fatal("UNIQ initial response mismatch")
	}
	if _, _, err := c.Step(htMAC(token, "Responder", s12.TLSUnique)); err != nil {
		t.Fatal(err)
	}
}

func TestFASTAllowedAndConstructors(t *testing.T) {
	client, _, _ := tlsPair(t, tls.VersionTLS13)
	if !FASTAllowed("HT-SHA-256-NONE", client) {
		t.Error("NONE refused over a verified TLS 1.3 connection")
	}
	unverified := client
	unverified.VerifiedChains = nil
	if FASTAllowed("HT-SHA-256-NONE", unverified) {
		t.Error("NONE allowed over an unverified certificate")
	}
	if FASTAllowed("HT-SHA-256-EXPR", tls.ConnectionState{}) {
		t.Error("EXPR allowed without a handshake")
	}
	if FASTAllowed("HT-SHA-1-NONE", client) || FASTAllowed("HT-SHA-512-FOO", client) || FASTAllowed("SCRAM-SHA-256", client) {
		t.Error("unknown mechanism allowed")
	}
	if m, ok := ChooseFAST([]string{"HT-SHA-256-NONE", "HT-SHA-256-UNIQ", "HT-SHA-256-EXPR"}, client); !ok || m != "HT-SHA-256-EXPR" {
		t.Errorf("ChooseFAST = %s, %v", m, ok)
	}
	if m, ok := ChooseFAST([]string{"HT-SHA-256-UNIQ", "HT-SHA-256-NONE"}, client); !ok || m != "HT-SHA-256-NONE" {
		t.Errorf("ChooseFAST = %s, %v", m, ok)
	}
	for _, n := range []string{"HT-SHA-256-NONE", "HT-SHA-256-EXPR", "HT-SHA-256-ENDP", "HT-SHA-256-UNIQ"} {
		if m, ok := NewFAST(n, []byte("t")); !ok || m.Name != n {
			t.Errorf("NewFAST(%s) not ok", n)
		}
	}
	if _, ok := NewFAST("HT-SHA-256-NONE", nil); ok {
		t.Error("NewFAST accepted an empty token")
	}
	if _, ok := NewFAST("HT-SHA-3-NONE", []byte("t")); ok {
		t.Error("NewFAST accepted an unknown mechanism")
	}
	// No username: refused.
	m, _ := NewFAST("HT-SHA-256-NONE", []byte("t"))
	if _, _, err := sasl.NewClient(m).Step(nil); err == nil {
		t.Error("FAST without a username accepted")
	}
}

// TestFASTHashFamilies: every hash of FASTMechanisms (SHA-256, -384, -512
// and the SHA3 family, as MongooseIM offers them) computes the HMACs of the
// draft with that hash, checked against crypto's own, with and without
// channel binding; and the preference order is channel binding first,
// then the longer hash.
func TestFASTHashFamilies(t *testing.T) {
	token := []byte("aGFzaCBhZ2lsaXR5")
	client, server, _ := tlsPair(t, tls.VersionTLS13)
	exporter, err := server.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]func() hash.Hash{
		"SHA-256": sha256.New, "SHA-384": sha512.New384, "SHA-512": sha512.New,
		"SHA3-256": func() hash.Hash { return sha3.New256() },
		"SHA3-384": func() hash.Hash { return sha3.New384() },
		"SHA3-512": func() hash.Hash { return sha3.New512() },
	} {
		for suffix, cb := range map[string][]byte{"NONE": nil, "EXPR": exporter} {
			mech := "HT-" + name + "-" + suffix
			t.Run(mech, func(t *testing.T) {
				mac := func(label string) []byte {
					m := hmac.New(h, token)
					m.Write([]byte(label))
					m.Write(cb)
					return m.Sum(nil)
				}
				if !slices.Contains(FASTMechanisms, mech) || !FASTAllowed(mech, client) {
					t.Fatalf("%s not offered by FASTMechanisms or not allowed", mech)
				}
				c := fastClient1(t, mech, token, sasl.TLSState(client))
				_, resp, err := c.Step(nil)
				if err != nil {
					t.Fatal(err)
				}
				if want := append([]byte("alice\x00"), mac("Initiator")...); !bytes.Equal(resp, want) {
					t.Fatalf("initial response %x, want %x", resp, want)
				}
				if _, _, err := c.Step(htMAC(token, "Responder", cb)); !errors.Is(err, ErrFASTResponder) && name != "SHA-256" {
					t.Fatalf("a SHA-256 responder accepted for %s: %v", mech, err)
				}
				c = fastClient1(t, mech, token, sasl.TLSState(client))
				c.Step(nil)
				if _, _, err := c.Step(mac("Responder")); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
	for _, tc := range []struct {
		offered []string
		want    string
	}{
		{[]string{"HT-SHA-256-NONE", "HT-SHA-512-NONE", "HT-SHA3-512-NONE", "HT-SHA-384-NONE"}, "HT-SHA-512-NONE"},
		{[]string{"HT-SHA3-256-NONE", "HT-SHA3-384-NONE"}, "HT-SHA3-384-NONE"},
		{[]string{"HT-SHA-512-NONE", "HT-SHA-256-EXPR"}, "HT-SHA-256-EXPR"}, // a binding beats a longer hash
		{[]string{"HT-SHA-512-UNIQ", "HT-SHA3-256-ENDP"}, "HT-SHA3-256-ENDP"},
		{[]string{"HT-SHA-512-UNIQ", "HT-SHA-256-NONE"}, "HT-SHA-256-NONE"}, // never UNIQ on TLS 1.3
	} {
		if got, ok := ChooseFAST(tc.offered, client); !ok || got != tc.want {
			t.Errorf("ChooseFAST(%v) = %s, %v; want %s", tc.offered, got, ok, tc.want)
		}
	}
}
