// Package ejabberdtest starts and stops a real ejabberd XMPP server for
// integration tests, the second real peer next to internal/prosodytest.
//
// Each [Server] runs in its own temporary directory with its own generated
// CA and server certificate, its own Mnesia spool, its own Erlang node name,
// cookie and distribution port (no epmd), and free loopback ports, so
// servers never touch /etc/ejabberd or /var/lib/ejabberd and several can run
// side by side, also from parallel test binaries. The server offers plain
// c2s with mandatory STARTTLS ([Server.C2SAddr]) and Direct TLS
// ([Server.DirectTLSAddr]), SASL2 and Bind 2 (built into ejabberd's c2s),
// FAST (mod_auth_fast), stream management, carbons, CSI and MAM (Mnesia,
// default: always; pages default to 50, capped at 250). ejabberd offers
// SASL2 only when the stream header carries from='user@domain'.
//
// Passwords are stored in plain form, so PLAIN and every SCRAM variant
// (SHA-1, SHA-256, SHA-512, each also -PLUS) work for every user.
//
// ejabberdctl always runs ejabberd as the ejabberd system user (it switches
// with su when started as root), so the temporary directory is handed to
// that user; Start must run as root or as that user.
//
// The core of the package does not import testing; [StartT] wraps [Start]
// for tests. ejabberd must be installed (scripts/test installs it from
// Debian bookworm-backports); when it is not, Start returns an error
// matching [ErrNotInstalled].
//
// PIPEBIND_EJABBERD_DEBUG=1 in the environment sets ejabberd's loglevel to
// debug: every stanza and SASL payload (so PLAIN passwords) in [Server.Log].
//
// A Server is safe for concurrent use. Passwords never appear in error
// strings, nor in the log at the default level.
package ejabberdtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotInstalled is returned (wrapped) by Start when ejabberdctl or the
// ejabberd system user is missing.
var ErrNotInstalled = errors.New("ejabberdtest: ejabberd not installed")

// InstallUser is the system user ejabberdctl runs ejabberd as.
const InstallUser = "ejabberd"

const (
	readyTimeout = 45 * time.Second       // from process start to open ports (a cold first start is slow)
	readyTick    = 20 * time.Millisecond  // readiness poll interval
	probeTimeout = 500 * time.Millisecond // one readiness probe
	killTimeout  = 5 * time.Second        // wait for the killed processes
	ctlWaitDelay = time.Second            // after a cancelled ejabberdctl call
	startTries   = 3                      // attempts when a port was taken
	logTail      = 4096                   // bytes of log quoted in errors
)

// defaultModules maps the modules Start enables to their options (YAML
// flow style). SASL2 and Bind 2 need no module in ejabberd 24.12.
var defaultModules = map[string]string{
	"mod_admin_extra":  "{}", // change_password, for Register
	"mod_auth_fast":    "{}",
	"mod_carboncopy":   "{}",
	"mod_client_state": "{}",
	"mod_disco":        "{}",
	"mod_mam":          "{db_type: mnesia, default: always}",
	"mod_offline":      "{}",
	"mod_ping":         "{}",
	"mod_roster":       "{}",
	"mod_stream_mgmt":  "{}",
}

// Options configures Start. The zero value is a usable configuration.
type Options struct {
	// Domain is the served host. Empty means "localhost".
	Domain string
	// Users maps localparts to passwords; they are registered before Start
	// returns. Nil means {"alice": "alice-pw-1", "bob": "bob-pw-2"}; use an
	// empty non-nil map for no users.
	Users map[string]string
	// ExtraModules adds modules (name -> options as a YAML flow mapping,
	// empty meaning "{}"); a name Start enables anyway replaces its options.
	ExtraModules map[string]string
	// ExtraConfig is YAML appended to the top level of ejabberd.yml. It
	// must not repeat a key Start writes (hosts, loglevel, certfiles,
	// listen, modules, auth_*, ...).
	ExtraConfig string
}

