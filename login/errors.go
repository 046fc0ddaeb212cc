package login

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/pipebind/pipebind/features"
	"github.com/pipebind/pipebind/wire"
)

// Sentinel errors that a failed login matches with errors.Is. Every error
// returned by this package is a *Error that wraps one of them (or a context
// error) and the cause.
var (
	// ErrAuth means the server rejected the credentials (SASL not-authorized,
	// credentials-expired, account-disabled).
	ErrAuth = errors.New("authentication failed")
	// ErrRefused means the server refused the login for another reason: a
	// stream error, a SASL failure other than bad credentials, or a
	// requirement the client will not meet.
	ErrRefused = errors.New("server refused the login")
	// ErrProtocol means the server sent something the protocol does not
	// allow at that point, or something that could not be parsed.
	ErrProtocol = wire.ErrProtocol
	// ErrTLS means the TLS handshake failed, the certificate did not verify,
	// or the server would not secure the stream.
	ErrTLS = errors.New("TLS error")
	// ErrTimeout means a deadline passed while waiting for the server. When
	// the deadline was the context's, the error also matches
	// context.DeadlineExceeded.
	ErrTimeout = errors.New("timeout")
	// ErrConnection means the connection broke (closed by the server, reset)
	// before the login completed.
	ErrConnection = errors.New("connection lost")
	// ErrInsecure means the login would have sent a password (PLAIN) over a
	// stream whose TLS certificate was not verified, or would have used a
	// mechanism the live features do not offer.
	ErrInsecure = errors.New("refusing an insecure login")
	// ErrConfig means the caller's configuration cannot log in (an unknown
	// mechanism, a JID without a localpart, ...): a local mistake, found
	// before anything is sent, that no server can fix.
	ErrConfig = errors.New("invalid configuration")
)

// Step names the part of a connection's setup that failed (Error.Step).
// Its String is the text error messages print.
type Step string

// The steps, in the order a login goes through them. The first four are
// before the login proper: package client sets them (lookup, connect, tls)
// and StartTLS sets StepStartTLS.
const (
	StepLookup       Step = "lookup"        // SRV lookup (XEP-0368)
	StepConnect      Step = "connect"       // TCP connect
	StepStartTLS     Step = "starttls"      // STARTTLS negotiation (RFC 6120 §5)
	StepTLS          Step = "tls"           // TLS handshake
	StepConfig       Step = "config"        // a Config that cannot log in
	StepWrite        Step = "write"         // the first write after TLS
	StepStreamHeader Step = "stream header" // the server's first stream header
	StepFeatures     Step = "features"      // stream features (before or after authentication)
	StepAuth         Step = "auth"          // SASL or SASL2 authentication
	StepRestart      Step = "restart"       // the stream restart after classic SASL
	StepBind         Step = "bind"          // resource binding (RFC 6120, Bind 2 or its draft)
	StepEnable       Step = "enable"        // enabling carbons and stream management (classic path)
)

// String returns the step's text, as error messages print it.
func (s Step) String() string { return string(s) }

// Error describes a failed login: the step that failed, the path, the
// server, and the cause. It never holds a credential.
type Error struct {
	Step   Step
	Path   Path
	Domain string
	Kind   error // one of the sentinel errors above
	Err    error // the cause, may be nil
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("login")
	if e.Domain != "" {
		b.WriteString(" to ")
		b.WriteString(e.Domain)
	}
	if e.Path != PathAuto {
		b.WriteString(" (")
		b.WriteString(e.Path.String())
		b.WriteString(")")
	}
	b.WriteString(": ")
	cause := e.Kind.Error()
	if e.Err != nil {
		cause = e.Err.Error()
	}
	// crypto/tls already says "tls: ...": "tls: tls: ..." says it twice.
	if !strings.HasPrefix(cause, e.Step.String()+": ") {
		b.WriteString(e.Step.String())
		b.WriteString(": ")
	}
	b.WriteString(cause)
	return b.String()
}

// Unwrap returns the kind and the cause, so that errors.Is matches both the
// sentinel (ErrAuth, ...) and, for example, context.Canceled.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// SafeToRetry reports whether the login can be retried at once with fresh
// features: true for stale-cache conditions.
func (e *Error) SafeToRetry() bool { return errors.Is(e.Err, errStale) }

// SASLError is a SASL <failure> from the server (RFC 6120 §6.5, XEP-0388).
// Its Is method treats an empty Condition as a wildcard, so
// errors.Is(err, &SASLError{Condition: "not-authorized"}) matches that
// condition whatever the text.
type SASLError struct {
	Condition string
	Text      string
}

