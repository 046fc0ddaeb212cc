package client_test

import (
	"context"
	"encoding/xml"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
	"github.com/pipebind/pipebind/login"
)

// TestBind2Draft: on a server advertising urn:xmpp:bind2:0 (and SASL2),
// -path bind2-draft reaches <bound> in one round trip when warm (the server
// received the restart header and bind before it wrote anything), two when
// cold, delivers a message the server writes in the same packet as </bound>,
// and reports latest-id and unreads.
func TestBind2Draft(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256"} {
		t.Run(mech, func(t *testing.T) {
			s := newTestServer(t, xmpptest.Config{
				Bind2Draft: true,
				AfterBound: "<message from='bob@localhost/x' to='alice@localhost' type='chat' id='ab1'><body>behind bound</body></message>",
			})
			bob := "bob@" + s.Domain()
			first := s.InjectArchive("alice", bob, "one", true)
			s.InjectArchive("alice", bob, "two", true)
			last := s.InjectArchive("alice", bob, "three", true)
			s.SetReadMarker("alice", bob, first)

			cfg := testConfig(t, s, "alice", openCache(t))
			cfg.Path = login.PathBind2Draft
			cfg.Mechanisms = []string{mech}
			extra := 0
			if mech != "PLAIN" {
				extra = 1 // SCRAM's challenge; restart and bind ride with the final response
			}
			for i, want := range []struct {
				rt     int
				source login.Source
			}{{2 + extra, login.SourceNetwork}, {1 + extra, login.SourceCache}} {
				got := make(chan string, 1)
				cfg.Handler = xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
					if start.Name.Local == "message" {
						var m struct {
							Body string `xml:"body"`
						}
						if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r)).Decode(&m); err != nil {
							return err
						}
						got <- m.Body
					}
					return nil
				})
				c, err := client.Dial(ctx, cfg)
				if err != nil {
					t.Fatalf("login %d: %v", i, err)
				}
				info := c.Info()
				select {
				case body := <-got:
					if body != "behind bound" {
						t.Errorf("login %d: body %q", i, body)
					}
				case <-ctx.Done():
					t.Fatalf("login %d: the message behind </bound> was lost", i)
				}
				c.Close()
				if info.Path != login.PathBind2Draft || info.RoundTrips != want.rt || info.Source != want.source {
					t.Errorf("login %d: %s, %d round trips, %s; want bind2-draft, %d, %s", i, info.Path, info.RoundTrips, info.Source, want.rt, want.source)
				}
				d := info.Draft
				if d == nil || d.LatestID != last || len(d.Unreads) != 1 || d.Unreads[0].Count != 2 || d.Unreads[0].ReadID != first || d.Unreads[0].JID.String() != bob {
					t.Errorf("login %d: draft bound %+v", i, d)
				}
				cl := lastConn(t, s)
				<-cl.Done()
				if !cl.Bind2Draft() {
					t.Errorf("login %d: the server did not see a draft bind", i)
				}
				bind, ok := cl.Received("bind")
				if !ok {
					t.Fatalf("login %d: no <bind> received", i)
				}
				if i == 1 && mech == "PLAIN" && bind.ServerWritesBefore != 0 {
					t.Errorf("warm: the bind arrived after %d server writes, want 0 (one write)", bind.ServerWritesBefore)
				}
			}
		})
	}
}

// TestBind2DraftAuto: with both SASL2 and bind2:0 offered, auto picks sasl2;
// with SASL2 withdrawn, the draft; a server that shows bind2:0 only after
// authentication gets it used on the first login and pipelined on the next.
func TestBind2DraftAuto(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name  string
		cfg   xmpptest.Config
		paths [2]login.Path
		rts   [2]int
	}{
		{"sasl2 preferred", xmpptest.Config{Bind2Draft: true}, [2]login.Path{login.PathSASL2, login.PathSASL2}, [2]int{3, 2}},
		{"draft without sasl2", xmpptest.Config{Bind2Draft: true, NoSASL2: true}, [2]login.Path{login.PathBind2Draft, login.PathBind2Draft}, [2]int{3, 2}},
		{"draft after auth only", xmpptest.Config{Bind2Draft: true, Bind2DraftPostAuthOnly: true, NoSASL2: true}, [2]login.Path{login.PathBind2Draft, login.PathBind2Draft}, [2]int{5, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, tc.cfg)
			cfg := testConfig(t, s, "alice", openCache(t))
			cfg.NoFAST = true // this test is about the password mechanisms
			for i := range 2 {
				c, err := client.Dial(ctx, cfg)
				if err != nil {
					t.Fatalf("login %d: %v", i, err)
				}
				info := c.Info()
				c.Close()
				if info.Path != tc.paths[i] || info.RoundTrips != tc.rts[i] {
					t.Errorf("login %d: %s in %d round trips, want %s in %d", i, info.Path, info.RoundTrips, tc.paths[i], tc.rts[i])
				}
			}
		})
	}
}
