//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pipebind/pipebind/internal/pathemu"
)

// TestBenchPacket runs the headline rows on the packet-level path (-packet)
// and checks the round trips counted on the packets: with TCP Fast Open on
// the server, the floor and pipebind warm take 2 in all (the SYN carries
// the ClientHello, accepted on every login), one after TLS; without it 3;
// mellium's classic login 4 after TLS either way. The time to ready:
// pipebind-ready takes the floor's round trips, with or without new
// messages in one page; the reference two more (the archive query, the
// markers).
func TestBenchPacket(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root, network namespaces and Prosody") // -short only
	}
	if err := pathemu.Available(); err != nil {
		t.Fatalf("the packet-level path emulator cannot run here: %v", err)
	}
	t.Setenv(peerMainEnv, "1") // the peers are this test binary
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	clients := "pipebind-warm-fast,mellium-classic,pipebind-ready,pipebind-ready-10,reference-ready,reference-ready-10"
	if code := run(ctx, []string{"-packet", "-inproc=false", "-n", "2", "-rtt", "20ms", "-clients", clients, "-json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep benchReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, out.String())
	}
	type want struct {
		flights, rts float64
		synData      int
	}
	wants := map[string]map[string]want{
		serverTFO: {"floor": {2, 1, 2}, "pipebind-warm-fast": {2, 1, 2}, "mellium-classic": {6, 4, 0},
			"pipebind-ready": {2, 1, 2}, "pipebind-ready-10": {2, 1, 2}, "reference-ready": {4, 3, 2}, "reference-ready-10": {4, 3, 2}},
		serverNoTFO: {"floor": {3, 1, 0}, "pipebind-warm-fast": {3, 1, 0}, "mellium-classic": {6, 4, 0},
			"pipebind-ready": {3, 1, 0}, "pipebind-ready-10": {3, 1, 0}, "reference-ready": {5, 3, 0}, "reference-ready-10": {5, 3, 0}},
	}
	seen := 0
	for _, r := range rep.Rows {
		if r.Pending != "" {
			continue
		}
		w, ok := wants[r.Server][r.Client]
		if !ok {
			t.Errorf("unexpected row %s on %s", r.Client, r.Server)
			continue
		}
		seen++
		if r.Failed != 0 || r.N != 2 {
			t.Errorf("%s on %s: %d/%d failed: %s", r.Client, r.Server, r.Failed, r.N, r.FirstErr)
		}
		// The reference's session stays open across its three exchanges:
		// an ack exchange of stream management (Prosody's <r/> and the
		// client's <a/>) that falls between them is one more flight the
		// server's next bytes follow, in some logins (a median of 2 can
		// then end in .5).
		slack := 0.0
		if strings.HasPrefix(r.Client, "reference-") {
			slack = 1
		}
		if !within(r.Flights, w.flights, slack) || !within(r.RoundTrips, w.rts, slack) || r.SYNDataAccepted != w.synData {
			t.Errorf("%s on %s: %g RTs in all, %g after TLS, SYN data accepted %d times; want %g, %g, %d",
				r.Client, r.Server, r.Flights, r.RoundTrips, r.SYNDataAccepted, w.flights, w.rts, w.synData)
		}
	}
	if seen != 14 {
		t.Errorf("%d rows measured, want 14", seen)
	}
	if len(packetTargets(&rep)) != 0 {
		t.Error("targets judged at RTT 20 ms; they are the issue's at 50 ms")
	}
}

// within reports whether got is in [want, want+slack].
func within(got, want, slack float64) bool { return got >= want && got <= want+slack }
