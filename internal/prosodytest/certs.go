package prosodytest

import "github.com/pipebind/pipebind/internal/testcert"

// writeCerts generates a CA and a server certificate for domain (plus
// localhost and 127.0.0.1), writes the server's certificate and key to
// dir/certs/server.{crt,key} and returns the CA certificate as PEM.
func writeCerts(dir, domain string) (caPEM []byte, err error) {
	pki, err := testcert.New("prosodytest", domain)
	if err != nil {
		return nil, err
	}
	if err := pki.WriteFiles(dir); err != nil {
		return nil, err
	}
	return pki.CAPEM, nil
}
