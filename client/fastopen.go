package client

// TCP Fast Open and the key shares of the ClientHello (issue 15): the
// default dialer, what the kernel says about the SYN, and the policy that
// makes the ClientHello small enough to ride in it. The security reasoning
// is in the package doc ("TCP Fast Open") and ARCHITECTURE.md.

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/pipebind/pipebind/cache"
)

// FastOpen reports TCP Fast Open (RFC 7413) on a connection, as the kernel
// saw it (Linux: TCP_INFO, read after the TLS handshake). Its zero value
// means that Fast Open was not asked for: Config.NoFastOpen, another OS, a
// Config.DialFunc that did not ask, a server name with more than one
// address (see Config.NoFastOpen), or Backoff.
type FastOpen struct {
	// Requested: the socket had TCP_FASTOPEN_CONNECT set, so its SYN left
	// with the first write (the TLS ClientHello, or the stream header
	// with STARTTLS), carrying it when the kernel had a cookie for the
	// server.
	Requested bool `json:"requested"`
	// SYNData: the SYN carried data (the first bytes of that write).
	SYNData bool `json:"syn_data"`
	// Accepted: the server acknowledged that data in its SYN-ACK, so the
	// TLS handshake took its first round trip together with TCP's.
	Accepted bool `json:"accepted"`
	// Fail is why the SYN carried no data, or carried data that was not
	// accepted, when the kernel says (zero otherwise).
	Fail FastOpenFail `json:"fail,omitempty"`
	// Backoff: Fast Open was not used because a login to this server
	// less than an hour ago had its SYN with data dropped
	// (FastOpenSYNRetransmitted): the default dialer's deferred connect,
	// which had sent nothing yet, was dropped for one without Fast Open.
	Backoff bool `json:"backoff,omitempty"`
}

// FastOpenFail is the kernel's reason why a connection's SYN did not carry
// accepted data (Linux 5.5+: tcpi_fastopen_client_fail).
type FastOpenFail uint8

// The values are the kernel's (TFO_COOKIE_UNAVAILABLE, ...).
const (
	// FastOpenNoFail: no failure reported (data accepted, or not asked).
	FastOpenNoFail FastOpenFail = iota
	// FastOpenNoCookie: the kernel had no cookie for the server (the first
	// connection to it, or the server never granted one): the SYN only
	// asked for one, and the data followed the handshake.
	FastOpenNoCookie
	// FastOpenDataNotAcked: the SYN carried data that the server did not
	// acknowledge (its Fast Open is off, or the cookie is stale); the
	// kernel sent the data again after the handshake.
	FastOpenDataNotAcked
	// FastOpenSYNRetransmitted: the SYN with data got no answer and the
	// kernel retransmitted it without data (after its initial RTO, 1 s):
	// a lost packet, or a middlebox that drops SYNs with data. Repeated
	// losses make the kernel stop sending data in SYNs to that server for
	// a while.
	FastOpenSYNRetransmitted
)

// String returns "", "no-cookie", "data-not-acked" or "syn-retransmitted".
func (f FastOpenFail) String() string {
	switch f {
	case FastOpenNoFail:
		return ""
	case FastOpenNoCookie:
		return "no-cookie"
	case FastOpenDataNotAcked:
		return "data-not-acked"
	case FastOpenSYNRetransmitted:
		return "syn-retransmitted"
	}
	return "unknown-" + strconv.Itoa(int(f))
}

// MarshalText makes JSON carry the name.
func (f FastOpenFail) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// KeyShare describes the key exchange of the connection's TLS handshake:
// which key shares the ClientHello carried, why, and the group the server
// chose.
type KeyShare struct {
	// Policy says how the ClientHello's groups were chosen.
	Policy KeySharePolicy `json:"policy"`
	// Offered names the groups the first ClientHello carried a key share
	// for, in order ("X25519MLKEM768", "X25519"), as written on the wire.
	Offered []string `json:"offered,omitempty"`
	// HelloBytes is the size of the first ClientHello's TLS record: what
	// must fit in the SYN (about one MSS, 1,400 bytes on most paths) for
	// Fast Open to carry all of it.
	HelloBytes int `json:"client_hello_bytes,omitempty"`
	// HelloRetry: the server asked for another key share (a TLS 1.3
	// HelloRetryRequest), which cost a round trip.
	HelloRetry bool `json:"hello_retry,omitempty"`
	// Group is the group negotiated ("X25519", "X25519MLKEM768").
	Group string `json:"group,omitempty"`
}

// KeySharePolicy is how the client chose the ClientHello's groups.
type KeySharePolicy uint8

const (
	// KeyShareDefault: crypto/tls's defaults (Go 1.26: a hybrid
	// X25519MLKEM768 key share and an X25519 one, about 1.2 KB: too big
	// for a SYN).
	KeyShareDefault KeySharePolicy = iota
	// KeyShareCachedX25519: an X25519 key share only, and no post-quantum
	// group listed, because the cache says this server negotiated X25519
	// when offered X25519MLKEM768 (and Fast Open was asked for): the
	// ClientHello then fits in the SYN.
	KeyShareCachedX25519
	// KeyShareConfig: Config.TLSConfig.CurvePreferences, never overridden.
	KeyShareConfig
)

// String returns "default", "cached-x25519" or "config".
func (p KeySharePolicy) String() string {
	switch p {
	case KeyShareCachedX25519:
		return "cached-x25519"
	case KeyShareConfig:
		return "config"
	}
	return "default"
}

