package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	xmpp "github.com/xmppo/go-xmpp"
	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/netem"
	"github.com/pipebind/pipebind/internal/xmpptest"
	"github.com/pipebind/pipebind/login"
)

// BenchmarkLogin logs in to the in-process server through the emulated
// path with pipebind (warm FAST, warm PLAIN, classic) and go-xmpp (PLAIN), the Go
// benchmark form of cmd/pipebind-bench (which runs each client in its own
// process, adds Prosody, the floor and the storm, and is what BENCHMARKS.md
// reports). RTs/op are counted on the proxy (flights − 1 for TLS 1.3).
//
//	cd bench && go test -run XXX -bench Login -benchtime 10x
func BenchmarkLogin(b *testing.B) {
	srv := xmpptest.NewServer(xmpptest.Config{Users: map[string]string{"alice": "alice-pw-1"}})
	defer srv.Close()
	for _, rtt := range []time.Duration{0, 20 * time.Millisecond, 50 * time.Millisecond} {
		px, err := netem.New(srv.DirectTLSAddr(), netem.RTT(rtt))
		if err != nil {
			b.Fatal(err)
		}
		measure := func(b *testing.B, login func() (closer func(), err error)) {
			if c, err := login(); err != nil { // warm-up: fills caches
				b.Fatal(err)
			} else {
				c()
			}
			var flights, conns int
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				n0 := px.NumConns()
				c, err := login()
				if err != nil {
					b.Fatal(err)
				}
				st, n := px.StatsSinceBefore(n0, time.Now())
				flights, conns = flights+st.Flights, conns+n
				b.StopTimer()
				c()
				b.StartTimer()
			}
			b.ReportMetric(float64(flights-conns)/float64(b.N), "RTs/op")
		}
		// pb is a pipebind client with a warm cache. With fast, the warm-up
		// login gets a FAST token and every timed login must use it;
		// without, NoFAST (FAST is on by default with a cache).
		pb := func(path login.Path, fast bool) func(b *testing.B) {
			return func(b *testing.B) {
				db, err := cache.Open(context.Background(), filepath.Join(b.TempDir(), "cache.db"))
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				cfg := client.Config{JID: jid.MustParse("alice@localhost"), Password: "alice-pw-1", Addr: px.Addr(),
					TLS: client.TLSDirect, TLSConfig: srv.TLSConfig(), Cache: db, Path: path, Mechanisms: []string{"PLAIN"},
					NoSync: true, NoPresence: true, NoFAST: !fast}
				logins := 0
				measure(b, func() (func(), error) {
					c, err := client.Dial(context.Background(), cfg)
					if err != nil {
						return nil, err
					}
					if logins++; fast && logins > 1 && !c.Info().FAST {
						c.Close()
						return nil, fmt.Errorf("login %d used %s, not the FAST token", logins, c.Info().Mechanism)
					}
					return func() { c.Close() }, nil
				})
			}
		}
		b.Run(fmt.Sprintf("rtt=%v/pipebind-warm-fast", rtt), pb(login.PathSASL2, true))
		b.Run(fmt.Sprintf("rtt=%v/pipebind-warm-plain", rtt), pb(login.PathSASL2, false))
		b.Run(fmt.Sprintf("rtt=%v/pipebind-classic", rtt), pb(login.PathClassic, false))
		b.Run(fmt.Sprintf("rtt=%v/goxmpp-plain", rtt), func(b *testing.B) {
			tc := srv.TLSConfig()
			tc.NextProtos = []string{"xmpp-client"}
			o := xmpp.Options{Host: px.Addr(), User: "alice@localhost", Password: "alice-pw-1", TLSConfig: tc,
				Mechanism: "PLAIN", NoSASLUpgrade: true}
			measure(b, func() (func(), error) {
				c, err := o.NewClient()
				if err != nil {
					return nil, err
				}
				return func() { go c.Close() }, nil
			})
		})
		px.Close()
	}
}
