package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/login"
)

// Exit statuses, by class of failure (README, "Exit status"). A script
// tells one failure from another by these, or by the "class" of the JSON
// object that -json prints on failure.
const (
	exitOK          = 0
	exitError       = 1   // anything else (a cache file, an archive sync, ...)
	exitUsage       = 2   // the command line or the environment: found before connecting
	exitConnect     = 3   // the server's address: lookup, TCP connect, connection lost
	exitTLS         = 4   // TLS: handshake, certificate, STARTTLS
	exitAuth        = 5   // the server refused the credentials
	exitProtocol    = 6   // the server refused the login otherwise, or broke the protocol
	exitTimeout     = 7   // -timeout (or a server that never answers)
	exitInterrupted = 130 // SIGINT (Ctrl-C); SIGTERM is 143
)

// classes names each exit status in -json's "class".
var classes = map[int]string{
	exitError: "error", exitUsage: "usage", exitConnect: "connect", exitTLS: "tls", exitAuth: "auth",
	exitProtocol: "protocol", exitTimeout: "timeout", exitInterrupted: "interrupted", exitInterrupted + 13: "interrupted",
}

// signalError is the cause of the context main cancels on a signal.
type signalError struct{ sig os.Signal }

func (e signalError) Error() string { return "interrupted (" + e.sig.String() + ")" }

// exitCode classifies the failure err of a command run under ctx.
func exitCode(ctx context.Context, err error) int {
	var sig signalError
	var ue *usageError
	var le *login.Error
	switch {
	case errors.As(context.Cause(ctx), &sig):
		if s, ok := sig.sig.(syscall.Signal); ok && s == syscall.SIGTERM {
			return 128 + int(s)
		}
		return exitInterrupted
	case errors.Is(ctx.Err(), context.Canceled) || errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &ue), errors.Is(err, client.ErrConfig):
		return exitUsage
	case errors.Is(err, client.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return exitTimeout
	case errors.Is(err, client.ErrAuth):
		return exitAuth
	case errors.Is(err, client.ErrTLS), errors.As(err, &le) && le.Step == login.StepStartTLS:
		return exitTLS
	case errors.Is(err, client.ErrConnection),
		errors.As(err, &le) && (le.Step == login.StepLookup || le.Step == login.StepConnect):
		return exitConnect
	case errors.Is(err, client.ErrProtocol), errors.Is(err, client.ErrRefused), errors.Is(err, client.ErrInsecure):
		return exitProtocol
	}
	return exitError
}

// failure is what -json prints on stdout when a command fails: one object.
type failure struct {
	Error    string `json:"error"`
	Class    string `json:"class"`
	ExitCode int    `json:"exit_code"`
	// Step is the part of the login that failed (login.Step), if any.
	Step string `json:"step,omitempty"`
	// Hint says what to try, when there is something to try.
	Hint string `json:"hint,omitempty"`
}

// hinted is an error with advice for the user (hints.go).
type hinted struct {
	err  error
	hint string
}

func (e *hinted) Error() string { return e.err.Error() }
func (e *hinted) Unwrap() error { return e.err }

// fail reports err, the failure of command name, on stderr (one line, and
// a hint when there is one) and, with -json, as one JSON object on stdout;
// it returns the exit status.
func fail(ctx context.Context, name string, err error, jsonOut bool, stdout, stderr io.Writer) int {
	code := exitCode(ctx, err)
	f := failure{Error: oneLine(err), Class: classes[code], ExitCode: code}
	if code == exitInterrupted || code == exitInterrupted+13 {
		f.Error = "interrupted"
	}
	var ue *usageError
	if errors.As(err, &ue) {
		f.Error = ue.msg // the user's mistake, without what wrapped it
	}
	var h *hinted
	if errors.As(err, &h) {
		f.Hint = h.hint
	}
	var le *login.Error
	if errors.As(err, &le) {
		f.Step = le.Step.String()
	}
	prefix := "pipebind"
	if name != "" {
		prefix += " " + name
	}
	fmt.Fprintf(stderr, "%s: %s\n", prefix, f.Error)
	if f.Hint != "" {
		fmt.Fprintf(stderr, "%s: hint: %s\n", prefix, f.Hint)
	}
	if jsonOut {
		_ = json.NewEncoder(stdout).Encode(f)
	}
	return code
}