func (e *SASLError) Error() string {
	if e.Text != "" {
		return fmt.Sprintf("sasl failure: %s (%q)", e.Condition, e.Text)
	}
	return "sasl failure: " + e.Condition
}

// Is matches another *SASLError with the same (or an empty) condition.
func (e *SASLError) Is(target error) bool {
	t, ok := target.(*SASLError)
	if !ok {
		return false
	}
	return t.Condition == "" || t.Condition == e.Condition
}

// kind classifies a SASL failure.
func (e *SASLError) kind() error {
	switch e.Condition {
	case "not-authorized", "credentials-expired", "account-disabled", "invalid-authzid":
		return ErrAuth
	}
	return ErrRefused
}

// StreamError is a <stream:error> from the server (RFC 6120 §4.9).
type StreamError struct {
	Condition string
	Text      string
}

func (e *StreamError) Error() string {
	if e.Text != "" {
		return fmt.Sprintf("stream error: %s (%q)", e.Condition, e.Text)
	}
	return "stream error: " + e.Condition
}

// Is matches another *StreamError with the same (or an empty) condition.
func (e *StreamError) Is(target error) bool {
	t, ok := target.(*StreamError)
	if !ok {
		return false
	}
	return t.Condition == "" || t.Condition == e.Condition
}

// errStale marks an attempt that failed because the cached features no longer
// describe the server; the caller retries once with the live features.
var errStale = errors.New("cached features are stale")

// StaleError reports that the live features differ from the cached ones in a
// way that made the pipelined attempt unusable. Live holds what the server
// offers now; the caller should store it and retry once.
type StaleError struct {
	Reason string
	Live   features.Features
}

func (e *StaleError) Error() string { return "cached features are stale: " + e.Reason }

// Is makes a *StaleError match errStale.
func (e *StaleError) Is(target error) bool { return target == errStale }

// IsStale reports whether err is a stale-cache failure that is safe to retry
// with the live features it carries.
func IsStale(err error) (*StaleError, bool) {
	var se *StaleError
	if errors.As(err, &se) {
		return se, true
	}
	return nil, false
}

// NewError returns the *Error of a failure at step: kind (one of the
// sentinel errors above) and the cause err. When ctx has ended, the kind is
// the context's instead (context.Canceled, or ErrTimeout for a deadline, which
// also matches context.DeadlineExceeded) whatever the cause, so that a
// cancelled login always matches context.Canceled. Package client builds its
// errors of the steps before the login (lookup, connect, TLS) with it.
func NewError(ctx context.Context, step Step, domain string, kind, err error) *Error {
	if cerr := ctx.Err(); cerr != nil {
		kind = context.Canceled
		if errors.Is(cerr, context.DeadlineExceeded) {
			kind = ErrTimeout
		}
		if !errors.Is(err, cerr) {
			err = fmt.Errorf("%w (%v)", cerr, err)
		}
	}
	return &Error{Step: step, Domain: domain, Kind: kind, Err: err}
}

// classify wraps err into a *Error with the right kind.
func classify(ctx context.Context, step Step, path Path, domain string, err error) error {
	if err == nil {
		return nil
	}
	var le *Error
	if errors.As(err, &le) {
		return err
	}
	if ctx.Err() != nil {
		// The context ended: report its error so errors.Is(err,
		// context.Canceled / DeadlineExceeded) holds.
		e := NewError(ctx, step, domain, nil, err)
		e.Path = path
		return e
	}
	e := &Error{Step: step, Path: path, Domain: domain, Err: err}
	var sasl *SASLError
	var serr *StreamError
	var netErr net.Error
	var cverr *tls.CertificateVerificationError
	var uaerr x509.UnknownAuthorityError
	var hnerr x509.HostnameError
	var cierr x509.CertificateInvalidError
	var rherr tls.RecordHeaderError
	var alert tls.AlertError
	switch {
	case errors.As(err, new(*stanzaError)):
		e.Kind = ErrRefused
	case errors.As(err, &sasl):
		e.Kind = sasl.kind()
	case errors.As(err, &serr):
		e.Kind = ErrRefused
	case errors.Is(err, errStale):
		e.Kind = ErrRefused
	case errors.Is(err, ErrInsecure), errors.Is(err, ErrProtocol), errors.Is(err, ErrTLS), errors.Is(err, ErrAuth),
		errors.Is(err, ErrRefused), errors.Is(err, ErrTimeout), errors.Is(err, ErrConnection), errors.Is(err, ErrConfig):
		for _, k := range []error{ErrConfig, ErrInsecure, ErrProtocol, ErrTLS, ErrAuth, ErrRefused, ErrTimeout, ErrConnection} {
			if errors.Is(err, k) {
				e.Kind = k
				break
			}
		}
	case errors.As(err, &cverr), errors.As(err, &uaerr), errors.As(err, &hnerr),
		errors.As(err, &cierr), errors.As(err, &rherr), errors.As(err, &alert):
		e.Kind = ErrTLS
	case errors.As(err, &netErr) && netErr.Timeout():
		e.Kind = ErrTimeout
	case ConnectionLost(err):
		e.Kind = ErrConnection
	default:
		e.Kind = ErrProtocol
	}
	return e
}

