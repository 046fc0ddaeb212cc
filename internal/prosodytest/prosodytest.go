// Package prosodytest starts and stops a real Prosody XMPP server for
// integration tests and benchmarks.
//
// Each [Server] runs in its own temporary directory with its own generated
// CA and server certificate, its own data directory and free loopback ports,
// so servers never touch /etc/prosody or /var/lib/prosody and several can
// run side by side. The server offers plain c2s with mandatory STARTTLS
// ([Server.C2SAddr]) and Direct TLS ([Server.DirectTLSAddr]), SASL2, Bind 2,
// FAST, stream management, carbons, CSI and MAM (from prosody-modules).
//
// The core of the package does not import testing; [StartT] wraps [Start]
// for tests. Prosody and prosody-modules must be installed (scripts/test
// installs them from Debian bookworm-backports); when they are not, Start
// returns an error matching [ErrNotInstalled].
//
// A Server is safe for concurrent use. Passwords are never logged and never
// appear in error strings.
package prosodytest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotInstalled is returned (wrapped) by Start when the prosody binaries or
// the prosody-modules it needs are missing.
var ErrNotInstalled = errors.New("prosodytest: prosody or prosody-modules not installed")

// PluginDir is where Debian installs Prosody's modules, including those of
// the prosody-modules package.
const PluginDir = "/usr/lib/prosody/modules"

const (
	readyTimeout = 10 * time.Second       // from process start to open ports
	readyTick    = 20 * time.Millisecond  // readiness poll interval
	probeTimeout = 500 * time.Millisecond // one readiness probe
	termTimeout  = 5 * time.Second        // SIGTERM grace before SIGKILL
	killTimeout  = 5 * time.Second        // wait after SIGKILL
	startTries   = 3                      // attempts when a port was taken
	logTail      = 4096                   // bytes of log quoted in errors
)

// communityModules are the modules from prosody-modules that Start needs.
var communityModules = []string{"sasl2", "sasl2_bind2", "sasl2_sm", "sasl2_fast"}

var defaultModules = []string{
	"roster", "saslauth", "tls", "disco", "ping", "carbons", "mam", "smacks",
	"csi_simple", "sasl2", "sasl2_bind2", "sasl2_sm", "sasl2_fast", "pep",
}

// Options configures Start. The zero value is a usable configuration.
type Options struct {
	// Domain is the VirtualHost. Empty means "localhost".
	Domain string
	// Users maps localparts (lower case) to passwords; they are registered
	// before Start returns (their account files are written directly, so a
	// thousand take a few milliseconds). Nil means {"alice": "alice-pw-1",
	// "bob": "bob-pw-2"}; use an empty non-nil map for no users.
	Users map[string]string
	// ExtraModules are appended to modules_enabled.
	ExtraModules []string
	// ExtraConfig is Lua appended to the global section of the config.
	ExtraConfig string

	// Host is the address Prosody listens on; empty means 127.0.0.1. With
	// a network namespace (internal/pathemu), the server side's address.
	Host string
	// Launch starts the prosody process; nil means cmd.Start. A path
	// emulator starts it in its server namespace (pathemu's Namespace.Start).
	Launch func(cmd *exec.Cmd) error
	// Dial opens the readiness probe's connections; nil means a
	// net.Dialer. With a network namespace, one that dials from it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TCPFastOpen lets Prosody accept data in the SYN (network_settings
	// tcp_fastopen; the kernel's net.ipv4.tcp_fastopen must allow it).
	TCPFastOpen bool
}

// Server is a running Prosody. Create it with Start or StartT and stop it
// with Close.
type Server struct {
	// Domain is the served VirtualHost.
	Domain string
	// C2SAddr is 127.0.0.1:port of plain c2s (STARTTLS required).
	C2SAddr string
	// DirectTLSAddr is 127.0.0.1:port of c2s Direct TLS.
	DirectTLSAddr string
	// CAPEM is the PEM of the CA that signed the server certificate.
	CAPEM []byte
	// Users holds the registered users (localpart -> password), including
	// those added by Register; do not read it while a Register runs.
	Users map[string]string
	// Dir is the server's temporary directory (config, certs, data, logs).
	// It is removed by Close.
	Dir string
	// ConfigFile is the path of the generated prosody.cfg.lua.
	ConfigFile string

	prosody    string
	prosodyctl string
	opt        Options
	pool       *x509.CertPool

	procMu  sync.Mutex // guards the process (cmd, exited, waitErr) in Restart and Close
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has been reaped
	waitErr error         // valid after exited is closed

	mu       sync.Mutex // guards Users, finalLog
	finalLog string     // log captured by Close before Dir is removed

	closeOnce sync.Once
	closeErr  error
}

