package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
	"github.com/pipebind/pipebind/login"
)

// demoRun is one login of the demo.
type demoRun struct {
	path login.Path
	warm bool
	info client.Info
}

var demoCommand = command{name: "demo",
	about: "Starts an XMPP server on loopback (classic, XEP-0386 v0.3.0 draft and SASL2 + Bind 2)\n" +
		"with an emulated round-trip time, and logs in with each path, cold and warm cache."}

// demo starts the in-process server on loopback with an emulated round-trip
// time and logs in with each path, cold and warm, then prints a table and a
// waterfall of the round trips.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	rtt := fs.Duration("rtt", 50*time.Millisecond, "emulated network round-trip `time` (split evenly between the two directions)")
	mech := fs.String("mech", "PLAIN", "SASL `mechanism`: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-1")
	if _, err := demoCommand.parse(fs, args, stdout); err != nil {
		return err
	}
	if *rtt < 0 || *rtt > 2*time.Second {
		return usagef("-rtt %s: want 0 to 2s", *rtt)
	}
	const password = "demo-password"
	srv := xmpptest.NewServer(xmpptest.Config{
		Users:      map[string]string{"alice": password},
		Bind2Draft: true,
		Latency:    *rtt / 2,
	})
	defer srv.Close()
	// Some archive state for the draft's <bound>: three messages from bob,
	// the first one read.
	first := srv.InjectArchive("alice", "bob@"+srv.Domain(), "hi alice", true)
	srv.InjectArchive("alice", "bob@"+srv.Domain(), "are you there?", true)
	srv.InjectArchive("alice", "bob@"+srv.Domain(), "ping", true)
	srv.SetReadMarker("alice", "bob@"+srv.Domain(), first)

	dir, err := os.MkdirTemp("", "pipebind-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	w := bufio.NewWriter(stdout)
	defer w.Flush()
	fmt.Fprintf(w, "pipebind demo: XMPP server on %s (Direct TLS), emulated RTT %s, account alice@%s, %s\n\n",
		srv.DirectTLSAddr(), *rtt, srv.Domain(), *mech)
	w.Flush()

	var runs []demoRun
	for _, path := range []login.Path{login.PathClassic, login.PathBind2Draft, login.PathSASL2} {
		// One cache per path, so each starts cold.
		db, err := cache.Open(ctx, filepath.Join(dir, path.String()+".db"))
		if err != nil {
			return err
		}
		for _, warm := range []bool{false, true} {
			c, err := client.Dial(ctx, client.Config{
				JID:        jid.MustParse("alice@" + srv.Domain()),
				Password:   password,
				Addr:       srv.DirectTLSAddr(),
				TLS:        client.TLSDirect,
				TLSConfig:  srv.TLSConfig(),
				Cache:      db,
				Path:       path,
				Mechanisms: []string{*mech},
			})
			if err != nil {
				db.Close()
				return fmt.Errorf("%s login: %w", path, err)
			}
			runs = append(runs, demoRun{path: path, warm: warm, info: c.Info()})
			c.Close()
		}
		db.Close()
	}
	printDemoTable(w, runs, *rtt)
	fmt.Fprintln(w)
	printDemoWaterfall(w, runs)
	if d := runs[3].info.Draft; d != nil {
		fmt.Fprintf(w, "\nThe v0.3.0 <bound> also said: latest archive id %s", orNone(d.LatestID))
		for _, u := range d.Unreads {
			fmt.Fprintf(w, "; %d unread from %s after %s", u.Count, u.JID, orNone(u.ReadID))
		}
		fmt.Fprintln(w)
	}
	return nil
}

func (r demoRun) label() string {
	c := "cold"
	if r.warm {
		c = "warm"
	}
	return fmt.Sprintf("%-11s %s", r.path, c)
}

func printDemoTable(w io.Writer, runs []demoRun, rtt time.Duration) {
	fmt.Fprintf(w, "%-11s %-4s  %11s  %10s  %10s  %s\n", "path", "cache", "round trips", "login", "total", "features from")
	var base time.Duration
	for _, r := range runs {
		if r.path == login.PathClassic && r.warm {
			base = r.info.Timings.Login
		}
	}
	for _, r := range runs {
		saved := ""
		if r.path != login.PathClassic && base > 0 {
			saved = fmt.Sprintf("  (%.1fx faster than classic warm)", float64(base)/float64(max(r.info.Timings.Login, 1)))
		}
		fmt.Fprintf(w, "%-16s  %11d  %7.1f ms  %7.1f ms  %s%s\n", r.label(), r.info.RoundTrips,
			ms(r.info.Timings.Login), ms(r.info.Timings.Total), r.info.Source, saved)
	}
	if rtt > 0 {
		fmt.Fprintf(w, "(each round trip costs one RTT = %s, and the TLS 1.3 handshake one more; the delay is\n emulated inside the server, so the TCP handshake itself is not delayed)\n", rtt)
	}
}

// printDemoWaterfall draws each login on one time axis: c = TCP connect,
// t = TLS handshake, 1..9 = the login's round trips after TLS.
func printDemoWaterfall(w io.Writer, runs []demoRun) {
	var span time.Duration
	for _, r := range runs {
		span = max(span, r.info.Timings.Total)
	}
	if span <= 0 {
		return
	}
	const width = 60
	col := func(d time.Duration) int { return min(int(int64(d)*width/int64(span)), width) }
	fmt.Fprintln(w, "waterfall (c = TCP connect, t = TLS, 1..n = round trips after TLS)")
	for _, r := range runs {
		line := []byte(strings.Repeat(" ", width))
		fill := func(from, to time.Duration, ch byte) {
			a, b := col(from), col(to)
			if b <= a {
				b = a + 1
			}
			for i := a; i < b && i < width; i++ {
				line[i] = ch
			}
		}
		t := r.info.Timings
		// The cache reads overlap the lookup, connect and TLS; only the
		// wait for them (CacheWait) delays the login's first write.
		at := t.Lookup
		fill(at, at+t.Connect, 'c')
		at += t.Connect + t.StartTLS
		fill(at, at+t.TLS, 't')
		at += t.TLS + t.CacheWait
		for i, f := range r.info.Flights {
			from := at + f.Sent.Sub(r.info.Started)
			to := at + f.Answered.Sub(r.info.Started)
			fill(from, to, byte('1'+min(i, 8)))
		}
		fmt.Fprintf(w, "  %-16s |%s| %7.1f ms\n", r.label(), line, ms(t.Total))
	}
}
