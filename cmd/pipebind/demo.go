package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
)

// demo starts the in-process server on loopback and logs in twice: a cache
// miss, then a cache hit, printing both reports.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mech := fs.String("mech", "PLAIN", "SASL `mechanism` to use (PLAIN, SCRAM-SHA-256, SCRAM-SHA-1)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pipebind demo [flags]\n\nStarts an XMPP server on loopback and logs in twice, cold then warm cache.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return errUsage
	}
	const password = "demo-password"
	srv := xmpptest.NewServer(xmpptest.Config{Users: map[string]string{"alice": password}})
	defer srv.Close()
	dir, err := os.MkdirTemp("", "pipebind-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	cfg := client.Config{
		JID:        jid.MustParse("alice@" + srv.Domain()),
		Password:   password,
		Addr:       srv.DirectTLSAddr(),
		TLS:        client.TLSDirect,
		TLSConfig:  srv.TLSConfig(),
		CachePath:  filepath.Join(dir, "cache.db"),
		Mechanisms: []string{*mech},
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	fmt.Fprintf(w, "pipebind demo: in-process XMPP server on %s (Direct TLS), account %s\n", srv.DirectTLSAddr(), cfg.JID)
	for i, title := range []string{"first login (cache miss: features read first)", "second login (cache hit: one write after TLS)"} {
		c, err := client.Dial(ctx, cfg)
		if err != nil {
			return err
		}
		info := c.Info()
		c.Close()
		fmt.Fprintf(w, "\n%d. %s\n", i+1, title)
		printReport(w, info)
	}
	return nil
}