// Start creates a temporary directory, generates certificates and a config,
// starts `prosody --config FILE -F` in its own process group and waits (at
// most 10 s) until both ports accept connections and Direct TLS completes a
// handshake. It registers opt.Users meanwhile. ctx bounds all of this; once
// Start has returned, the server runs until Close.
func Start(ctx context.Context, opt Options) (*Server, error) {
	prosody, err := exec.LookPath("prosody")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotInstalled, err)
	}
	prosodyctl, err := exec.LookPath("prosodyctl")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotInstalled, err)
	}
	for _, m := range communityModules {
		if !moduleInstalled(m) {
			return nil, fmt.Errorf("%w: mod_%s not found in %s (install prosody-modules)", ErrNotInstalled, m, PluginDir)
		}
	}
	if opt.Domain == "" {
		opt.Domain = "localhost"
	}
	users := opt.Users
	if users == nil {
		users = map[string]string{"alice": "alice-pw-1", "bob": "bob-pw-2"}
	}

	dir, err := os.MkdirTemp("", "prosodytest-")
	if err != nil {
		return nil, fmt.Errorf("prosodytest: %w", err)
	}
	s := &Server{
		Domain:     opt.Domain,
		Users:      make(map[string]string, len(users)),
		Dir:        dir,
		ConfigFile: filepath.Join(dir, "prosody.cfg.lua"),
		prosody:    prosody,
		prosodyctl: prosodyctl,
		opt:        opt,
	}
	if err := s.prepare(opt); err != nil {
		s.Close()
		return nil, err
	}
	// Accounts are files under data_path, which Prosody reads on each
	// access.
	if err := s.writeAccounts(users); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.start(ctx, opt); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func moduleInstalled(name string) bool {
	for _, p := range []string{
		filepath.Join(PluginDir, "mod_"+name, "mod_"+name+".lua"),
		filepath.Join(PluginDir, "mod_"+name+".lua"),
	} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// prepare writes the certificates, the data directory and a first config.
func (s *Server) prepare(opt Options) error {
	ca, err := writeCerts(s.Dir, opt.Domain)
	if err != nil {
		return fmt.Errorf("prosodytest: certificates: %w", err)
	}
	s.CAPEM = ca
	s.pool = x509.NewCertPool()
	s.pool.AppendCertsFromPEM(ca)
	if err := os.Mkdir(filepath.Join(s.Dir, "data"), 0o700); err != nil {
		return fmt.Errorf("prosodytest: %w", err)
	}
	return s.writeConfig(opt)
}

// writeConfig picks free ports and (atomically, as prosodyctl may be
// reading it) writes the config file.
func (s *Server) writeConfig(opt Options) error {
	ports, err := pickPorts(2)
	if err != nil {
		return fmt.Errorf("prosodytest: free ports: %w", err)
	}
	s.C2SAddr = net.JoinHostPort(opt.host(), strconv.Itoa(ports[0]))
	s.DirectTLSAddr = net.JoinHostPort(opt.host(), strconv.Itoa(ports[1]))
	cfg := config(s.Dir, opt, ports[0], ports[1], os.Getenv("PIPEBIND_PROSODY_DEBUG") == "1")
	tmp := s.ConfigFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("prosodytest: %w", err)
	}
	if err := os.Rename(tmp, s.ConfigFile); err != nil {
		return fmt.Errorf("prosodytest: %w", err)
	}
	return nil
}

// start launches prosody, retrying on new ports when one was taken between
// freePorts and prosody's bind.
func (s *Server) start(ctx context.Context, opt Options) error {
	for try := 1; ; try++ {
		err := s.launch(ctx, true)
		if err == nil || !errors.Is(err, errPortInUse) || try == startTries {
			return err
		}
		s.stop()
		os.Remove(s.logPath())
		os.Remove(s.outPath())
		if err := s.writeConfig(opt); err != nil {
			return err
		}
	}
}

