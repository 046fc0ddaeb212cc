package client_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/prosodytest"
)

// helperOnline is the "online" job: logs in as alice with the cache file,
// prints "online JID INSTANCE", stays online until stdin closes, then prints
// "events KIND,KIND,..." (the connection events it heard) and closes.
func helperOnline(ctx context.Context, path string) error {
	cfg, err := helperConfig()
	if err != nil {
		return err
	}
	events := make(chan client.Event, 64)
	cfg.CachePath, cfg.NoSync, cfg.Reconnect = path, true, true
	cfg.OnEvent = func(e client.Event) { events <- e }
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	fmt.Printf("online %s %q\n", c.Info().JID, c.Info().Instance)
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until stdin closes
	if err := pingServer(ctx, c, c.Info().JID.Domainpart()); err != nil {
		return fmt.Errorf("ping after the other logged in: %w", err)
	}
	c.Close()
	<-c.Done()
	close(events)
	var kinds []string
	for e := range events {
		kinds = append(kinds, e.Kind.String())
	}
	fmt.Printf("events %s\n", strings.Join(kinds, ","))
	return nil
}

// TestIntegrationInstances (issue 14): two processes of one account on one
// cache file against Prosody 13 (which binds <tag>~<hash of the user-agent
// id> and throws out the older session of a resource) each get their own
// instance and resource and never fight: neither hears a drop while the
// other logs in, and both still talk to the server.
func TestIntegrationInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prosody and a process") // -short only
	}
	srv := prosodytest.StartT(t, prosodytest.Options{})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cache.db")
	events, onEvent := eventsTo(64)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := client.Config{
		JID: jid.MustParse("alice@" + srv.Domain), Password: srv.Users["alice"],
		Addr: srv.DirectTLSAddr, TLS: client.TLSDirect, TLSConfig: srv.TLSConfig(),
		CachePath: path, NoSync: true, Reconnect: true, OnEvent: onEvent,
	}
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	env := append(os.Environ(), helperJobEnv+"=online", helperDBEnv+"="+path, helperAddrEnv+"="+srv.DirectTLSAddr,
		helperCAEnv+"="+string(srv.CAPEM), helperDomainEnv+"="+srv.Domain, helperPassEnv+"="+srv.Users["alice"])
	for round := range 2 { // the second run of the other process keeps its resource
		p := startProc(t, "online", exe, env, nil)
		line := p.next("online ")
		var other, instance string
		if _, err := fmt.Sscanf(line, "online %s %q", &other, &instance); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if other == c.Info().JID.String() || instance != "2" {
			t.Fatalf("round %d: the other process bound %s as instance %q; this one %s", round, other, instance, c.Info().JID)
		}
		if err := pingServer(ctx, c, srv.Domain); err != nil {
			t.Fatalf("this client after the other logged in: %v", err)
		}
		p.stdin.Close()
		if got := p.next("events "); got != "events closed" {
			t.Errorf("round %d: the other process heard %q, want only its close", round, got)
		}
		p.wait()
	}
	select {
	case e := <-events:
		t.Fatalf("this client heard %v (%v) while the other logged in", e.Kind, e.Err)
	default:
	}
}