// Server is a running ejabberd. Create it with Start or StartT and stop it
// with Close.
type Server struct {
	// Domain is the served host.
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
	// Dir is the server's temporary directory (configs, certs, spool,
	// logs), owned by InstallUser. It is removed by Close.
	Dir string
	// ConfigFile is the path of the generated ejabberd.yml.
	ConfigFile string
	// Node is the Erlang node name of the server.
	Node string

	ctl      string // ejabberdctl
	uid, gid int    // owner of Dir
	cookie   string
	distPort int
	pool     *x509.CertPool
	cmd      *exec.Cmd
	exited   chan struct{} // closed when ejabberdctl has been reaped
	waitErr  error         // valid after exited is closed

	mu       sync.Mutex // guards Users, finalLog
	finalLog string     // log captured by Close before Dir is removed

	closeOnce sync.Once
	closeErr  error
}

// Start creates a temporary directory, generates certificates and configs,
// starts `ejabberdctl foreground-quiet` with them and waits (at most 45 s)
// until both ports accept connections and Direct TLS completes a
// handshake; then it registers opt.Users, in parallel. ctx bounds all of
// this; once Start has returned, the server runs until Close.
func Start(ctx context.Context, opt Options) (*Server, error) {
	ctl, err := lookCtl()
	if err != nil {
		return nil, err
	}
	uid, gid, err := owner()
	if err != nil {
		return nil, err
	}
	if opt.Domain == "" {
		opt.Domain = "localhost"
	}
	users := opt.Users
	if users == nil {
		users = map[string]string{"alice": "alice-pw-1", "bob": "bob-pw-2"}
	}
	dir, err := os.MkdirTemp("", "ejabberdtest-")
	if err != nil {
		return nil, fmt.Errorf("ejabberdtest: %w", err)
	}
	s := &Server{
		Domain:     opt.Domain,
		Users:      make(map[string]string, len(users)),
		Dir:        dir,
		ConfigFile: filepath.Join(dir, "ejabberd.yml"),
		Node:       "ejabberdtest-" + randHex(6) + "@localhost",
		ctl:        ctl,
		uid:        uid,
		gid:        gid,
		cookie:     randHex(16),
	}
	if err := s.prepare(opt); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.start(ctx, opt); err != nil {
		s.Close()
		return nil, err
	}
	// Registration goes through the running node (Mnesia), so it can only
	// start now; each call is a new Erlang VM (~0.8 s), hence in parallel.
	if err := s.registerAll(ctx, users); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func lookCtl() (string, error) {
	p, err := exec.LookPath("ejabberdctl")
	if err == nil {
		return p, nil
	}
	// /usr/sbin is often missing from a non-root PATH.
	if st, serr := os.Stat("/usr/sbin/ejabberdctl"); serr == nil && st.Mode()&0o111 != 0 {
		return "/usr/sbin/ejabberdctl", nil
	}
	return "", fmt.Errorf("%w: %v", ErrNotInstalled, err)
}

// owner returns the ids of InstallUser, checking that ejabberdctl can run
// here at all (as root or as that user).
func owner() (uid, gid int, err error) {
	u, err := user.Lookup(InstallUser)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %v", ErrNotInstalled, err)
	}
	if uid, err = strconv.Atoi(u.Uid); err == nil {
		gid, err = strconv.Atoi(u.Gid)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("ejabberdtest: user %s: %w", InstallUser, err)
	}
	if e := os.Geteuid(); e != 0 && e != uid {
		return 0, 0, fmt.Errorf("ejabberdtest: ejabberdctl runs only as root or as %s, not as uid %d", InstallUser, e)
	}
	return uid, gid, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand does not fail on Linux
	return hex.EncodeToString(b)
}

func (s *Server) path(name ...string) string {
	return filepath.Join(append([]string{s.Dir}, name...)...)
}

// prepare writes the certificates and the configs and hands Dir to
// InstallUser.
func (s *Server) prepare(opt Options) error {
	ca, err := writeCerts(s.Dir, opt.Domain)
	if err != nil {
		return fmt.Errorf("ejabberdtest: certificates: %w", err)
	}
	s.CAPEM = ca
	s.pool = x509.NewCertPool()
	s.pool.AppendCertsFromPEM(ca)
	// Listed in certfiles, so ejabberd finds the chain and sends it.
	if err := os.WriteFile(s.path("certs", "ca.crt"), ca, 0o600); err != nil {
		return fmt.Errorf("ejabberdtest: %w", err)
	}
	return s.writeConfig(opt)
}

