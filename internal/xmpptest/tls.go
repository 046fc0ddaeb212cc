package xmpptest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"time"

	"github.com/pipebind/pipebind/internal/testcert"
)

// certs is the generated PKI: a self-signed CA and a leaf for the domain.
type certs struct {
	caPEM  []byte
	pool   *x509.CertPool
	server tls.Certificate
}

// newCerts generates an ECDSA P-256 CA and a leaf certificate for domain,
// "localhost" and 127.0.0.1, valid for a day around now.
func newCerts(domain string) (*certs, error) {
	pki, err := testcert.New("xmpptest", domain)
	if err != nil {
		return nil, err
	}
	return &certs{caPEM: pki.CAPEM, pool: pki.Pool, server: pki.Server}, nil
}

// serverTLSConfig returns the server side config. It answers ALPN
// "xmpp-client" (XEP-0368) when offered, accepts clients offering anything
// else, and records what the client offered in log.
func (s *Server) serverTLSConfig(log *ConnLog) *tls.Config {
	base := &tls.Config{
		Certificates: []tls.Certificate{s.certs.server},
		MinVersion:   tls.VersionTLS12,
	}
	base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		log.set(func(l *ConnLog) { l.clientALPN = append([]string(nil), hello.SupportedProtos...) })
		for _, p := range hello.SupportedProtos {
			if p == "xmpp-client" {
				c := base.Clone()
				c.GetConfigForClient = nil
				c.NextProtos = []string{"xmpp-client"}
				return c, nil
			}
		}
		return nil, nil
	}
	return base
}

// TLSConfig returns a client configuration that trusts the server's
// certificate, with ServerName set to the domain. Dynamic record sizing is
// off so that one client Write becomes one TLS record: the server then sees a
// pipelined burst arrive as a single chunk, which keeps ClientFlights and
// ServerWritesBefore exact for bursts up to 16 KiB.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		RootCAs:                     s.certs.pool,
		ServerName:                  s.domain,
		MinVersion:                  tls.VersionTLS12,
		DynamicRecordSizingDisabled: true,
	}
}

// CAPEM returns the PEM-encoded CA certificate that signed the server's
// certificate.
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.certs.caPEM...) }

// handshakeTimeout bounds a TLS handshake.
const handshakeTimeout = 10 * time.Second

// upgradeTLS runs the server side of a TLS handshake on raw, replaying
// prefix first, and switches the connection to the TLS stream.
func (c *conn) upgradeTLS(prefix []byte) error {
	var under net.Conn = c.raw
	if len(prefix) > 0 {
		under = &prefixConn{Conn: c.raw, prefix: prefix}
	}
	tc := tls.Server(under, c.srv.serverTLSConfig(c.log))
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	st := tc.ConnectionState()
	c.log.set(func(l *ConnLog) { l.tlsState = &st })
	c.tlsState = &st
	c.wmu.Lock()
	c.nc = tc
	c.wmu.Unlock()
	c.observe(tc)
	return nil
}

func init() {
	register(stateStartTLS, nsTLS, "starttls", (*conn).handleStartTLS)
}

// handleStartTLS answers <starttls/> with <proceed/>, upgrades, and expects
// a new stream header (RFC 6120 §5.4.3.3).
func (c *conn) handleStartTLS(*element) error {
	if err := c.send(newElement(nsTLS, "proceed")); err != nil {
		return err
	}
	// Bytes the client sent after <starttls/> without waiting belong to the
	// TLS handshake: hand them over.
	prefix, _ := c.br.Peek(c.br.Buffered())
	prefix = append([]byte(nil), prefix...)
	if err := c.upgradeTLS(prefix); err != nil {
		return err
	}
	c.state = stateAuth
	c.restart()
	return nil
}
