package main

import (
	"fmt"
	"slices"
	"strings"
)

// isPacket reports that server is one of the packet-level path's.
func isPacket(server string) bool { return slices.Contains(packetServers, server) }

// ratioGroup is the ratio row of server at rtt ms, or nil.
func ratioGroup(rep *benchReport, server string, rtt float64) *ratioRow {
	for i := range rep.Ratios {
		if r := rep.Ratios[i]; r.Server == server && r.RTTms == rtt {
			return &rep.Ratios[i]
		}
	}
	return nil
}

// packetView is what the packet targets' texts say about one target: the
// rows compared (Peer nil for a floor target) and what the target asks.
type packetView struct {
	Group            *ratioRow
	Head, Floor      *benchRow
	Peer             *benchRow
	Want             float64
	LimitMS, AboveMS float64 // pipebind warm's limit and its time, over the floor
	ShortMS          float64 // how much too slow, when missed
	// RoundTripCap is the peer's round trips in all over pipebind's
	// (handshakes included): the best ratio zero CPU could reach;
	// MeasuredCap the peer's median over the floor's.
	RoundTripCap, MeasuredCap float64
	// MoreTrips: pipebind took more round trips in all than the floor.
	MoreTrips bool
}

// packetTargets are issue 15's targets, on the packet-level path at RTT
// 50 ms: the login's, then the time to ready's (readyTargets).
func packetTargets(rep *benchReport) []target {
	var out []target
	floorTarget := func(name string, rr *ratioRow) target {
		v := packetViewOf(rep, rr, nil, 1.05)
		t := target{name: name, where: rr.Server + ", RTT 50 ms", measured: fmtTarget(rr.VsFloor, 1.05),
			measuredOK: rr.VsFloor > 0, met: rr.VsFloor > 0 && rr.VsFloor <= 1.05, detail: say("packet detail", v)}
		if t.measuredOK && !t.met {
			t.why, t.fix = say("packet gap why", v), say("packet gap fix", v)
		}
		return t
	}
	if rr := ratioGroup(rep, serverTFO, 50); rr != nil {
		out = append(out, floorTarget("pipebind warm within 5% of the 2-RTT floor (TCP Fast Open)", rr))
		peer := func(name, client string, ratio, want float64) target {
			p := findRow(rep, rr.Server, rr.RTTms, client)
			t := target{name: name, where: rr.Server + ", RTT 50 ms", measured: fmtTarget(ratio, want), measuredOK: ratio > 0 && p != nil, met: ratio >= want}
			if !t.measuredOK {
				t.measured, t.detail = "—", say("peer not measured", nil)
				return t
			}
			v := packetViewOf(rep, rr, p, want)
			t.detail = say("packet detail", v)
			if !t.met {
				t.why, t.fix = say("packet gap why", v), say("packet gap fix", v)
			}
			return t
		}
		var goxmpp float64
		if rr.GoxmppBest == "goxmpp-fast" {
			goxmpp = rr.VsGoxmppBest
		}
		out = append(out, peer("≥ 1.9x go-xmpp FAST", "goxmpp-fast", goxmpp, 1.9))
		out = append(out, peer("≥ 2.8x mellium classic", "mellium-classic", rr.VsMellium, 2.8))
	}
	if rr := ratioGroup(rep, serverNoTFO, 50); rr != nil {
		out = append(out, floorTarget("server without TCP Fast Open: pipebind warm within 5% of the 3-RTT floor", rr))
	}
	return append(out, readyTargets(rep)...)
}

// readyTargets are issue 15's targets on the time to ready, at RTT 50 ms:
// each compares two rows of the same group (the same run), so they are
// judged wherever the group has rows, with or without a warm row.
func readyTargets(rep *benchReport) []target {
	var out []target
	if groupHas(rep, serverTFO, 50) {
		out = append(out, readyFloorTarget(rep, serverTFO, "pipebind-ready", 1.10, "ready (store level) within 10% of the 2-RTT floor (TCP Fast Open)"),
			readyFloorTarget(rep, serverTFO, "pipebind-ready-10", 1.15, "ready with 10 new messages within 15% of the floor (TCP Fast Open)"),
			readyPeerTarget(rep, serverTFO, "reference-ready", "pipebind-ready", 1.9, "ready ≥ 1.9x faster than the reference client (login, then MAM, then markers)"))
	}
	if groupHas(rep, serverNoTFO, 50) {
		out = append(out, readyFloorTarget(rep, serverNoTFO, "pipebind-ready", 1.10, "server without TCP Fast Open: ready (store level) within 10% of the 3-RTT floor"))
	}
	return out
}

// groupHas reports that the run has rows of server at rtt ms.
func groupHas(rep *benchReport, server string, rtt float64) bool {
	return slices.ContainsFunc(rep.Rows, func(r *benchRow) bool { return r.Server == server && r.RTTms == rtt })
}