var errPortInUse = errors.New("port in use")

// launch starts the process and waits until it is ready (see waitReady).
func (s *Server) launch(ctx context.Context, handshake bool) error {
	out, err := os.OpenFile(s.outPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("prosodytest: %w", err)
	}
	defer out.Close() // the child holds its own descriptor
	cmd := exec.Command(s.prosody, "--config", s.ConfigFile, "-F")
	cmd.Dir = s.Dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	launch := cmd.Start
	if s.opt.Launch != nil {
		launch = func() error { return s.opt.Launch(cmd) }
	}
	if err := launch(); err != nil {
		return fmt.Errorf("prosodytest: start prosody: %w", err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func(exited chan struct{}) {
		s.waitErr = cmd.Wait()
		close(exited)
	}(s.exited)
	return s.waitReady(ctx, handshake)
}

// waitReady polls until both ports accept a TCP connection and, with
// handshake, a Direct TLS handshake completes; or the process exits, a port
// turns out taken, ctx ends or readyTimeout passes.
func (s *Server) waitReady(ctx context.Context, handshake bool) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(readyTick)
	defer tick.Stop()
	var probeErr error
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("prosodytest: prosody exited during start (%v); log tail:\n%s", s.waitErr, s.tail())
		default:
		}
		probeErr = s.probe(ctx, handshake)
		// Checked after the probe: a taken port may belong to a listener
		// that accepts, but prosody has logged the failure by the time
		// both its ports are open.
		if strings.Contains(s.readLog(), "Failed to open server port") {
			return fmt.Errorf("prosodytest: %w; log tail:\n%s", errPortInUse, s.tail())
		}
		if probeErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("prosodytest: prosody not ready (%w; last probe: %v); log tail:\n%s",
				context.Cause(ctx), probeErr, s.tail())
		case <-s.exited:
		case <-tick.C:
		}
	}
}

func (s *Server) probe(ctx context.Context, handshake bool) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	dial := s.opt.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	for _, addr := range []string{s.C2SAddr, s.DirectTLSAddr} {
		c, err := dial(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		c.Close()
	}
	if !handshake {
		return nil
	}
	raw, err := dial(ctx, "tcp", s.DirectTLSAddr)
	if err != nil {
		return err
	}
	tc := tls.Client(raw, s.TLSConfig())
	defer tc.Close()
	return tc.HandshakeContext(ctx)
}

// pickPorts is freePorts; tests replace it to provoke a taken port.
var pickPorts = freePorts

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // keep all open until all are chosen, so they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (o Options) host() string {
	if o.Host == "" {
		return "127.0.0.1"
	}
	return o.Host
}

// config renders prosody.cfg.lua.
func config(dir string, opt Options, c2sPort, tlsPort int, debug bool) string {
	level := "info"
	if debug {
		level = "debug"
	}
	mods := append(append([]string(nil), defaultModules...), opt.ExtraModules...)
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("-- generated by pipebind internal/prosodytest")
	w("run_as_root = true")
	w("daemonize = false")
	w("pidfile = %s", lua(filepath.Join(dir, "prosody.pid")))
	w("data_path = %s", lua(filepath.Join(dir, "data")))
	w("plugin_paths = { %s }", lua(PluginDir))
	w("certificates = %s", lua(filepath.Join(dir, "certs")))
	w("log = { %s = %s }", level, lua(filepath.Join(dir, "prosody.log")))
	w("interfaces = { %s }", lua(opt.host()))
	w("local_interfaces = { %s }", lua(opt.host()))
	// A backlog for a fleet of clients connecting at once (Prosody's
	// default, 128, drops the SYNs past it: a second's wait each).
	if opt.TCPFastOpen {
		w("network_settings = { nagle = false; tcp_backlog = 1024; tcp_fastopen = 256 }")
	} else {
		w("network_settings = { nagle = false; tcp_backlog = 1024 }")
	}
	w("c2s_ports = { %d }", c2sPort)
	w("c2s_direct_tls_ports = { %d }", tlsPort)
	w("c2s_require_encryption = true")
	w("c2s_close_timeout = 1") // bounds graceful shutdown with open sessions
	w("ssl = { certificate = %s; key = %s }",
		lua(filepath.Join(dir, "certs", "server.crt")), lua(filepath.Join(dir, "certs", "server.key")))
	w("authentication = \"internal_hashed\"")
	w("storage = \"internal\"")
	w("archive_expires_after = \"never\"")
	w("default_archive_policy = true")
	b.WriteString("modules_enabled = {")
	for _, m := range mods {
		fmt.Fprintf(&b, " %s;", lua(m))
	}
	b.WriteString(" }\n")
	w("modules_disabled = { \"s2s\" }")
	if opt.ExtraConfig != "" {
		w("%s", opt.ExtraConfig)
	}
	w("")
	w("VirtualHost %s", lua(opt.Domain))
	return b.String()
}

