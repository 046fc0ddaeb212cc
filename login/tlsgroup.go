package login

import "crypto/tls"

// tlsGroup is the key exchange group of the handshake cs to remember for
// the server (features.Features.TLSGroup): zero unless the certificate was
// verified. In TLS 1.3 the server signs the handshake transcript (RFC 8446
// §4.4.3), the ClientHello's supported groups and its own key share
// included, so with a verified certificate the group is the server's
// choice among those offered, not an attacker's; without one it proves
// nothing, and a later ClientHello must not be planned from it.
func tlsGroup(cs tls.ConnectionState) uint16 {
	if len(cs.VerifiedChains) == 0 {
		return 0
	}
	return uint16(cs.CurveID)
}
