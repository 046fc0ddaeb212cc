// Command goxmpp-peer logs in with github.com/xmppo/go-xmpp v0.4.1 on
// behalf of "pipebind-bench -goxmpp": it speaks the peer protocol of
// bench/cmd/pipebind-bench/peer.go (one command per line on stdin, one JSON
// object per line on stdout) for the client kinds goxmpp-fast,
// goxmpp-plain and goxmpp-scram. The password is read from
// PIPEBIND_BENCH_PASSWORD.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	xmpp "github.com/xmppo/go-xmpp"
)

// reply mirrors peerReply in bench/cmd/pipebind-bench/peer.go.
type reply struct {
	Err        string `json:"err,omitempty"`
	NS         int64  `json:"ns,omitempty"`
	DoneUnixNS int64  `json:"done_unix_ns,omitempty"`
	CPUNS      int64  `json:"cpu_ns,omitempty"`
	Allocs     uint64 `json:"allocs,omitempty"`
	AllocBytes uint64 `json:"alloc_bytes,omitempty"`
	Path       string `json:"path,omitempty"`
	Mechanism  string `json:"mechanism,omitempty"`
	TLS        string `json:"tls,omitempty"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "goxmpp-peer:", err)
		os.Exit(1)
	}
}

func run() error {
	kind := flag.String("peer", "", "client kind: goxmpp-fast, goxmpp-plain or goxmpp-scram")
	addr := flag.String("addr", "", "server (proxy) address")
	domain := flag.String("domain", "", "XMPP domain")
	caFile := flag.String("ca", "", "CA PEM file")
	user := flag.String("user", "", "localpart")
	timeout := flag.Duration("timeout", 60*time.Second, "login timeout")
	flag.Parse()
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return errors.New("no certificate in " + *caFile)
	}
	o := xmpp.Options{
		Host:          *addr,
		User:          *user + "@" + *domain,
		Password:      os.Getenv("PIPEBIND_BENCH_PASSWORD"),
		DialTimeout:   *timeout,
		TLSConfig:     &tls.Config{RootCAs: pool, ServerName: *domain, MinVersion: tls.VersionTLS12, NextProtos: []string{"xmpp-client"}},
		NoSASLUpgrade: true,
		UserAgentSW:   "goxmpp-peer",
		UserAgentID:   uuid4(),
	}
	if os.Getenv("GOXMPP_PEER_DEBUG") != "" {
		o.Debug, o.DebugWriter = true, os.Stderr
	}
	switch *kind {
	case "goxmpp-fast":
		// The warm-up login gets the token; go-xmpp requests one only
		// with SCRAM (its PLAIN branch has no FAST).
		o.Fast = true
		o.NoPLAIN = true
	case "goxmpp-plain":
		o.Mechanism = "PLAIN"
	case "goxmpp-scram":
		// go-xmpp's own pick among the SCRAM mechanisms offered (Prosody
		// 13: SCRAM-SHA-1, SCRAM-SHA-1-PLUS).
		o.NoPLAIN = true
	default:
		return fmt.Errorf("unknown kind %q", *kind)
	}
	var c *xmpp.Client
	closed := map[*xmpp.Client]bool{}
	enc := json.NewEncoder(os.Stdout)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var r reply
		switch strings.TrimSpace(sc.Text()) {
		case "login":
			if o.Fast && c != nil && c.Fast.Token != "" {
				o.FastToken, o.FastMechanism = c.Fast.Token, c.Fast.Mechanism
			}
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			cpu0 := cpuTime()
			t0 := time.Now()
			nc, err := newClient(o, *timeout)
			d := time.Since(t0)
			done := time.Now()
			cpu1 := cpuTime()
			runtime.ReadMemStats(&m1)
			if err != nil {
				r.Err = strings.ReplaceAll(err.Error(), "\n", " ")
				break
			}
			c = nc
			if o.Debug {
				fmt.Fprintf(os.Stderr, "goxmpp-peer: fast token %t mechanism %q expiry %v\n", c.Fast.Token != "", c.Fast.Mechanism, c.Fast.Expiry)
			}
			r = reply{NS: int64(d), DoneUnixNS: done.UnixNano(), CPUNS: int64(cpu1 - cpu0),
				Allocs: m1.Mallocs - m0.Mallocs, AllocBytes: m1.TotalAlloc - m0.TotalAlloc,
				Path: "sasl2", Mechanism: c.Mechanism, TLS: "TLS 1.3"}
			switch {
			case o.FastToken != "":
				r.Path, r.Mechanism = "sasl2 fast", o.FastMechanism
			case r.Mechanism == "":
				r.Mechanism = o.Mechanism
			}
		case "close":
			// Keep c: its FAST token is used by the next login. go-xmpp's
			// Close waits (up to 10 s) for the server's </stream:stream>,
			// which does not always come: do not wait for it.
			if c != nil && !closed[c] {
				closed[c] = true
				go c.Close()
			}
		default:
			r.Err = "unknown command"
		}
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return sc.Err()
}

// newClient bounds go-xmpp's login, which takes no context.
func newClient(o xmpp.Options, timeout time.Duration) (*xmpp.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	type res struct {
		c   *xmpp.Client
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := o.NewClient()
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func uuid4() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