// MarshalText makes JSON carry the name.
func (p KeySharePolicy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// keyShareRecheck bounds how long a server's cached X25519 is trusted to
// plan a classical-only ClientHello: after it, one login offers the
// default (post-quantum) groups again, so that a server that gained
// X25519MLKEM768 is found within a day, and rewrites the cache entry.
// crypto/tls sends a key share for the first group of its own fixed order
// whatever the order of CurvePreferences, so the only ClientHello with an
// X25519 share alone lists no hybrid group: a server cannot answer it with
// a HelloRetryRequest for ML-KEM, hence the recheck.
const keyShareRecheck = 24 * time.Hour

// classicalGroups is the ClientHello of KeyShareCachedX25519: X25519
// first (its share is the one sent), and the other classical groups, so
// that a server that dropped X25519 answers with a HelloRetryRequest
// rather than a handshake failure.
var classicalGroups = []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521}

// cachedX25519 reports that f (the cached features) says the server
// negotiated X25519 less than keyShareRecheck ago.
func cachedX25519(f *cache.Features, now time.Time) bool {
	return f != nil && f.TLSGroup == uint16(tls.X25519) && now.Sub(f.SeenAt) < keyShareRecheck
}

// keyShareRecheckDue reports that the cache entry f plans classical-only
// ClientHellos no longer: the login that rechecked rewrites it (SeenAt)
// even when nothing changed.
func keyShareRecheckDue(f *cache.Features, now time.Time) bool {
	return f != nil && f.TLSGroup == uint16(tls.X25519) && !cachedX25519(f, now)
}

// applyKeySharePolicy sets c.CurvePreferences (c is the connection's clone
// of Config.TLSConfig) for a ClientHello that fits in a Fast Open SYN when
// that can help: only when the socket asked for Fast Open and the cache
// says the server chose X25519 over X25519MLKEM768, and never over
// CurvePreferences the user set.
func applyKeySharePolicy(c *tls.Config, cfg Config, cached *cache.Features, fastOpen bool) KeySharePolicy {
	switch {
	case cfg.TLSConfig != nil && len(cfg.TLSConfig.CurvePreferences) > 0:
		return KeyShareConfig
	case !fastOpen || !cachedX25519(cached, time.Now()):
		return KeyShareDefault
	}
	c.CurvePreferences = classicalGroups
	return KeyShareCachedX25519
}

// fastOpenBackoff is how long the default dialer leaves Fast Open off for
// a server after a login whose SYN with data was dropped
// (features.Features.FastOpenDropped). Linux retransmits such a SYN without
// data after its initial RTO (1 s), and it does not stop sending data in
// the SYNs of the next connections when the retransmitted SYN's answer
// carries a cookie, as it does when only SYNs with data are dropped: so
// without the backoff every login over such a path would cost a second.
// With it one login an hour does; a SYN lost by chance costs an hour of
// logins one round trip slower.
const fastOpenBackoff = time.Hour

// dialFunc is Config.DialFunc, or the default dialer.
func dialFunc(cfg Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	switch {
	case cfg.DialFunc != nil:
		return cfg.DialFunc
	case cfg.NoFastOpen || !fastOpenSupported:
		var d net.Dialer
		return d.DialContext
	}
	return dialFastOpen
}

// checkFastOpen reports whether raw, just connected to addr, asked for
// Fast Open, and whether Fast Open is off because of a recent drop
// (fastOpenBackoff). The cached features are waited for only here, once a
// Fast Open socket is connected: its first write (the ClientHello) depends
// on them anyway, and a connect that sent its SYN (no cookie yet) overlaps
// the wait. A deferred connect to a server in backoff has sent nothing
// yet: it is closed and addr dialed again without Fast Open, and the time
// that takes added to *connect.
func checkFastOpen(ctx context.Context, cfg Config, adv *advice, raw net.Conn, addr string, connect *time.Duration) (c net.Conn, fastOpen, backoff bool, err error) {
	if !fastOpenRequested(raw) {
		return raw, false, false, nil
	}
	adv.needFeatures()
	f := adv.features
	if cfg.DialFunc != nil || f == nil || time.Since(time.Unix(f.FastOpenDropped, 0)) >= fastOpenBackoff || !synPending(raw) {
		return raw, true, false, nil
	}
	raw.Close()
	start := time.Now()
	var d net.Dialer
	c, err = d.DialContext(ctx, "tcp", addr)
	*connect += time.Since(start)
	return c, false, true, err
}

// fastOpenDropped is the features' FastOpenDropped to record after a
// login: now when its SYN data was dropped, none when it was accepted,
// else what the cache held.
func fastOpenDropped(stored *cache.Features, fo FastOpen, now time.Time) int64 {
	switch {
	case fo.Fail == FastOpenSYNRetransmitted:
		return now.Unix()
	case fo.Accepted || stored == nil:
		return 0
	}
	return stored.FastOpenDropped
}

// dialFastOpen is the default dialer where Fast Open is supported: with
// TCP_FASTOPEN_CONNECT and a cookie for the address, connect returns
// before any packet leaves, so net.Dialer's Happy Eyeballs and its
// failover from one address to the next would settle on the first
// address, reachable or not. So a
// name with one address (or a literal IP) is dialed with Fast Open, and a
// name with several by net.Dialer without it (which looks the name up
// again: usually from the system's cache).
func dialFastOpen(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return d.DialContext(ctx, network, addr) // its error
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil || len(ips) != 1 {
			return d.DialContext(ctx, network, addr)
		}
		ip = ips[0].Unmap()
	}
	d.Control = FastOpenControl
	return d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
}
