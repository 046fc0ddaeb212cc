//go:build linux

package main

// The headline login rows on the packet-level path (-packet): a real
// Prosody 13 with TCP Fast Open, and one without, each in the server
// namespace of its own emulator (internal/pathemu), the peers in the
// client namespace, round trips counted on the packets.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/pipebind/pipebind/internal/pathemu"
	"github.com/pipebind/pipebind/internal/prosodytest"
)

// packetPath is a group's path on the packet-level emulator.
type packetPath struct {
	emu     *pathemu.Emulator
	address string
}

func (p packetPath) addr() string { return p.address }

func (p packetPath) mark() int { return len(p.emu.Conns()) }

// stats sums the connections opened since mark. A TLS 1.3 connection's
// handshake is two flights (the SYN, the ClientHello), or one when the SYN
// carried the ClientHello and the server accepted it; Answered leaves out
// the initial presence, the write nothing answers that ends each XMPP
// login (see pathemu's Stats).
func (p packetPath) stats(mark int, _ peerReply) pathStats {
	var ps pathStats
	for _, c := range p.emu.Conns()[mark:] {
		st := c.Stats()
		ps.conns++
		ps.flights += st.Answered
		ps.handshake += 2
		if st.SYNDataAccepted {
			ps.handshake--
			ps.synData++
		}
		ps.bytesUp += st.BytesUp
		ps.bytesDown += st.BytesDown
	}
	return ps
}

// packetServer is one Prosody behind its own emulator.
type packetServer struct {
	name   string
	emu    *pathemu.Emulator
	srv    *prosodytest.Server
	target benchTarget
	inj    *packetInjector
}

func (s *packetServer) close() {
	s.inj.close()
	if s.srv != nil {
		s.srv.Close()
	}
	s.emu.Close()
}

// packetUsers are the accounts of a packet server: alice (the login
// rows), bob (who sends the ready rows' new messages) and the ready rows'
// own, one per row and RTT (readyUser).
func packetUsers(rtts []time.Duration) map[string]string {
	users := map[string]string{"alice": "alice-pw-1", "bob": "bob-pw-2"}
	for _, c := range benchClients {
		if !c.ready || !slices.Contains(c.servers, serverTFO) {
			continue
		}
		for _, rtt := range rtts {
			u := readyUser(c.name, rtt)
			users[u] = u + "-pw"
		}
	}
	return users
}

// startPacketServer starts an emulator with net.ipv4.tcp_fastopen=3 in
// both namespaces (client and server bits) and a Prosody in its server
// namespace, accepting data in the SYN when tfo.
func startPacketServer(ctx context.Context, name string, tfo bool, tmp string, rtts []time.Duration) (*packetServer, error) {
	emu, err := pathemu.New(pathemu.Config{})
	if err != nil {
		return nil, err
	}
	s := &packetServer{name: name, emu: emu}
	for _, ns := range []*pathemu.Namespace{emu.Client(), emu.Server()} {
		if err := ns.SetSysctl("net.ipv4.tcp_fastopen", "3"); err != nil {
			s.close()
			return nil, err
		}
	}
	s.srv, err = prosodytest.Start(ctx, prosodytest.Options{Host: pathemu.ServerAddr, Launch: emu.Server().Start,
		Dial: emu.Client().DialContext, TCPFastOpen: tfo, Users: packetUsers(rtts)})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("prosody (%s): %w", name, err)
	}
	ca := filepath.Join(tmp, name+"-ca.pem")
	if err := os.WriteFile(ca, s.srv.CAPEM, 0o600); err != nil {
		s.close()
		return nil, err
	}
	s.target = benchTarget{s.srv.Domain, ca, "alice", s.srv.Users["alice"]}
	s.inj = &packetInjector{emu: emu, addr: s.srv.DirectTLSAddr, domain: s.srv.Domain, user: "bob", password: s.srv.Users["bob"],
		tls: s.srv.TLSConfig()}
	return s, nil
}

