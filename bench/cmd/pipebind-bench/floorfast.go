package main

import (
	"context"
	"crypto/tls"
	"errors"
	"net"

	"github.com/pipebind/pipebind/client"
)

// floorFastPeer is the floor of a warm login on the packet-level path
// (-packet): a hand-written pipelined FAST login with the least a client
// can do. TCP Fast Open (client.FastOpenControl), an X25519-only
// ClientHello, small enough to ride in the SYN, then one write after TLS
// (pipebind's warm burst: header, SASL2 HT-SHA-256-EXPR with a FAST token,
// Bind 2), read until </success>. It costs TCP + TLS 1.3 + one round trip:
// two RTTs with Fast Open, three without; and Prosody does the same work
// as for pipebind's warm login. Its first login (the untimed warm-up) gets
// the token with PLAIN, and the Fast Open cookie.
type floorFastPeer struct {
	pc    peerConfig
	tls   *tls.Config
	token string
	conn  *rawConn
}

const (
	floorFastMech = "HT-SHA-256-EXPR"
	floorFastUA   = "0b6f3c2d-8e1a-4f5b-9c7d-2a3e4f5a6b7c"
)

func (p *floorFastPeer) dial(ctx context.Context) (*rawConn, error) {
	d := net.Dialer{Control: client.FastOpenControl}
	raw, err := d.DialContext(ctx, "tcp", p.pc.Addr)
	if err != nil {
		return nil, err
	}
	_ = raw.(*net.TCPConn).SetNoDelay(true)
	cfg := p.tls.Clone()
	cfg.NextProtos = []string{"xmpp-client"}
	cfg.CurvePreferences = []tls.CurveID{tls.X25519}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = tc.SetDeadline(dl)
	}
	return &rawConn{c: tc, rbuf: make([]byte, 64<<10)}, nil
}

func (p *floorFastPeer) login(ctx context.Context) (loginInfo, error) {
	b := burst{p.pc.Domain, p.pc.User, p.pc.Password}
	r, err := p.dial(ctx)
	if err != nil {
		return loginInfo{}, err
	}
	p.conn = r
	if p.token == "" {
		p.token, err = r.fastToken(b.tokenRequest(floorFastMech, floorFastUA))
		return loginInfo{path: "floor", mech: "PLAIN", tls: tls.VersionName(r.c.ConnectionState().Version), rt: 1}, err
	}
	data, err := b.fast(floorFastMech, p.token, floorFastUA, r.c.ConnectionState())
	if err != nil {
		return loginInfo{}, err
	}
	if err := r.write(data); err != nil {
		return loginInfo{}, err
	}
	_, which, err := r.untilOneOf([]byte("</success>"), []byte("<failure"))
	if err != nil {
		return loginInfo{}, err
	}
	if which == 1 {
		return loginInfo{}, errors.New("the server refused the FAST token")
	}
	return loginInfo{path: "floor", mech: floorFastMech, tls: tls.VersionName(r.c.ConnectionState().Version), rt: 1}, nil
}

func (p *floorFastPeer) shutdown() { _ = p.close() }

func (p *floorFastPeer) close() error {
	if p.conn == nil {
		return nil
	}
	p.conn.close()
	p.conn = nil
	return nil
}
