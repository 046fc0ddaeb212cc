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
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

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
	insecure, jsonOut, verbose, noFAST    bool
}

func (p *probeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.addr, "addr", "", "server `host:port` (default: SRV lookup of the JID's domain)")
	fs.StringVar(&p.tlsMode, "tls", "auto", "`mode`: direct, starttls or auto")
	fs.StringVar(&p.ca, "ca", "", "PEM `file` of certificates to trust (instead of the system roots)")
	fs.BoolVar(&p.insecure, "insecure-skip-verify", false, "do not verify the server's certificate (DANGEROUS: allows PLAIN to an impostor)")
	fs.StringVar(&p.cache, "cache", defaultCachePath(), "feature cache `file` (SQLite)")
	fs.StringVar(&p.path, "path", "auto", "force a login `path`: sasl2, bind2-draft, classic or auto")
	fs.StringVar(&p.mechs, "mech", "", "comma-separated SASL `mechanisms` allowed, most preferred first (default: SCRAM-*-PLUS, SCRAM-*, PLAIN)")
	fs.BoolVar(&p.noFAST, "no-fast", false, "neither use nor request a FAST token (log in with the password)")
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
	cfg := client.Config{JID: j, Addr: p.addr, CachePath: p.cache, NoFAST: p.noFAST}
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
	// Asked once: a reconnection (probe -resume) does not prompt again.
	var once sync.Once
	var pw string
	var pwErr error
	cfg.PasswordFunc = func(context.Context) (string, error) {
		once.Do(func() { pw, pwErr = readPassword(j, stderr) })
		return pw, pwErr
	}
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
	resume := fs.Bool("resume", false, "after the login, cut the TCP connection and report the reconnection (stream management resume)")
	j, err := parseAccount(fs, args)
	if err != nil {
		return err
	}
	cfg, err := pf.config(ctx, j, stderr)
	if err != nil {
		return err
	}
	var cut *cutDialer
	events := make(chan client.Event, 16)
	if *resume {
		// Cut the first connection under the client, as a network failure
		// would, and let the reconnect loop resume the session.
		cut = &cutDialer{}
		cfg.DialFunc = cut.dial
		cfg.Reconnect = true
		cfg.OnEvent = func(e client.Event) {
			select {
			case events <- e:
			default:
			}
		}
	}
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	infos := []client.Info{c.Info()}
	if cut != nil {
		second, err := cutAndResume(ctx, cut, events)
		if err != nil {
			return err
		}
		infos = append(infos, second)
	}
	if pf.jsonOut {
		enc := json.NewEncoder(stdout)
		if len(infos) == 1 {
			return enc.Encode(newReport(infos[0]))
		}
		return enc.Encode(map[string]report{"login": newReport(infos[0]), "after_drop": newReport(infos[1])})
	}
	w := bufio.NewWriter(stdout)
	fmt.Fprintf(w, "pipebind probe %s\n", j.Bare())
	printReport(w, infos[0])
	if len(infos) > 1 {
		fmt.Fprintln(w, "after cutting the connection")
		printReport(w, infos[1])
	}
	return w.Flush()
}

// cutDialer remembers the connections it dials, so -resume can cut one.
type cutDialer struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (d *cutDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err == nil {
		d.mu.Lock()
		d.conns = append(d.conns, c)
		d.mu.Unlock()
	}
	return c, err
}

// cutAndResume cuts the newest connection and waits for the client to be
// online again (resumed or not), returning how that login went.
func cutAndResume(ctx context.Context, d *cutDialer, events <-chan client.Event) (client.Info, error) {
	d.mu.Lock()
	c := d.conns[len(d.conns)-1]
	d.mu.Unlock()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST: no polite end, as a dead network
	}
	c.Close()
	for {
		select {
		case e := <-events:
			switch e.Kind {
			case client.EventOnline, client.EventResumed:
				if e.Info != nil && e.Attempt > 0 {
					return *e.Info, nil
				}
			case client.EventClosed:
				return client.Info{}, fmt.Errorf("reconnecting after the cut: %w", e.Err)
			}
		case <-ctx.Done():
			return client.Info{}, fmt.Errorf("waiting for the reconnection: %w", ctx.Err())
		}
	}
}