// writeConfig picks free ports, (re)creates the spool and log directories,
// writes ejabberd.yml and ejabberdctl.cfg and chowns Dir.
func (s *Server) writeConfig(opt Options) error {
	ports, err := pickPorts(3)
	if err != nil {
		return fmt.Errorf("ejabberdtest: free ports: %w", err)
	}
	s.C2SAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	s.DirectTLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	s.distPort = ports[2]
	for _, d := range []string{"spool", "logs"} {
		if err := os.RemoveAll(s.path(d)); err != nil {
			return fmt.Errorf("ejabberdtest: %w", err)
		}
		if err := os.Mkdir(s.path(d), 0o700); err != nil {
			return fmt.Errorf("ejabberdtest: %w", err)
		}
	}
	debug := os.Getenv("PIPEBIND_EJABBERD_DEBUG") == "1"
	files := map[string]string{
		s.ConfigFile:              config(s.Dir, opt, ports[0], ports[1], debug),
		s.path("ejabberdctl.cfg"): ctlConfig(s.Node, s.cookie, s.distPort),
	}
	for name, text := range files {
		if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
			return fmt.Errorf("ejabberdtest: %w", err)
		}
	}
	err = filepath.WalkDir(s.Dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, s.uid, s.gid)
	})
	if err != nil {
		return fmt.Errorf("ejabberdtest: hand %s to %s: %w", s.Dir, InstallUser, err)
	}
	return nil
}

// config renders ejabberd.yml.
func config(dir string, opt Options, c2sPort, tlsPort int, debug bool) string {
	level := "info"
	if debug {
		level = "debug"
	}
	mods := maps.Clone(defaultModules)
	for m, o := range opt.ExtraModules {
		if strings.TrimSpace(o) == "" {
			o = "{}"
		}
		mods[m] = o
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# generated by pipebind internal/ejabberdtest")
	w("hosts: [%s]", yq(opt.Domain))
	w("loglevel: %s", level)
	w("log_rotate_count: 0")
	w("certfiles:")
	for _, f := range []string{"server.crt", "server.key", "ca.crt"} {
		w("  - %s", yq(filepath.Join(dir, "certs", f)))
	}
	w("c2s_protocol_options: [no_sslv3, no_tlsv1, no_tlsv1_1, no_compression]")
	// As in Debian's default config.
	w("disable_sasl_mechanisms: [digest-md5, x-oauth2]")
	w("auth_method: [internal]")
	// Plain storage lets every SCRAM hash work, not only the stored one.
	w("auth_password_format: plain")
	w("listen:")
	w("  - port: %d", c2sPort)
	w("    ip: \"127.0.0.1\"")
	w("    module: ejabberd_c2s")
	w("    starttls_required: true")
	w("  - port: %d", tlsPort)
	w("    ip: \"127.0.0.1\"")
	w("    module: ejabberd_c2s")
	w("    tls: true")
	w("modules:")
	for _, m := range slices.Sorted(maps.Keys(mods)) {
		w("  %s: %s", m, mods[m])
	}
	if opt.ExtraConfig != "" {
		w("%s", opt.ExtraConfig)
	}
	return b.String()
}

// yq quotes s as a YAML double-quoted scalar: Go's escapes (\\, \", \n,
// \xNN, \uNNNN, ...) are all valid there.
func yq(s string) string { return strconv.Quote(s) }

// ctlConfig renders the ejabberdctl.cfg that ejabberdctl sources (bash) for
// the server and for every command: the node name, a fixed distribution
// port instead of epmd (ERL_DIST_PORT: epmd is neither started nor asked),
// a cookie and a loopback-only distribution listener.
func ctlConfig(node, cookie string, distPort int) string {
	return fmt.Sprintf(`# generated by pipebind internal/ejabberdtest
ERLANG_NODE=%s
ERL_DIST_PORT=%d
ERL_OPTIONS="-setcookie %s -kernel inet_dist_use_interface {127,0,0,1} -env ERL_CRASH_DUMP_BYTES 0"
EJABBERD_BYPASS_WARNINGS=true
`, node, distPort, cookie)
}

// ctlCmd returns an ejabberdctl command using this server's files.
func (s *Server) ctlCmd(ctx context.Context, args ...string) *exec.Cmd {
	args = append([]string{
		"--ctl-config", s.path("ejabberdctl.cfg"),
		"--config", s.ConfigFile,
		"--logs", s.path("logs"),
		"--spool", s.path("spool"),
	}, args...)
	cmd := exec.CommandContext(ctx, s.ctl, args...)
	cmd.Dir = s.Dir
	cmd.Env = ctlEnv()
	return cmd
}

// ctlEnv is the environment without the variables ejabberdctl or erl would
// take from it instead of from the flags and ejabberdctl.cfg.
func ctlEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "ERL"), strings.HasPrefix(k, "EJABBERD"),
			strings.HasPrefix(k, "CONTRIB_MODULES"),
			k == "CONFIG_DIR", k == "LOGS_DIR", k == "SPOOL_DIR", k == "VMARGS",
			k == "MNESIA_OPTIONS", k == "INET_DIST_INTERFACE", k == "FIREWALL_WINDOW":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// start launches ejabberd, retrying on new ports when one was taken between