// lua quotes s as a Lua string literal.
func lua(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\x00", `\0`)
	return `"` + r.Replace(s) + `"`
}

// TLSConfig returns a new tls.Config that trusts only the server's CA and
// verifies Domain, with TLS 1.2 as the minimum.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		RootCAs:    s.pool,
		ServerName: s.Domain,
		MinVersion: tls.VersionTLS12,
	}
}

// Register creates (or updates) an account with prosodyctl and records it
// in Users. It is safe to call concurrently.
func (s *Server) Register(ctx context.Context, user, password string) error {
	cmd := exec.CommandContext(ctx, s.prosodyctl, "--config", s.ConfigFile, "register", user, s.Domain, password)
	cmd.Dir = s.Dir
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if password != "" {
			msg = strings.ReplaceAll(msg, password, "<redacted>")
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		return fmt.Errorf("prosodytest: register %s@%s: %w: %s", user, s.Domain, err, msg)
	}
	s.mu.Lock()
	s.Users[user] = password
	s.mu.Unlock()
	return nil
}

// Restart stops Prosody as Close does (SIGTERM: it ends every client's
// stream and closes its connection) and starts it again with the same
// config, ports and data directory (accounts, FAST tokens, archives), as an
// administrator's restart would; it waits until both ports accept TCP
// connections again (no TLS probe: clients coming back may keep Prosody
// busy for a while). Sessions do not survive it: a client's stream
// management session cannot be resumed afterwards. ctx bounds the start.
func (s *Server) Restart(ctx context.Context) error {
	s.procMu.Lock()
	defer s.procMu.Unlock()
	if s.cmd == nil {
		return errors.New("prosodytest: Restart: the server is not running")
	}
	s.stop()
	if err := s.launch(ctx, false); err != nil {
		s.stop()
		return err
	}
	return nil
}

// Close stops the process group (SIGTERM, then SIGKILL after 5 s), waits
// for the process, keeps its log for Log and removes Dir. It is idempotent
// and returns the same result every time.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.procMu.Lock()
		s.stop()
		s.procMu.Unlock()
		log := s.readLog()
		s.mu.Lock()
		s.finalLog = log
		s.mu.Unlock()
		s.closeErr = os.RemoveAll(s.Dir)
	})
	return s.closeErr
}

// stop terminates the current process group, if any, and reaps it.
func (s *Server) stop() {
	if s.cmd == nil {
		return
	}
	pgid := -s.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	t := time.NewTimer(termTimeout)
	defer t.Stop()
	select {
	case <-s.exited:
	case <-t.C:
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		t.Reset(killTimeout)
		select {
		case <-s.exited:
		case <-t.C: // unkillable; give up rather than hang the caller
		}
	}
	s.cmd = nil
}

// Log returns Prosody's log and console output, for failure diagnostics.
// After Close it returns what was logged up to the shutdown.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finalLog != "" {
		return s.finalLog
	}
	return s.readLog()
}

func (s *Server) logPath() string { return filepath.Join(s.Dir, "prosody.log") }
func (s *Server) outPath() string { return filepath.Join(s.Dir, "prosody.out") }

// readLog returns the log file followed by stdout/stderr, if not empty.
func (s *Server) readLog() string {
	log, _ := os.ReadFile(s.logPath())
	out, _ := os.ReadFile(s.outPath())
	if len(bytes.TrimSpace(out)) > 0 {
		log = append(log, "\n--- prosody stdout/stderr ---\n"...)
		log = append(log, out...)
	}
	return string(log)
}

func (s *Server) tail() string {
	l := s.readLog()
	if len(l) > logTail {
		l = "…" + l[len(l)-logTail:]
	}
	return l
}
