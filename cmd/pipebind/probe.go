package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/rs/zerolog"
	"golang.org/x/term"
	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/login"
)

var errUsage = errors.New("usage")

// probeFlags are the flags shared by the commands that log in.
type probeFlags struct {
	addr, tlsMode, ca, cache, path, mechs string
	insecure, jsonOut, verbose            bool
}

func (p *probeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.addr, "addr", "", "server `host:port` (default: SRV lookup of the JID's domain)")
	fs.StringVar(&p.tlsMode, "tls", "auto", "`mode`: direct, starttls or auto")
	fs.StringVar(&p.ca, "ca", "", "PEM `file` of certificates to trust (instead of the system roots)")
	fs.BoolVar(&p.insecure, "insecure-skip-verify", false, "do not verify the server's certificate (DANGEROUS: allows PLAIN to an impostor)")
	fs.StringVar(&p.cache, "cache", defaultCachePath(), "feature cache `file` (SQLite)")
	fs.StringVar(&p.path, "path", "auto", "force a login `path`: sasl2, bind2-draft, classic or auto")
	fs.StringVar(&p.mechs, "mech", "", "comma-separated SASL `mechanisms` allowed, most preferred first (default: SCRAM-*-PLUS, SCRAM-*, PLAIN)")
	fs.BoolVar(&p.jsonOut, "json", false, "print one JSON object on stdout")
	fs.BoolVar(&p.verbose, "v", false, "debug log to stderr")
}

func defaultCachePath() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "pipebind", "cache.db")
}

// config builds a client.Config from the flags.
func (p *probeFlags) config(ctx context.Context, j jid.JID, stderr io.Writer) (client.Config, error) {
	cfg := client.Config{JID: j, Addr: p.addr, CachePath: p.cache}
	switch p.tlsMode {
	case "auto":
	case "direct":
		cfg.TLS = client.TLSDirect
	case "starttls":
		cfg.TLS = client.TLSStartTLS
	default:
		return cfg, fmt.Errorf("-tls %q: want direct, starttls or auto", p.tlsMode)
	}
	path, err := login.ParsePath(p.path)
	if err != nil {
		return cfg, err
	}
	cfg.Path = path
	if p.mechs != "" {
		for _, m := range strings.Split(p.mechs, ",") {
			if m = strings.TrimSpace(strings.ToUpper(m)); m != "" {
				cfg.Mechanisms = append(cfg.Mechanisms, m)
			}
		}
	}
	tc := &tls.Config{}
	if p.ca != "" {
		pem, err := os.ReadFile(p.ca)
		if err != nil {
			return cfg, fmt.Errorf("-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return cfg, fmt.Errorf("-ca %s: no PEM certificate found", p.ca)
		}
		tc.RootCAs = pool
	}
	if p.insecure {
		fmt.Fprintln(stderr, "WARNING: -insecure-skip-verify: the server's certificate is NOT verified; anyone on the path can impersonate it and read your password.")
		tc.InsecureSkipVerify = true
		cfg.InsecureAllowPlain = true
	}
	cfg.TLSConfig = tc
	if p.cache != "" {
		if err := os.MkdirAll(filepath.Dir(p.cache), 0o700); err != nil {
			return cfg, fmt.Errorf("-cache: %w", err)
		}
	}
	if p.verbose {
		cfg.Logger = zerolog.New(zerolog.ConsoleWriter{Out: stderr}).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	}
	cfg.PasswordFunc = func(context.Context) (string, error) { return readPassword(j, stderr) }
	return cfg, nil
}

// readPassword takes the password from PIPEBIND_PASSWORD or a terminal
// prompt; never from a flag, so it does not land in shell history or ps.
func readPassword(j jid.JID, stderr io.Writer) (string, error) {
	if pw, ok := os.LookupEnv("PIPEBIND_PASSWORD"); ok {
		return pw, nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", errors.New("no password: set PIPEBIND_PASSWORD or run on a terminal")
	}
	fmt.Fprintf(stderr, "Password for %s: ", j.Bare())
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return "", fmt.Errorf("reading password: %w", err)
	}
	return strings.TrimRight(string(pw), "\r\n"), nil
}

func probe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var pf probeFlags
	pf.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pipebind probe [flags] JID\n\nLogs in once and reports the path, round trips and timings.\nThe password comes from $PIPEBIND_PASSWORD or a terminal prompt.\n\nflags:")
		fs.PrintDefaults()
	}
	j, err := parseAccount(fs, args)
	if err != nil {
		return err
	}
	cfg, err := pf.config(ctx, j, stderr)
	if err != nil {
		return err
	}
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	info := c.Info()
	if pf.jsonOut {
		enc := json.NewEncoder(stdout)
		return enc.Encode(newReport(info))
	}
	w := bufio.NewWriter(stdout)
	fmt.Fprintf(w, "pipebind probe %s\n", j.Bare())
	printReport(w, info)
	return w.Flush()
}