// ConnectionLost reports whether err is the connection ending under the
// reader or the writer: the peer closed it (also in the middle of an
// element, which encoding/xml reports as a syntax error), reset it, or it
// was closed here. Such a failure is safe to retry on a new connection.
func ConnectionLost(err error) bool {
	var se *xml.SyntaxError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrClosedPipe),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.ETIMEDOUT):
		return true
	case errors.As(err, &se):
		return se.Msg == "unexpected EOF"
	}
	return false
}

// readError is the error of reading what an element holds: the connection
// lost under the decoder (ConnectionLost), else a protocol error.
func readError(what string, err error) error {
	switch {
	case ConnectionLost(err):
		return fmt.Errorf("%s: %w", what, err)
	case errors.Is(err, ErrProtocol):
		return err // the stream layer's, which says what it was
	}
	return protocolErrorf("%s: %v", what, err)
}

// truncated is for the parsers of a whole serialized element: there, the
// input ending early is malformed input, not a lost connection.
func truncated[T any](v T, err error) (T, error) {
	if err != nil && !errors.Is(err, ErrProtocol) {
		err = protocolErrorf("%v", err)
	}
	return v, err
}

// protocolErrorf returns an error matching ErrProtocol.
func protocolErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// Limits on what a server can make the client buffer (package wire's, which
// enforces them). A top-level element (a stanza) beyond MaxStanzaBytes or
// nested deeper than MaxDepth ends the session with ErrTooLarge; so do login
// answers beyond MaxLoginBytes.
const (
	MaxStanzaBytes = wire.DefaultMaxBytes
	MaxDepth       = wire.DefaultMaxDepth
	MaxLoginBytes  = wire.DefaultMaxLoginBytes
)

// ErrTooLarge reports a server element beyond the limits above. It matches
// ErrProtocol.
var ErrTooLarge = wire.ErrTooLarge

// ErrTokenRejected is wrapped by a login error when the server refused
// Config.Token and then closed the stream before the password could be
// tried on it: the caller deletes the token and logs in again with the
// password. (When the server keeps the stream open, the fallback happens
// inside the same login and no error is returned.)
var ErrTokenRejected = errors.New("FAST token rejected")

// DowngradeError reports that a password login would have used a mechanism
// weaker than the account's pinned one (Config.Pin): someone may be
// stripping the server's stronger mechanisms, or the server really lost
// them. It is only returned after the live features were read (a stale
// cache costs a retry, not an alarm). It matches ErrInsecure and ErrPinned;
// Config.AllowDowngrade overrides it.
type DowngradeError struct {
	// Pinned is the strongest mechanism this account used before.
	Pinned string
	// Mechanism is the best one the server offers now.
	Mechanism string
}

func (e *DowngradeError) Error() string {
	return fmt.Sprintf("mechanism downgrade: this account is pinned to %s but the server now offers at best %s (set AllowDowngrade to accept)", e.Pinned, e.Mechanism)
}

// Is matches ErrInsecure and ErrPinned.
func (e *DowngradeError) Is(target error) bool { return target == ErrInsecure || target == ErrPinned }

// ErrNeedPassword is wrapped by the error of a login that would have used
// the password while Config.Password is empty (a FAST token could not
// stand in for it). It also matches ErrAuth. Package client then asks
// Config.PasswordFunc and logs in again: an empty password is never sent.
var ErrNeedPassword = errors.New("the password is needed")

// ErrPinned is matched by a *DowngradeError.
var ErrPinned = errors.New("mechanism weaker than the pinned one")