// packetInjector archives new messages for the ready rows' accounts: bob
// sends them, on one raw connection through the emulator's client
// namespace that stays open across the logins (it is opened before any
// login's mark, so its packets count for no row). Bob's own archive
// policy is "never", so his archive does not grow with them (Prosody's
// internal storage caps an archive at 10,000 items).
type packetInjector struct {
	emu            *pathemu.Emulator
	addr, domain   string
	user, password string
	tls            *tls.Config
	mu             sync.Mutex
	conn           *rawConn
	seq            int
}

// inject sends n chat messages from bob to the account user and returns
// once Prosody has archived them all.
func (in *packetInjector) inject(ctx context.Context, user string, n int) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.conn == nil {
		if err := in.connect(ctx); err != nil {
			return err
		}
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(2 * time.Minute)
	}
	_ = in.conn.c.SetDeadline(dl)
	in.seq++
	err := in.conn.sendMessages(in.domain, user+"@"+in.domain, "inject"+strconv.Itoa(in.seq), n)
	if err != nil {
		in.conn.c.Close()
		in.conn = nil
	}
	return err
}

// connect logs bob in and sets his archive policy to never.
func (in *packetInjector) connect(ctx context.Context) error {
	tc, err := dialTLSVia(ctx, in.emu.Client().DialContext, in.addr, in.tls)
	if err != nil {
		return err
	}
	r := &rawConn{c: tc, rbuf: make([]byte, 64<<10)}
	_ = tc.SetDeadline(time.Now().Add(time.Minute))
	if err := r.login(in.domain, in.user, in.password); err != nil {
		tc.Close()
		return fmt.Errorf("%s: login: %w", in.user, err)
	}
	if err := r.write("<iq type='set' id='bob-prefs'><prefs xmlns='urn:xmpp:mam:2' default='never'/></iq>"); err != nil {
		tc.Close()
		return err
	}
	i, err := r.until([]byte("'bob-prefs'"))
	if err != nil {
		tc.Close()
		return fmt.Errorf("%s: archive prefs: %w", in.user, err)
	}
	r.consume(i)
	in.conn = r
	return nil
}

func (in *packetInjector) close() {
	if in == nil || in.conn == nil {
		return
	}
	in.conn.close()
	in.conn = nil
}

// packetBench runs the rows of the packet servers at every RTT.
func packetBench(ctx context.Context, o benchOpts, rep *benchReport, tmp string, logw io.Writer) ([]*benchRow, error) {
	if o.inprocPeers {
		return nil, errors.New("-packet runs each peer as a process in the emulator's client namespace: not with -inprocess-peers")
	}
	if err := pathemu.Available(); err != nil {
		return nil, fmt.Errorf("-packet: the packet-level path emulator cannot run here: %w", err)
	}
	var servers []*packetServer
	defer func() {
		for _, s := range servers {
			s.close()
		}
	}()
	for _, name := range packetServers {
		fmt.Fprintf(logw, "bench: starting Prosody (%s) behind the packet-level path\n", name)
		s, err := startPacketServer(ctx, name, name == serverTFO, tmp, o.rtts)
		if err != nil {
			return nil, err
		}
		servers = append(servers, s)
	}
	var rows []*benchRow
	for _, rtt := range o.rtts {
		for _, s := range servers {
			l := pathemu.Link{Delay: rtt / 2, Jitter: o.jitter, Bandwidth: o.bandwidth}
			if err := s.emu.SetLinks(l, l); err != nil {
				return nil, err
			}
			po := o
			po.launch = s.emu.Client().Start
			po.inject, po.accounts = s.inj.inject, s.srv.Users
			g, err := benchGroup(ctx, po, s.name, rtt, packetPath{s.emu, s.srv.DirectTLSAddr}, nil, s.target, benchTarget{}, rep, logw)
			if err != nil {
				return nil, err
			}
			rows = append(rows, g...)
		}
	}
	return rows, nil
}
