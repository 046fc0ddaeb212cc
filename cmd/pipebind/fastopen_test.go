//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pipebind/pipebind/internal/pathemu"
	"github.com/pipebind/pipebind/internal/prosodytest"
)

// TestIntegrationProbeFastOpen (issue 15): the probe, run in the client
// namespace of a packet-level emulated path to a Prosody 13 with TCP Fast
// Open, reports on its second run that the SYN carried the ClientHello
// (an X25519 key share alone) and that the server accepted it, and that
// the login took one round trip after TLS.
func TestIntegrationProbeFastOpen(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root, network namespaces and Prosody") // -short only
	}
	if err := pathemu.Available(); err != nil {
		t.Fatalf("the packet-level path emulator cannot run here: %v", err)
	}
	emu, err := pathemu.New(pathemu.RTT(20 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	for _, ns := range []*pathemu.Namespace{emu.Client(), emu.Server()} {
		if err := ns.SetSysctl("net.ipv4.tcp_fastopen", "3"); err != nil {
			t.Fatal(err)
		}
	}
	srv := prosodytest.StartT(t, prosodytest.Options{
		Host: pathemu.ServerAddr, Launch: emu.Server().Start, Dial: emu.Client().DialContext, TCPFastOpen: true,
	})
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, srv.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PIPEBIND_PASSWORD", srv.Users["alice"])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"probe", "-json", "-addr", srv.DirectTLSAddr, "-tls", "direct", "-ca", ca,
		"-cache", filepath.Join(dir, "cache.db"), "alice@" + srv.Domain}
	type probe struct {
		RoundTrips int `json:"round_trips"`
		TFO        struct {
			Requested bool   `json:"requested"`
			SYNData   bool   `json:"syn_data"`
			Accepted  bool   `json:"accepted"`
			Fail      string `json:"fail"`
		} `json:"tfo"`
		KeyShare struct {
			Policy  string   `json:"policy"`
			Offered []string `json:"offered"`
			Group   string   `json:"group"`
		} `json:"key_share"`
	}
	var got [2]probe
	for i := range got {
		var stdout, stderr bytes.Buffer
		var code int
		// The probe runs on a thread in the client namespace: its dialer
		// (Fast Open by default) opens the socket there.
		if err := emu.Client().Do(func() error { code = run(ctx, args, &stdout, &stderr); return nil }); err != nil {
			t.Fatal(err)
		}
		if code != 0 {
			t.Fatalf("probe %d: exit %d: %s", i, code, stderr.String())
		}
		if err := json.Unmarshal(stdout.Bytes(), &got[i]); err != nil {
			t.Fatalf("probe %d: %v in %q", i, err, stdout.String())
		}
		t.Logf("probe %d: %s", i, stdout.String())
	}
	if first := got[0].TFO; !first.Requested || first.SYNData || first.Fail != "no-cookie" {
		t.Errorf("first probe: tfo %+v, want requested, no data (no cookie yet)", first)
	}
	second := got[1]
	if !second.TFO.SYNData || !second.TFO.Accepted || second.TFO.Fail != "" {
		t.Errorf("second probe: tfo %+v, want the SYN's data accepted", second.TFO)
	}
	if ks := second.KeyShare; ks.Policy != "cached-x25519" || !slices.Equal(ks.Offered, []string{"X25519"}) || ks.Group != "X25519" {
		t.Errorf("second probe: key share %+v, want X25519 alone, from the cache", ks)
	}
	if second.RoundTrips != 1 {
		t.Errorf("second probe: %d round trips after TLS, want 1", second.RoundTrips)
	}
}
