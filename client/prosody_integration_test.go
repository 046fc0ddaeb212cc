package client_test

import (
	"context"
	"encoding/xml"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/stanza"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/kdfcount"
	"github.com/pipebind/pipebind/internal/prosodytest"
	"github.com/pipebind/pipebind/login"
)

func TestIntegrationProsodyLogin(t *testing.T) {
	srv := prosodytest.StartT(t, prosodytest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for _, tc := range []struct {
		name     string
		tls      client.TLSMode
		addr     string
		mechs    []string
		wantMech string
		wantWarm int
		wantCold int
	}{
		{"direct-plain", client.TLSDirect, srv.DirectTLSAddr, []string{"PLAIN"}, "PLAIN", 1, 2},
		{"direct-scram", client.TLSDirect, srv.DirectTLSAddr, []string{"SCRAM-SHA-1"}, "SCRAM-SHA-1", 2, 3},
		{"direct-scram-plus", client.TLSDirect, srv.DirectTLSAddr, nil, "SCRAM-SHA-1-PLUS", 2, 3},
		{"starttls-plain", client.TLSStartTLS, srv.C2SAddr, []string{"PLAIN"}, "PLAIN", 1, 2},
		{"starttls-scram", client.TLSStartTLS, srv.C2SAddr, []string{"SCRAM-SHA-1"}, "SCRAM-SHA-1", 2, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := client.Config{
				NoFAST:     true, // password mechanisms; FAST has its own test
				JID:        jid.MustParse("alice@" + srv.Domain),
				Password:   srv.Users["alice"],
				Addr:       tc.addr,
				TLS:        tc.tls,
				TLSConfig:  srv.TLSConfig(),
				CachePath:  filepath.Join(t.TempDir(), "cache.db"),
				Mechanisms: tc.mechs,
			}
			for i, want := range []struct {
				source login.Source
				rt     int
			}{{login.SourceNetwork, tc.wantCold}, {login.SourceCache, tc.wantWarm}} {
				c, err := client.Dial(ctx, cfg)
				if err != nil {
					t.Fatalf("login %d: %v", i, err)
				}
				info := c.Info()
				if info.Path != login.PathSASL2 || info.Source != want.source || info.RoundTrips != want.rt || info.Mechanism != tc.wantMech {
					t.Errorf("login %d: path %s source %s round trips %d mechanism %s; want sasl2 %s %d %s",
						i, info.Path, info.Source, info.RoundTrips, info.Mechanism, want.source, want.rt, tc.wantMech)
				}
				if info.JID.Resourcepart() == "" || !info.JID.Bare().Equal(cfg.JID) {
					t.Errorf("login %d: bound %s", i, info.JID)
				}
				if !info.SM.Enabled || !info.SM.Resumable || info.SM.ID == "" {
					t.Errorf("login %d: SM %+v, want enabled and resumable", i, info.SM)
				}
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}

	t.Run("wrong-password", func(t *testing.T) {
		_, err := client.Dial(ctx, client.Config{
			JID:       jid.MustParse("alice@" + srv.Domain),
			Password:  "not-the-password",
			Addr:      srv.DirectTLSAddr,
			TLS:       client.TLSDirect,
			TLSConfig: srv.TLSConfig(),
		})
		if !errors.Is(err, client.ErrAuth) {
			t.Fatalf("err = %v, want ErrAuth", err)
		}
		if !errors.Is(err, &login.SASLError{Condition: "not-authorized"}) {
			t.Errorf("err = %v, want not-authorized", err)
		}
	})
}

// TestIntegrationProsodyMessage: a message sent by one pipebind client
// reaches another through Prosody, on sessions handed over from the
// pipelined login (nothing lost in the decoder, namespaces intact).
func TestIntegrationProsodyMessage(t *testing.T) {
	srv := prosodytest.StartT(t, prosodytest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dbPath := filepath.Join(t.TempDir(), "cache.db")
	got := make(chan string, 1)
	dial := func(user string, h xmpp.Handler) *client.Client {
		t.Helper()
		c, err := client.Dial(ctx, client.Config{
			JID:       jid.MustParse(user + "@" + srv.Domain),
			Password:  srv.Users[user],
			Addr:      srv.DirectTLSAddr,
			TLS:       client.TLSDirect,
			TLSConfig: srv.TLSConfig(),
			CachePath: dbPath,
			Handler:   h,
		})
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	bob := dial("bob", mux.New(stanza.NSClient, mux.MessageFunc(stanza.ChatMessage, xml.Name{Local: "body"},
		func(m stanza.Message, r xmlstream.TokenReadEncoder) error {
			var msg struct {
				Body string `xml:"body"`
			}
			if err := xml.NewTokenDecoder(r).Decode(&msg); err != nil {
				return err
			}
			select {
			case got <- m.From.Bare().String() + ": " + msg.Body:
			default:
			}
			return nil
		})))
	alice := dial("alice", nil)
	if alice.Info().Source != login.SourceCache {
		// bob's login filled the shared cache for the domain.
		t.Errorf("alice's login: features from %s, want cache", alice.Info().Source)
	}
	msg := stanza.Message{To: bob.Info().JID, Type: stanza.ChatMessage}
	if err := alice.Send(ctx, msg.Wrap(xmlstream.Wrap(xmlstream.Token(xml.CharData("hello over one round trip")), xml.StartElement{Name: xml.Name{Local: "body"}}))); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if want := "alice@" + srv.Domain + ": hello over one round trip"; m != want {
			t.Errorf("bob got %q, want %q", m, want)
		}
	case <-ctx.Done():
		t.Fatal("bob received nothing")
	}
}

// TestIntegrationProsodySRV follows XEP-0368 SRV records to Prosody: a dead
// Direct TLS record of higher priority is skipped, then the STARTTLS one
// works; a working Direct TLS record is preferred.
func TestIntegrationProsodySRV(t *testing.T) {
	srv := prosodytest.StartT(t, prosodytest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dead := deadPort(t)
	port := func(addr string) uint16 {
		_, p, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		return uint16(n)
	}
	for _, tc := range []struct {
		name       string
		records    srvTable
		wantDirect bool
		wantAddr   string
	}{
		{"direct preferred", srvTable{
			"_xmpps-client._tcp." + srv.Domain: {{Target: "127.0.0.1.", Port: port(srv.DirectTLSAddr)}},
			"_xmpp-client._tcp." + srv.Domain:  {{Target: "127.0.0.1.", Port: port(srv.C2SAddr)}},
		}, true, srv.DirectTLSAddr},
		{"dead direct skipped", srvTable{
			"_xmpps-client._tcp." + srv.Domain: {{Target: "127.0.0.1.", Port: dead}},
			"_xmpp-client._tcp." + srv.Domain:  {{Target: "127.0.0.1.", Port: port(srv.C2SAddr), Priority: 5}},
		}, false, srv.C2SAddr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := client.Dial(ctx, client.Config{
				JID:       jid.MustParse("alice@" + srv.Domain),
				Password:  srv.Users["alice"],
				TLSConfig: srv.TLSConfig(),
				Resolver:  tc.records,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if info := c.Info(); info.DirectTLS != tc.wantDirect || info.Addr != tc.wantAddr {
				t.Errorf("connected to %s direct=%v, want %s direct=%v", info.Addr, info.DirectTLS, tc.wantAddr, tc.wantDirect)
			}
		})
	}
}

type srvTable map[string][]*net.SRV

func (f srvTable) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	recs, ok := f["_"+service+"._"+proto+"."+name]
	if !ok {
		return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return "", recs, nil
}

// deadPort returns a loopback port nothing listens on.
func deadPort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	return p
}

// TestIntegrationProsodyClassic forces the RFC 6120 path (the fallback for
// servers without SASL2): SASL, restart, bind, carbons and SM enable.
func TestIntegrationProsodyClassic(t *testing.T) {
	srv := prosodytest.StartT(t, prosodytest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := client.Config{
		JID:        jid.MustParse("alice@" + srv.Domain),
		Password:   srv.Users["alice"],
		Addr:       srv.DirectTLSAddr,
		TLS:        client.TLSDirect,
		TLSConfig:  srv.TLSConfig(),
		CachePath:  filepath.Join(t.TempDir(), "cache.db"),
		Path:       login.PathClassic,
		Mechanisms: []string{"PLAIN"},
	}
	// Cold: features, auth, restart, bind, carbons+SM. Warm: header and
	// <auth> go together (never the restart: PEERS.md).
	for i, wantRT := range []int{5, 4} {
		c, err := client.Dial(ctx, cfg)
		if err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
		info := c.Info()
		if info.Path != login.PathClassic || info.RoundTrips != wantRT || !info.Carbons || !info.SM.Enabled || info.JID.Resourcepart() == "" {
			t.Errorf("login %d: path %s, %d round trips, carbons %v, SM %+v, jid %s; want classic, %d, carbons, SM",
				i, info.Path, info.RoundTrips, info.Carbons, info.SM, info.JID, wantRT)
		}
		c.Close()
	}
}

// TestIntegrationProsodyScramKeys: the second SCRAM login to Prosody uses
// the cached keys: zero PBKDF2 derivations (counted), server still verified.
func TestIntegrationProsodyScramKeys(t *testing.T) {
	srv := prosodytest.StartT(t, prosodytest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := client.Config{
		NoFAST: true, // password mechanisms; FAST has its own test
		JID:    jid.MustParse("alice@" + srv.Domain), Password: srv.Users["alice"],
		Addr: srv.DirectTLSAddr, TLS: client.TLSDirect, TLSConfig: srv.TLSConfig(),
		CachePath: filepath.Join(t.TempDir(), "cache.db"), NoSync: true,
	}
	for _, mech := range []string{"SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"} {
		cfg.Mechanisms = []string{mech}
		for i, wantCalls := range []uint64{1, 0} {
			before := kdfcount.PBKDF2()
			c, err := client.Dial(ctx, cfg)
			if err != nil {
				t.Fatalf("%s login %d: %v", mech, i, err)
			}
			c.Close()
			if calls := kdfcount.PBKDF2() - before; calls != wantCalls || c.Info().Mechanism != mech {
				// The keys are shared by SCRAM-SHA-1 and -PLUS: the PLUS
				// logins find them already.
				if !(mech == "SCRAM-SHA-1-PLUS" && calls == 0) {
					t.Errorf("%s login %d: %d PBKDF2 calls (want %d), mechanism %s", mech, i, calls, wantCalls, c.Info().Mechanism)
				}
			}
		}
	}
}
