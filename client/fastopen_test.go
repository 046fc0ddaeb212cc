package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/internal/testcert"
)

func TestKeySharePolicy(t *testing.T) {
	now := time.Now()
	x25519 := &cache.Features{TLSGroup: uint16(tls.X25519), SeenAt: now.Add(-time.Hour)}
	for _, tc := range []struct {
		name     string
		cfg      Config
		cached   *cache.Features
		fastOpen bool
		want     KeySharePolicy
		groups   []tls.CurveID
	}{
		{"no cache", Config{}, nil, true, KeyShareDefault, nil},
		{"cached X25519, Fast Open", Config{}, x25519, true, KeyShareCachedX25519, classicalGroups},
		{"cached X25519, no Fast Open", Config{}, x25519, false, KeyShareDefault, nil},
		{"cached hybrid", Config{}, &cache.Features{TLSGroup: uint16(tls.X25519MLKEM768), SeenAt: now}, true, KeyShareDefault, nil},
		{"cached P-256", Config{}, &cache.Features{TLSGroup: uint16(tls.CurveP256), SeenAt: now}, true, KeyShareDefault, nil},
		{"unknown group (unverified)", Config{}, &cache.Features{SeenAt: now}, true, KeyShareDefault, nil},
		{"cached X25519, recheck due", Config{}, &cache.Features{TLSGroup: uint16(tls.X25519), SeenAt: now.Add(-keyShareRecheck - time.Minute)}, true, KeyShareDefault, nil},
		{"the user's CurvePreferences", Config{TLSConfig: &tls.Config{CurvePreferences: []tls.CurveID{tls.X25519MLKEM768}}}, x25519, true, KeyShareConfig, []tls.CurveID{tls.X25519MLKEM768}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tlsConfig(tc.cfg, true)
			if got := applyKeySharePolicy(c, tc.cfg, tc.cached, tc.fastOpen); got != tc.want {
				t.Errorf("policy %v, want %v", got, tc.want)
			}
			if !slices.Equal(c.CurvePreferences, tc.groups) {
				t.Errorf("CurvePreferences %v, want %v", c.CurvePreferences, tc.groups)
			}
		})
	}
}

func TestKeyShareRecheckDue(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		f    *cache.Features
		want bool
	}{
		{nil, false},
		{&cache.Features{TLSGroup: uint16(tls.X25519), SeenAt: now.Add(-time.Hour)}, false},
		{&cache.Features{TLSGroup: uint16(tls.X25519), SeenAt: now.Add(-keyShareRecheck)}, true},
		{&cache.Features{TLSGroup: uint16(tls.X25519MLKEM768), SeenAt: now.Add(-keyShareRecheck)}, false},
	} {
		if got := keyShareRecheckDue(tc.f, now); got != tc.want {
			t.Errorf("keyShareRecheckDue(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
}

// TestHelloTap reads the ClientHellos crypto/tls writes: Go's default
// sends a hybrid key share too big for a SYN; the cached-X25519 policy
// sends one X25519 share in a ClientHello that fits; a server that only
// takes P-256 answers that one with a HelloRetryRequest, which the tap
// sees as a second ClientHello.
func TestHelloTap(t *testing.T) {
	for _, tc := range []struct {
		name          string
		client        []tls.CurveID
		server        []tls.CurveID
		offered       []string
		maxBytes      int
		retry         bool
		group         tls.CurveID
		minHelloBytes int
	}{
		{"default", nil, nil, []string{"X25519MLKEM768", "X25519"}, 2000, false, tls.X25519MLKEM768, 1200},
		{"cached X25519", classicalGroups, nil, []string{"X25519"}, 400, false, tls.X25519, 100},
		{"server without X25519", classicalGroups, []tls.CurveID{tls.CurveP256}, []string{"X25519"}, 400, true, tls.CurveP256, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tap, cs := tapHandshake(t, tc.client, tc.server)
			if !slices.Equal(tap.offered, tc.offered) || tap.helloBytes < tc.minHelloBytes || tap.helloBytes > tc.maxBytes {
				t.Errorf("offered %v in a %d-byte ClientHello, want %v in %d to %d bytes", tap.offered, tap.helloBytes, tc.offered, tc.minHelloBytes, tc.maxBytes)
			}
			if (tap.hellos > 1) != tc.retry || cs.CurveID != tc.group {
				t.Errorf("%d ClientHellos, group %v; want retry %v, group %v", tap.hellos, cs.CurveID, tc.retry, tc.group)
			}
			t.Logf("key shares %v, ClientHello %d bytes, group %v", tap.offered, tap.helloBytes, cs.CurveID)
		})
	}
}

// tapHandshake runs a TLS 1.3 handshake over loopback TCP with a tap under
// the client.
func tapHandshake(t *testing.T, client, server []tls.CurveID) (*helloTap, tls.ConnectionState) {
	t.Helper()
	pki, err := testcert.New("hello", "example.org")
	if err != nil {
		t.Fatal(err)
	}
	// Loopback TCP, not net.Pipe: around a HelloRetryRequest both sides
	// write without reading (change_cipher_spec, TLS 1.3 appendix D.4).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := tls.Server(s, &tls.Config{Certificates: []tls.Certificate{pki.Server}, CurvePreferences: server})
	done := make(chan error, 1)
	go func() { done <- srv.Handshake() }()
	tap := &helloTap{Conn: c}
	cl := tls.Client(tap, &tls.Config{RootCAs: pki.Pool, ServerName: "example.org", CurvePreferences: client, MinVersion: tls.VersionTLS13})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	tap.stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return tap, cl.ConnectionState()
}

func TestHelloTapIgnoresOtherRecords(t *testing.T) {
	var tap helloTap
	for _, b := range [][]byte{
		{23, 3, 3, 0, 3, 1, 0, 0},        // application data
		{22, 3, 3, 0, 4, 1, 0, 0, 9},     // a handshake whose length is not the record's
		{22, 3, 3, 0, 9, 1, 0, 0},        // cut short
		{20, 3, 3, 0, 1, 1, 22, 3, 3, 0}, // change cipher spec, then a cut header
	} {
		tap.look(b)
	}
	if tap.hellos != 0 || tap.offered != nil {
		t.Errorf("%d ClientHellos, offered %v, in records that hold none", tap.hellos, tap.offered)
	}
}

func TestFastOpenJSON(t *testing.T) {
	b, err := json.Marshal(struct {
		FO FastOpen `json:"tfo"`
		KS KeyShare `json:"key_share"`
	}{FastOpen{Requested: true, SYNData: true, Fail: FastOpenDataNotAcked}, KeyShare{Policy: KeyShareCachedX25519, Offered: []string{"X25519"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"tfo":{"requested":true,"syn_data":true,"accepted":false,"fail":"data-not-acked"},"key_share":{"policy":"cached-x25519","offered":["X25519"]}}`
	if string(b) != want {
		t.Errorf("got %s\nwant %s", b, want)
	}
	if b, _ := json.Marshal(FastOpen{Requested: true, SYNData: true, Accepted: true}); string(b) != `{"requested":true,"syn_data":true,"accepted":true}` {
		t.Errorf("accepted: %s (no fail)", b)
	}
}
