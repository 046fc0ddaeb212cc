package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/rs/zerolog"
	"golang.org/x/term"

	"github.com/pipebind/pipebind/client"
)

// isTerminal reports whether w is a terminal: colours and progress bars
// only there, never in a file or a pipe.
func isTerminal(w io.Writer) bool {
	f, ok := unwrap(w).(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// syncWriter serializes the writes to stderr, which the command, the
// client's goroutines (-v, -trace, warnings) and OnEvent share: a line is
// never cut by another, and a test's bytes.Buffer is safe.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// unwrap returns the writer under s, so that isTerminal sees the file.
func unwrap(w io.Writer) io.Writer {
	if s, ok := w.(*syncWriter); ok {
		return s.w
	}
	return w
}

// wireTrace prints the XML stream like curl -v: "> " before what the
// client sent, "< " before what the server sent, one top-level element a
// line, secrets already redacted by the client (Config.WireTrace). It is
// called from the reading and the writing goroutines.
type wireTrace struct {
	mu    sync.Mutex
	w     io.Writer
	color bool
}

func (t *wireTrace) trace(in bool, el []byte) {
	prefix, color := "> ", "\x1b[36m" // cyan: sent
	if in {
		prefix, color = "< ", "\x1b[32m" // green: received
	}
	var b bytes.Buffer
	if t.color {
		b.WriteString(color)
	}
	b.WriteString(prefix)
	b.Write(bytes.ReplaceAll(bytes.TrimRight(el, "\r\n"), []byte("\n"), []byte("\n"+prefix)))
	if t.color {
		b.WriteString("\x1b[0m")
	}
	b.WriteByte('\n')
	t.mu.Lock()
	defer t.mu.Unlock()
	_, _ = t.w.Write(b.Bytes())
}

// warnings collects the client's warnings when -v is off (the client logs
// them at warn level), so that a command prints one line about them on
// stderr, and lists them in its JSON. With immediate (listen), each new
// one is printed as it comes.
type warnings struct {
	mu        sync.Mutex
	msgs      []string
	immediate io.Writer
}

// Write receives the zerolog JSON of one warning.
func (w *warnings) Write(p []byte) (int, error) {
	var ev struct {
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(p, &ev) != nil || ev.Message == "" {
		return len(p), nil
	}
	msg := ev.Message
	if ev.Error != "" {
		msg += ": " + ev.Error
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.msgs {
		if m == msg {
			return len(p), nil
		}
	}
	w.msgs = append(w.msgs, msg)
	if w.immediate != nil {
		fmt.Fprintf(w.immediate, "pipebind: warning: %s\n", oneLineString(msg))
	}
	return len(p), nil
}

func (w *warnings) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string{}, w.msgs...)
}

// summary prints one warning line on stderr: the cache's fault if there is
// one (it explains the rest), else the first warning, and how many more.
func (w *warnings) summary(fault error, stderr io.Writer) {
	msgs := w.list()
	switch {
	case fault != nil:
		fmt.Fprintf(stderr, "pipebind: warning: %s\n", describeCacheFault(fault))
	case len(msgs) == 1:
		fmt.Fprintf(stderr, "pipebind: warning: %s\n", oneLineString(msgs[0]))
	case len(msgs) > 1:
		fmt.Fprintf(stderr, "pipebind: warning: %s (and %d more: -v shows them)\n", oneLineString(msgs[0]), len(msgs)-1)
	}
}

// cacheFault is the JSON of Info.CacheFault: what was wrong with the cache
// file, and what was done about it.
type cacheFault struct {
	Path    string `json:"path"`
	Action  string `json:"action"` // moved-aside, read-only or no-cache
	MovedTo string `json:"moved_to,omitempty"`
	Error   string `json:"error"`
	Message string `json:"message"`
}

func newCacheFault(fault error) *cacheFault {
	var ce *client.CacheError
	if !errors.As(fault, &ce) {
		return nil
	}
	f := &cacheFault{Path: ce.Path, MovedTo: ce.MovedTo, Error: oneLine(ce.Err), Message: describeCacheFault(fault)}
	switch {
	case ce.MovedTo != "":
		f.Action = "moved-aside"
	case ce.ReadOnly:
		f.Action = "read-only"
	default:
		f.Action = "no-cache"
	}
	return f
}

// describeCacheFault says in one line what a faulty cache file costs.
func describeCacheFault(fault error) string {
	var ce *client.CacheError
	if !errors.As(fault, &ce) {
		return oneLine(fault)
	}
	switch {
	case ce.MovedTo != "":
		return fmt.Sprintf("cache %s was corrupt: moved aside to %s, and a fresh cache started (messages are fetched again)", ce.Path, ce.MovedTo)
	case ce.ReadOnly:
		return fmt.Sprintf("cache %s is not writable: nothing this login learned was stored, so the next one starts cold too (%s; -cache or %s names another file)", ce.Path, oneLine(ce.Err), envCache)
	}
	return fmt.Sprintf("cache %s cannot be used: logged in without it, so every login starts cold (%s; -cache or %s names another file)", ce.Path, oneLine(ce.Err), envCache)
}

// verboseTrace logs a login's milestones for -v: each connection, each
// TLS handshake (version, cipher, certificate), the login's end.
func verboseTrace(log zerolog.Logger) *client.Trace {
	return &client.Trace{
		ConnectDone: func(addr string, err error) {
			log.Debug().Str("addr", addr).Err(err).Msg("TCP connect")
		},
		TLSDone: func(cs tls.ConnectionState, err error) {
			ev := log.Debug().Err(err).Str("version", tls.VersionName(cs.Version)).Str("cipher", tls.CipherSuiteName(cs.CipherSuite)).
				Str("alpn", cs.NegotiatedProtocol).Bool("verified", len(cs.VerifiedChains) > 0)
			if len(cs.PeerCertificates) > 0 {
				c := cs.PeerCertificates[0]
				ev = ev.Str("subject", c.Subject.String()).Strs("dns_names", c.DNSNames).Str("issuer", c.Issuer.String()).Time("not_after", c.NotAfter)
			}
			ev.Msg("TLS handshake")
		},
		LoginDone: func(info client.Info, err error) {
			log.Debug().Err(err).Str("path", info.Path.String()).Str("mechanism", info.Mechanism).Str("credential", info.Credential()).
				Int("attempts", info.Attempts).Int("round_trips", info.RoundTrips).Msg("login done")
		},
	}
}

// oneLineString folds s onto one line.
func oneLineString(s string) string { return strings.Join(strings.Fields(s), " ") }
