package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"
	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/login"
)

// probeFlags are the flags shared by the commands that log in.
type probeFlags struct {
	addr, tlsMode, ca, cache, path, mechs string
	insecure, jsonOut, verbose, noFAST    bool
	verifyPassword, allowDowngrade, trace bool
	timeout                               time.Duration

	warn *warnings // the client's warnings without -v
}

func (p *probeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.addr, "addr", envOr(envAddr, ""), "server `host:port` (default $"+envAddr+", else the SRV lookup of the JID's domain)")
	fs.StringVar(&p.tlsMode, "tls", "auto", "`mode`: direct (TLS from the first byte, port 5223), starttls (port 5222) or auto")
	fs.StringVar(&p.ca, "ca", envOr(envCA, ""), "PEM `file` of certificates to trust instead of the system roots (default $"+envCA+")")
	fs.BoolVar(&p.insecure, "insecure-skip-verify", false, "do not verify the server's certificate (DANGEROUS: allows PLAIN to an impostor)")
	fs.StringVar(&p.cache, "cache", envOr(envCache, defaultCachePath()), "cache `file` (SQLite; default $"+envCache+", else the user cache directory); empty: none")
	fs.StringVar(&p.path, "path", "auto", "force a login `path`: sasl2, bind2-draft, classic or auto")
	fs.StringVar(&p.mechs, "mech", "", "comma-separated password `mechanisms` allowed, most preferred first (default: SCRAM-*-PLUS, SCRAM-*, PLAIN); a cached FAST token is used whatever this says (-no-fast)")
	fs.BoolVar(&p.noFAST, "no-fast", false, "neither use nor request a FAST token; cached SCRAM keys may still stand in for the password (-verify-password)")
	fs.BoolVar(&p.verifyPassword, "verify-password", false, "log in with the password itself, so that the server checks it: no FAST token, no cached SCRAM keys")
	fs.BoolVar(&p.allowDowngrade, "allow-downgrade", false, "accept a password mechanism weaker than the strongest this account used (the pin)")
	fs.DurationVar(&p.timeout, "timeout", 30*time.Second, "bound the lookup, connect, TLS and login (and send's and mark-read's round trips); 0: none")
	fs.BoolVar(&p.jsonOut, "json", false, "print JSON on stdout, also on failure")
	fs.BoolVar(&p.verbose, "v", false, "debug log on stderr: connections, TLS, the login (never a credential)")
	fs.BoolVar(&p.trace, "trace", false, "print the XML stream on stderr, both directions, secrets redacted (like curl -v)")
}

func defaultCachePath() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "pipebind", "cache.db")
}

// config builds a client.Config from the flags, checking them all before
// anything connects: a mistake is the user's (usageError), not the
// server's.
func (p *probeFlags) config(j jid.JID, stderr io.Writer) (client.Config, error) {
	cfg := client.Config{JID: j, Addr: p.addr, CachePath: p.cache, NoFAST: p.noFAST,
		VerifyPassword: p.verifyPassword, AllowDowngrade: p.allowDowngrade}
	if err := p.check(&cfg); err != nil {
		return cfg, err
	}
	tc, err := p.tlsConfig(stderr)
	if err != nil {
		return cfg, err
	}
	cfg.TLSConfig, cfg.InsecureAllowPlain = tc, p.insecure
	if p.cache != "" {
		// Best effort: a directory that cannot be made is the cache's
		// fault, reported as such (and a warning), not the login's.
		_ = os.MkdirAll(filepath.Dir(p.cache), 0o700)
	}
	p.output(&cfg, stderr)
	if err := p.password(&cfg, j, stderr); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// check validates the flags that need no file.
func (p *probeFlags) check(cfg *client.Config) error {
	switch p.tlsMode {
	case "auto":
	case "direct":
		cfg.TLS = client.TLSDirect
	case "starttls":
		cfg.TLS = client.TLSStartTLS
	default:
		return usagef("-tls %q: want direct, starttls or auto", p.tlsMode)
	}
	path, err := login.ParsePath(p.path)
	if err != nil {
		return usagef("-path %q: want auto, sasl2, bind2-draft or classic", p.path)
	}
	cfg.Path = path
	if p.addr != "" {
		if _, port, err := net.SplitHostPort(p.addr); err != nil || port == "" {
			return usagef("-addr %q: want host:port (5222 for STARTTLS, 5223 for Direct TLS)", p.addr)
		}
	}
	if p.mechs != "" {
		for _, m := range strings.Split(p.mechs, ",") {
			if m = strings.TrimSpace(strings.ToUpper(m)); m != "" {
				if !login.KnownMechanism(m) {
					return usagef("-mech %s: unknown mechanism (known: %s)", m, strings.Join(login.DefaultMechanisms(), ", "))
				}
				cfg.Mechanisms = append(cfg.Mechanisms, m)
			}
		}
	}
	if p.timeout < 0 {
		return usagef("-timeout %s: want 0 (none) or more", p.timeout)
	}
	cfg.Timeout = p.timeout
	if p.timeout == 0 {
		cfg.Timeout = -1 // only the context (Ctrl-C)
	}
	return nil
}

func (p *probeFlags) tlsConfig(stderr io.Writer) (*tls.Config, error) {
	tc := &tls.Config{}
	if p.ca != "" {
		pem, err := os.ReadFile(p.ca)
		if err != nil {
			return nil, usagef("-ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("-ca %s: no PEM certificate found", p.ca)
		}
		tc.RootCAs = pool
	}
	if p.insecure {
		fmt.Fprintln(stderr, "WARNING: -insecure-skip-verify: the server's certificate is NOT verified; anyone on the path can impersonate it and read your password.")
		tc.InsecureSkipVerify = true
	}
	return tc, nil
}

// output sets up -v, -trace and the warnings without -v.
func (p *probeFlags) output(cfg *client.Config, stderr io.Writer) {
	if p.verbose {
		cw := zerolog.ConsoleWriter{Out: stderr, NoColor: !isTerminal(stderr)}
		cfg.Logger = zerolog.New(cw).Level(zerolog.DebugLevel).With().Timestamp().Logger()
		cfg.Trace = verboseTrace(cfg.Logger.With().Str("component", "pipebind").Logger())
	} else {
		p.warn = &warnings{}
		cfg.Logger = zerolog.New(p.warn).Level(zerolog.WarnLevel)
	}
	if p.trace {
		t := &wireTrace{w: stderr, color: isTerminal(stderr)}
		cfg.WireTrace = t.trace
	}
}

// errNoPassword: no password, and nothing to ask it with.
var errNoPassword = &usageError{msg: "no password: set " + envPassword + " or run on a terminal"}

// password takes the password from PIPEBIND_PASSWORD, or else asks for it
// on the terminal, but only when the login needs it: a cached FAST token
// logs in without (client.Config.PasswordFunc). Never from a flag, so it
// does not land in shell history or ps.
func (p *probeFlags) password(cfg *client.Config, j jid.JID, stderr io.Writer) error {
	if pw, ok := os.LookupEnv(envPassword); ok {
		if pw == "" {
			return usagef("%s is set but empty: set it to the password, or unset it to be asked on the terminal", envPassword)
		}
		cfg.Password = pw
		return nil
	}
	// Asked once: a reconnection (probe -resume, listen) does not prompt
	// again.
	var once sync.Once
	var pw string
	var pwErr error
	cfg.PasswordFunc = func(context.Context) (string, error) {
		once.Do(func() { pw, pwErr = readPassword(j, stderr) })
		return pw, pwErr
	}
	return nil
}

// readPassword asks for the password on the terminal.
func readPassword(j jid.JID, stderr io.Writer) (string, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", errNoPassword
	}
	fmt.Fprintf(stderr, "Password for %s: ", j.Bare())
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return "", fmt.Errorf("reading password: %w", err)
	}
	s := strings.TrimRight(string(pw), "\r\n")
	if s == "" {
		return "", usagef("empty password")
	}
	return s, nil
}

