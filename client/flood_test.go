package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
)

// floodBound is what a hostile server may make the client hold above its
// idle session, whatever it sends: a few MiB (the limits of package wire: 1
// MiB per element, 1 MiB of login answers, nothing between elements).
const floodBound = 8 << 20

// heapDuring runs f while heapPeak samples the heap, and returns the growth
// (bench_sync_test.go: the heap in use, garbage included, and the live one).
func heapDuring(f func()) heapGrowth {
	h := startHeapPeak()
	f()
	return h.stop()
}

// TestFloodBounded (issue 14): whatever a server sends after the login,
// between stanzas or inside one, the client's memory stays within
// floodBound of its idle session: white space is dropped as it arrives
// (the session goes on), text, nesting and a DTD end the stream with a
// typed error at once. Before, 200 MB of spaces cost 824 MB of client
// memory, and text between stanzas was buffered until the server stopped.
func TestFloodBounded(t *testing.T) {
	const total = 32 << 20
	for _, tc := range []struct {
		name, unit string
		survives   bool
	}{
		{"white space", " \n\t", true},
		{"text", "x", false},
		{"nesting", "<a>", false},
		{"dtd", "<!DOCTYPE x [<!ENTITY y 'z'>]>", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, xmpptest.Config{})
			got := make(chan struct{}, 1)
			cfg := testConfig(t, s, "alice", nil)
			cfg.NoSync = true
			cfg.Handler = messageSignal(got)
			c, err := client.Dial(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			l := lastConn(t, s)
			var sent int64
			g := heapDuring(func() {
				sent, _ = s.Flood(l, tc.unit, total)
				if tc.survives {
					s.WriteRaw(l, "<message from='bob@localhost/x' type='chat'><body>after</body></message>")
					select {
					case <-got:
					case <-time.After(time.Minute):
						t.Error("the message after the flood did not arrive")
					}
					return
				}
				select {
				case <-c.Done():
				case <-time.After(time.Minute):
					t.Error("the client did not end the stream")
				}
			})
			t.Logf("%s: %d MiB sent, heap in use +%.2f MiB at most, live +%.2f MiB", tc.name, sent>>20, mib(g.peakInuse), mib(g.peakLive))
			if g.peakInuse > floodBound {
				t.Errorf("heap in use grew by %d bytes, want at most %d", g.peakInuse, floodBound)
			}
			if !tc.survives && (!errors.Is(c.Err(), client.ErrProtocol) || errors.Is(c.Err(), client.ErrConnection)) {
				t.Errorf("ended with %v, want a protocol error", c.Err())
			}
		})
	}
}

// TestLoginFloodBounded (issue 14): during the login too: 1 MiB of nested
// elements inside the features (which cost 84-87 MB before the size cap
// fired) and a DTD end the login with ErrProtocol within floodBound; the
// client ends the stream with a stream error (the condition,
// restricted-xml for the DTD as RFC 6120 §11.1 asks, is checked in package
// wire) and sends no credential.
func TestLoginFloodBounded(t *testing.T) {
	deep := "<stream:features>" + strings.Repeat("<a>", 1<<20)
	for _, tc := range []struct {
		name, garbage string
		reads         bool // the server reads while the client refuses
	}{
		{"nesting", deep, false}, // the server is still writing its 3 MiB
		{"dtd", "<!DOCTYPE stream [<!ENTITY x 'y'>]>", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, xmpptest.Config{Fault: func(int) xmpptest.Fault { return xmpptest.Fault{Garbage: tc.garbage} }})
			var err error
			g := heapDuring(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				_, err = client.Dial(ctx, testConfig(t, s, "alice", nil))
			})
			t.Logf("%s: heap in use +%.2f MiB at most, live +%.2f MiB; %v", tc.name, mib(g.peakInuse), mib(g.peakLive), err)
			if !errors.Is(err, client.ErrProtocol) {
				t.Fatalf("login: %v, want ErrProtocol", err)
			}
			if g.peakInuse > floodBound {
				t.Errorf("heap in use grew by %d bytes, want at most %d", g.peakInuse, floodBound)
			}
			l := lastConn(t, s)
			<-l.Done()
			if _, ok := l.Received("error"); tc.reads && !ok {
				t.Error("the server did not receive a stream error")
			}
			if _, ok := l.Received("authenticate"); ok {
				t.Error("credentials were sent after the bad input")
			}
		})
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