// freePorts and ejabberd's bind.
func (s *Server) start(ctx context.Context, opt Options) error {
	for try := 1; ; try++ {
		err := s.launch(ctx)
		if err == nil || !errors.Is(err, errPortInUse) || try == startTries {
			return err
		}
		s.stop()
		os.Remove(s.outPath())
		if err := s.writeConfig(opt); err != nil {
			return err
		}
	}
}

var errPortInUse = errors.New("port in use")

// launch starts the process and waits until it is ready.
func (s *Server) launch(ctx context.Context) error {
	out, err := os.OpenFile(s.outPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("ejabberdtest: %w", err)
	}
	defer out.Close() // the child holds its own descriptor
	// Not CommandContext: the server outlives ctx. foreground-quiet logs
	// only critical messages to the console; the rest goes to logs/.
	cmd := s.ctlCmd(context.Background(), "foreground-quiet")
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("ejabberdtest: start ejabberd: %w", err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func(exited chan struct{}) {
		s.waitErr = cmd.Wait()
		close(exited)
	}(s.exited)
	return s.waitReady(ctx)
}

// waitReady polls until plain c2s accepts a TCP connection and Direct TLS
// completes a handshake, the process exits, ctx ends or readyTimeout
// passes.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(readyTick)
	defer tick.Stop()
	for {
		select {
		case <-s.exited:
			if s.portTaken() {
				return fmt.Errorf("ejabberdtest: %w; log tail:\n%s", errPortInUse, s.tail())
			}
			return fmt.Errorf("ejabberdtest: ejabberd exited during start (%v); log tail:\n%s", s.waitErr, s.tail())
		default:
		}
		probeErr := s.probe(ctx)
		if probeErr == nil {
			// A taken port may belong to a listener that accepts, but then
			// ejabberd fails to start and logs why.
			if s.portTaken() {
				return fmt.Errorf("ejabberdtest: %w; log tail:\n%s", errPortInUse, s.tail())
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ejabberdtest: ejabberd not ready (%w; last probe: %v); log tail:\n%s",
				context.Cause(ctx), probeErr, s.tail())
		case <-s.exited:
		case <-tick.C:
		}
	}
}

// portTaken reports whether ejabberd (a listener) or erl (the distribution
// port) could not bind.
func (s *Server) portTaken() bool {
	return strings.Contains(s.readLog(), "eaddrinuse")
}

func (s *Server) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.C2SAddr)
	if err != nil {
		return err
	}
	c.Close()
	td := tls.Dialer{Config: s.TLSConfig()}
	c, err = td.DialContext(ctx, "tcp", s.DirectTLSAddr)
	if err != nil {
		return err
	}
	return c.Close()
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

// TLSConfig returns a new tls.Config that trusts only the server's CA and
// verifies Domain, with TLS 1.2 as the minimum.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		RootCAs:    s.pool,
		ServerName: s.Domain,
		MinVersion: tls.VersionTLS12,
	}
}

// Register creates (or, if it exists, sets the password of) an account with
// ejabberdctl and records it in Users. It takes about a second (a new
// Erlang VM) and is safe to call concurrently.
func (s *Server) Register(ctx context.Context, user, password string) error {
	out, err := s.ctlRun(ctx, "register", user, s.Domain, password)
	if err != nil && strings.Contains(out, "already registered") {
		out, err = s.ctlRun(ctx, "change_password", user, s.Domain, password)
	}
	if err != nil {
		msg := strings.TrimSpace(out)
		if password != "" {
			msg = strings.ReplaceAll(msg, password, "<redacted>")
		}
		if len(msg) > logTail {
			msg = msg[:logTail] + "…"
		}
		return fmt.Errorf("ejabberdtest: register %s@%s: %w: %s", user, s.Domain, err, msg)
	}
	s.mu.Lock()
	s.Users[user] = password
	s.mu.Unlock()
	return nil
}