// readyView is what the ready targets' texts say: Row against the floor,
// or Peer's time over Row's.
type readyView struct {
	Row, Floor, Peer       *benchRow
	Want, LimitMS, AboveMS float64
	ShortMS, RoundTripCap  float64
	MoreTrips              bool
	// RefExtra: for a row with new messages, how much longer the
	// reference took with them than with none in the same run: the
	// server's work and the bytes on the path, as the reference stores
	// nothing (nil without both reference rows).
	RefExtra *refExtra
}

// refExtra is the reference's time with new messages over its time
// without.
type refExtra struct {
	Client string
	MS     float64
}

// measured reports that r has a median from logins that all succeeded.
func measured(r *benchRow) bool { return r != nil && r.Failed == 0 && r.MedianMS > 0 }

// readyFloorTarget: client's median ≤ want × the floor's, in the group of
// server at RTT 50 ms.
func readyFloorTarget(rep *benchReport, server, client string, want float64, name string) target {
	row, floor := findRow(rep, server, 50, client), findRow(rep, server, 50, "floor")
	t := target{name: name, where: server + ", RTT 50 ms", measured: "—"}
	if !measured(row) || !measured(floor) {
		t.detail = say("ready not measured", readyView{Row: row, Floor: floor})
		return t
	}
	v := readyView{Row: row, Floor: floor, Want: want, LimitMS: want * floor.MedianMS, AboveMS: row.MedianMS - floor.MedianMS}
	v.ShortMS, v.MoreTrips = row.MedianMS-v.LimitMS, row.Flights > floor.Flights
	if ref, ok := strings.CutPrefix(client, "pipebind-ready-"); ok {
		with, without := findRow(rep, server, 50, "reference-ready-"+ref), findRow(rep, server, 50, "reference-ready")
		if measured(with) && measured(without) {
			v.RefExtra = &refExtra{with.Client, with.MedianMS - without.MedianMS}
		}
	}
	ratio := row.MedianMS / floor.MedianMS
	t.measured, t.measuredOK, t.met = fmtTarget(ratio, want), true, ratio <= want
	t.detail = say("ready detail", v)
	if !t.met {
		t.why, t.fix = say("ready gap why", v), say("ready gap fix", v)
	}
	return t
}

// readyPeerTarget: peer's median ≥ want × client's, in the group of server
// at RTT 50 ms.
func readyPeerTarget(rep *benchReport, server, peer, client string, want float64, name string) target {
	row, p, floor := findRow(rep, server, 50, client), findRow(rep, server, 50, peer), findRow(rep, server, 50, "floor")
	t := target{name: name, where: server + ", RTT 50 ms", measured: "—"}
	if !measured(row) || !measured(p) {
		t.detail = say("ready not measured", readyView{Row: row, Peer: p})
		return t
	}
	v := readyView{Row: row, Floor: floor, Peer: p, Want: want, LimitMS: p.MedianMS / want}
	v.ShortMS = row.MedianMS - v.LimitMS
	if row.Flights > 0 {
		v.RoundTripCap = p.Flights / row.Flights
	}
	ratio := p.MedianMS / row.MedianMS
	t.measured, t.measuredOK, t.met = fmtTarget(ratio, want), true, ratio >= want
	t.detail = say("ready detail", v)
	if !t.met {
		t.why, t.fix = say("ready gap why", v), say("ready gap fix", v)
	}
	return t
}

// packetViewOf is the view of a target on group rr: against the floor
// (peer nil) or a peer, want the ratio asked.
func packetViewOf(rep *benchReport, rr *ratioRow, peer *benchRow, want float64) packetView {
	v := packetView{Group: rr, Head: findRow(rep, rr.Server, rr.RTTms, rr.PipebindClient), Floor: findRow(rep, rr.Server, rr.RTTms, "floor"),
		Peer: peer, Want: want, AboveMS: rr.PipebindMS - rr.FloorMS}
	v.LimitMS = want * rr.FloorMS
	if peer != nil {
		v.LimitMS = peer.MedianMS / want
		if v.Head != nil && v.Head.Flights > 0 {
			v.RoundTripCap = peer.Flights / v.Head.Flights
		}
		if rr.FloorMS > 0 {
			v.MeasuredCap = peer.MedianMS / rr.FloorMS
		}
	}
	v.ShortMS = rr.PipebindMS - v.LimitMS
	v.MoreTrips = v.Head != nil && v.Floor != nil && v.Head.Flights > v.Floor.Flights
	return v
}

// packetNote is the end of a packet row's note: its round trips in all and
// its logins whose SYN data the server accepted.
func packetNote(r *benchRow) string {
	return fmt.Sprintf("; %g RTs in all, SYN data accepted %d/%d", r.Flights, r.SYNDataAccepted, r.N-r.Failed)
}