// dial logs in with cfg and reports the cache's trouble (one warning line
// on stderr without -v) and, on failure, what to try.
func (p *probeFlags) dial(ctx context.Context, cfg client.Config, stderr io.Writer) (*client.Client, error) {
	var mu sync.Mutex
	var fault error
	first := true
	prev := cfg.Trace
	t := &client.Trace{}
	if prev != nil {
		*t = *prev
	}
	t.LoginDone = func(info client.Info, err error) {
		mu.Lock()
		if first {
			fault, first = info.CacheFault, false // Dial's login, also when it fails
		}
		mu.Unlock()
		if prev != nil && prev.LoginDone != nil {
			prev.LoginDone(info, err)
		}
	}
	cfg.Trace = t
	c, err := client.Dial(ctx, cfg)
	if p.warn != nil && p.warn.immediate == nil { // else each was printed as it came
		mu.Lock()
		p.warn.summary(fault, stderr)
		mu.Unlock()
	}
	if err != nil {
		return nil, withHint(err, p)
	}
	return c, nil
}

var probeCommand = command{name: "probe", args: []string{"ACCOUNT"},
	about: "Logs in once and reports the path, the mechanism and what stood in for the password,\n" +
		"the round trips and the timings. The password comes from $" + envPassword + " or a terminal\n" +
		"prompt, and is only asked for when a login needs it."}

func probe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	var pf probeFlags
	pf.register(fs)
	resume := fs.Bool("resume", false, "after the login, cut the TCP connection and report the reconnection (stream management resume)")
	j, _, err := probeCommand.parseAccount(fs, args, stdout)
	if err != nil {
		return err
	}
	cfg, err := pf.config(j, stderr)
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
	c, err := pf.dial(ctx, cfg, stderr)
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
	var given bool
	if _, ok := os.LookupEnv(envPassword); ok {
		given = true
	}
	if pf.mechs != "" && infos[0].FAST {
		fmt.Fprintf(stderr, "pipebind probe: note: -mech chooses among password mechanisms; the cached FAST token (%s) logged in instead (-no-fast to use -mech)\n", infos[0].Mechanism)
	}
	if pf.jsonOut {
		enc := json.NewEncoder(stdout)
		if len(infos) == 1 {
			return enc.Encode(newReport(infos[0], pf.warn))
		}
		return enc.Encode(map[string]report{"login": newReport(infos[0], pf.warn), "after_drop": newReport(infos[1], pf.warn)})
	}
	w := bufio.NewWriter(stdout)
	fmt.Fprintf(w, "pipebind probe %s\n", j.Bare())
	printReport(w, infos[0], given)
	if len(infos) > 1 {
		fmt.Fprintln(w, "after cutting the connection")
		printReport(w, infos[1], given)
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

// configWithCache is config for a command that needs the message cache
// (sync, listen, mark-read): it opens -cache itself, so that a file it
// cannot use is the command's error rather than a warning.
func (p *probeFlags) configWithCache(ctx context.Context, j jid.JID, stderr io.Writer) (client.Config, *cache.DB, error) {
	if p.cache == "" {
		return client.Config{}, nil, usagef("-cache: this command needs a cache file (-cache or %s)", envCache)
	}
	cfg, err := p.config(j, stderr)
	if err != nil {
		return cfg, nil, err
	}
	db, err := cache.Open(ctx, p.cache)
	if err != nil {
		return cfg, nil, fmt.Errorf("cache %s: %w", p.cache, err)
	}
	cfg.Cache, cfg.CachePath = db, ""
	return cfg, db, nil
}
