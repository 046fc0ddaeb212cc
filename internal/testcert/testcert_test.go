package testcert

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

func TestNew(t *testing.T) {
	p, err := New("t", "example.test")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"example.test", "localhost", "127.0.0.1"} {
		if _, err := p.Server.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: p.Pool}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := p.Server.Leaf.Verify(x509.VerifyOptions{DNSName: "other.test", Roots: p.Pool}); err == nil {
		t.Error("verified for a name it does not carry")
	}
	dir := t.TempDir()
	if err := p.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"server.crt", "server.key"} {
		st, err := os.Stat(filepath.Join(dir, "certs", f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, st, err)
		}
	}
}
