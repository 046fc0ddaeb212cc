package main

import (
	"time"

	"github.com/pipebind/pipebind/internal/netem"
)

// benchPath is the emulated path of a group of rows: the user-space proxy
// (internal/netem) or the packet-level emulator (internal/pathemu, the
// headline rows of -packet).
type benchPath interface {
	// addr is the address the peers dial.
	addr() string
	// mark is taken before a login and handed to stats after it, which
	// returns what the login's connections cost on the path.
	mark() int
	stats(mark int, r peerReply) pathStats
}

// pathStats is what one login cost on the path.
type pathStats struct {
	// flights are the client's flights the server answered before the
	// login ended; handshake those of them that were TCP's and TLS's.
	flights, handshake, conns int
	bytesUp, bytesDown        int64
	// synData counts the connections whose SYN carried data the server
	// accepted (TCP Fast Open; the packet-level path only).
	synData int
}

// proxyPath is the user-space proxy: it cannot see the TCP handshake, so
// only TLS's round trip counts as the handshake (one per connection with
// TLS 1.3).
type proxyPath struct{ px *netem.Proxy }

func (p proxyPath) addr() string { return p.px.Addr() }

func (p proxyPath) mark() int { return p.px.NumConns() }

func (p proxyPath) stats(n0 int, r peerReply) pathStats {
	st, conns := answeredStats(p.px, n0, time.Unix(0, r.DoneUnixNS))
	ps := pathStats{flights: st.Flights, conns: conns, bytesUp: st.BytesUp, bytesDown: st.BytesDown}
	if r.TLS == "TLS 1.3" || r.TLS == "" {
		ps.handshake = conns
	}
	return ps
}
