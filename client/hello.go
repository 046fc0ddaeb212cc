package client

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"syscall"
)

// helloTap sits under the TLS client during the handshake and reads the
// ClientHellos it writes: the first one's size and key shares, and whether
// a second one followed (a HelloRetryRequest). crypto/tls writes each
// handshake record whole, in one Write, with its out lock held, so the tap
// needs no lock of its own; stop is called once the handshake has
// returned, before anything else writes.
type helloTap struct {
	net.Conn
	stopped    bool
	hellos     int
	helloBytes int
	offered    []string
}

func (t *helloTap) Write(b []byte) (int, error) {
	if !t.stopped {
		t.look(b)
	}
	return t.Conn.Write(b)
}

// SyscallConn is the socket's, so that the stream layer can wait for input
// on it without reading (wire.Conn.WaitInput: an idle session's goroutine
// then waits a few frames deep, and its stack shrinks to 4 KiB).
func (t *helloTap) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := t.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

// stop ends the tapping: later writes go straight through.
func (t *helloTap) stop() { t.stopped = true }

// look reads the plaintext ClientHello records at the start of b.
func (t *helloTap) look(b []byte) {
	for len(b) >= 5 {
		n := int(binary.BigEndian.Uint16(b[3:5]))
		if len(b) < 5+n {
			return
		}
		rec := b[5 : 5+n]
		if b[0] == 22 && isClientHello(rec) {
			t.hellos++
			if t.hellos == 1 {
				t.helloBytes, t.offered = 5+n, keyShares(rec)
			}
		}
		b = b[5+n:]
	}
}

// isClientHello reports that a handshake record's body is one whole
// ClientHello (type 1, its length the record's, legacy_version TLS 1.2):
// not an encrypted TLS 1.2 Finished that happens to start with 1.
func isClientHello(rec []byte) bool {
	return len(rec) >= 6 && rec[0] == 1 &&
		int(rec[1])<<16|int(rec[2])<<8|int(rec[3]) == len(rec)-4 &&
		rec[4] == 3 && rec[5] == 3
}

// keyShares returns the groups of the key_share extension (RFC 8446
// §4.2.8) of a ClientHello handshake message, or nil.
func keyShares(m []byte) []string {
	if len(m) < 4+2+32 {
		return nil
	}
	p := m[4+2+32:] // type and length, legacy_version, random
	skip := func(lenBytes int) bool {
		if len(p) < lenBytes {
			return false
		}
		n := 0
		for _, c := range p[:lenBytes] {
			n = n<<8 | int(c)
		}
		if len(p) < lenBytes+n {
			return false
		}
		p = p[lenBytes+n:]
		return true
	}
	// legacy_session_id, cipher_suites, legacy_compression_methods
	if !skip(1) || !skip(2) || !skip(1) || len(p) < 2 {
		return nil
	}
	exts := p[2:]
	for len(exts) >= 4 {
		typ, n := binary.BigEndian.Uint16(exts), int(binary.BigEndian.Uint16(exts[2:]))
		if len(exts) < 4+n {
			return nil
		}
		if typ == 51 { // key_share
			return shareGroups(exts[4 : 4+n])
		}
		exts = exts[4+n:]
	}
	return nil
}

// shareGroups names the groups of a ClientHello's client_shares.
func shareGroups(ext []byte) []string {
	if len(ext) < 2 {
		return nil
	}
	var out []string
	for p := ext[2:]; len(p) >= 4; {
		g, n := tls.CurveID(binary.BigEndian.Uint16(p)), int(binary.BigEndian.Uint16(p[2:]))
		if len(p) < 4+n {
			break
		}
		out = append(out, g.String())
		p = p[4+n:]
	}
	return out
}