// ctlRun runs one ejabberdctl command against the server and returns its
// output. Cancelling ctx kills the command's whole process tree (ejabberdctl
// runs erl under su, in another session).
func (s *Server) ctlRun(ctx context.Context, args ...string) (string, error) {
	cmd := s.ctlCmd(ctx, args...)
	cmd.Cancel = func() error {
		killTree(cmd.Process)
		return nil
	}
	cmd.WaitDelay = ctlWaitDelay
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
	}
	return string(out), err
}

func (s *Server) registerAll(ctx context.Context, users map[string]string) error {
	errs := make(chan error, len(users))
	for u, pw := range users {
		go func() { errs <- s.Register(ctx, u, pw) }()
	}
	var all []error
	for range users {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// Close kills ejabberd's whole process tree (SIGKILL: ejabberd's graceful
// stop takes seconds and the data is thrown away anyway), waits until the
// processes are gone, keeps the log for Log and removes Dir. It is
// idempotent and returns the same result every time.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		log := s.readLog()
		s.mu.Lock()
		s.finalLog = log
		s.mu.Unlock()
		s.closeErr = os.RemoveAll(s.Dir)
	})
	return s.closeErr
}

// stop kills the current process tree, if any, and waits for it.
func (s *Server) stop() {
	if s.cmd == nil {
		return
	}
	pids := killTree(s.cmd.Process)
	deadline := time.Now().Add(killTimeout)
	t := time.NewTimer(killTimeout)
	defer t.Stop()
	select {
	case <-s.exited:
	case <-t.C: // unkillable; give up rather than hang the caller
	}
	// The others are not our children (su and erl_child_setup start new
	// sessions): wait until they are gone or zombies, whose sockets are
	// closed, so that the ports are free when Close returns.
	for _, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	s.cmd = nil
}

// killTree kills root and all its descendants and returns their pids.
// ejabberdctl runs su, which runs erl (beam) in a new session, which runs
// port programs in new sessions: a process group would miss them.
//
// root is stopped first through its handle (a pidfd), which fails if it
// has exited: then its pid may already be reused and nothing is killed. A
// stopped root cannot exit and be reaped, so its pid stays valid while the
// tree is collected. The descendants are stopped too, so that none forks
// unseen, and then all are killed.
func killTree(root *os.Process) []int {
	if root.Signal(syscall.SIGSTOP) != nil {
		return nil
	}
	pids := tree(root.Pid)
	for _, p := range pids[1:] {
		_ = syscall.Kill(p, syscall.SIGSTOP)
	}
	pids = tree(root.Pid) // a fork that was in flight
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	return pids
}

// tree returns root and its descendants, from /proc.
func tree(root int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procStat(pid); ok {
			children[ppid] = append(children[ppid], pid)
		}
	}
	pids := []int{root}
	for i := 0; i < len(pids); i++ {
		pids = append(pids, children[pids[i]]...)
	}
	return pids
}

// procStat returns the state and parent of pid from /proc/PID/stat.
func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// "pid (comm) state ppid ...", where comm may contain anything.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0][0], ppid, err == nil
}

// alive reports whether any thread of pid still runs. The main thread of a
// killed multi-threaded process (beam) can be a zombie while the others
// still hold its sockets, so every task is checked.
func alive(pid int) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return false // gone
	}
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "stat"))
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
			if st := b[i+2]; st != 'Z' && st != 'X' {
				return true
			}
		}
	}
	return false
}

// Log returns ejabberd's log and console output, for failure diagnostics.
// After Close it returns what was logged up to the shutdown.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finalLog != "" {
		return s.finalLog
	}
	return s.readLog()
}

func (s *Server) logPath() string { return s.path("logs", "ejabberd.log") }
func (s *Server) outPath() string { return s.path("ejabberd.out") }

// readLog returns the log file followed by the console output (critical
// messages and what erl prints before ejabberd's logger runs), if any.
func (s *Server) readLog() string {
	log, _ := os.ReadFile(s.logPath())
	out, _ := os.ReadFile(s.outPath())
	if len(bytes.TrimSpace(out)) > 0 {
		log = append(log, "\n--- ejabberdctl stdout/stderr ---\n"...)
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
