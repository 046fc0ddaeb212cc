package login

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
)

func TestTLSGroupNeedsAVerifiedCertificate(t *testing.T) {
	verified := [][]*x509.Certificate{{{}}}
	for _, tc := range []struct {
		name string
		cs   tls.ConnectionState
		want uint16
	}{
		{"verified X25519", tls.ConnectionState{CurveID: tls.X25519, VerifiedChains: verified}, 29},
		{"verified hybrid", tls.ConnectionState{CurveID: tls.X25519MLKEM768, VerifiedChains: verified}, 4588},
		{"unverified", tls.ConnectionState{CurveID: tls.X25519}, 0},
	} {
		if got := tlsGroup(tc.cs); got != tc.want {
			t.Errorf("%s: tlsGroup = %d, want %d", tc.name, got, tc.want)
		}
	}
}
