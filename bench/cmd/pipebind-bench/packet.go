//go:build linux

package main

// The headline login rows on the packet-level path (-packet): a real
// Prosody 13 with TCP Fast Open, and one without, each in the server
// namespace of its own emulator (internal/pathemu), the peers in the
// client namespace, round trips counted on the packets.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

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
}

func (s *packetServer) close() {
	if s.srv != nil {
		s.srv.Close()
	}
	s.emu.Close()
}

// startPacketServer starts an emulator with net.ipv4.tcp_fastopen=3 in
// both namespaces (client and server bits) and a Prosody in its server
// namespace, accepting data in the SYN when tfo.
func startPacketServer(ctx context.Context, name string, tfo bool, tmp string) (*packetServer, error) {
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
		Dial: emu.Client().DialContext, TCPFastOpen: tfo})
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
	return s, nil
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
		s, err := startPacketServer(ctx, name, name == serverTFO, tmp)
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
			g, err := benchGroup(ctx, po, s.name, rtt, packetPath{s.emu, s.srv.DirectTLSAddr}, nil, s.target, benchTarget{}, rep, logw)
			if err != nil {
				return nil, err
			}
			rows = append(rows, g...)
		}
	}
	return rows, nil
}
