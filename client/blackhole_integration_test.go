package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/pathemu"
	"github.com/pipebind/pipebind/internal/prosodytest"
)

// TestIntegrationBlackhole (issue 14): a real Prosody 13 behind a
// packet-level emulated path (50 ms RTT); the path is blackholed (every
// packet dropped both ways, nothing closed). The client finds the dead link
// within KeepAlive.Idle+Timeout of the last byte it received, and once the
// path works again it is back (resumed) without the application doing
// anything. The test logs both times; RELIABILITY.md quotes them.
func TestIntegrationBlackhole(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root, network namespaces and Prosody") // -short only
	}
	if err := pathemu.Available(); err != nil {
		t.Fatalf("the packet-level path emulator cannot run here: %v", err)
	}
	const rtt, idle, timeout = 50 * time.Millisecond, 2 * time.Second, 2 * time.Second
	emu, err := pathemu.New(pathemu.RTT(rtt))
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	srv := prosodytest.StartT(t, prosodytest.Options{
		Host: pathemu.ServerAddr, Launch: emu.Server().Start, Dial: emu.Client().DialContext,
	})
	events, onEvent := eventsTo(64)
	cfg := client.Config{
		JID: jid.MustParse("alice@" + srv.Domain), Password: srv.Users["alice"],
		Addr: srv.DirectTLSAddr, TLS: client.TLSDirect, TLSConfig: srv.TLSConfig(),
		DialFunc: emu.Client().DialContext, NoSync: true,
		KeepAlive: client.KeepAlive{Idle: idle, Timeout: timeout},
		Reconnect: true, OnEvent: onEvent,
	}
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Info().SM.Resumable {
		t.Fatal("Prosody did not enable resumable stream management")
	}
	emu.SetBlackhole(true)
	blackholed := time.Now()
	off := waitEvent(t, events, client.EventOffline, 3*(idle+timeout))
	found := time.Since(blackholed)
	if !errors.Is(off.Err, client.ErrConnection) || !errors.Is(off.Err, client.ErrTimeout) {
		t.Fatalf("offline with %v, want a drop found by a deadline", off.Err)
	}
	if found > idle+timeout+time.Second {
		t.Errorf("the dead link was found %v after the blackhole, want within Idle+Timeout = %v", found, idle+timeout)
	}
	emu.SetBlackhole(false)
	restored := time.Now()
	waitEvent(t, events, client.EventResumed, time.Minute)
	back := time.Since(restored)
	t.Logf("RTT %v, KeepAlive %v+%v: dead link found %v after the blackhole (%v); resumed %v after the path came back",
		rtt, idle, timeout, found.Round(time.Millisecond), off.Err, back.Round(time.Millisecond))
}
