package client

import (
	"errors"
	"net"

	"github.com/pipebind/pipebind/login"
)

// ErrDeadLink reports a link that stopped answering: nothing arrived from
// the server within KeepAlive.Timeout of a liveness check. The error that
// carries it is a *DropError (ErrConnection, ErrTimeout).
var ErrDeadLink = errors.New("client: no answer from the server")

// DropError is why a logged-in connection was lost: the server closed it
// without an error, the network reset it, or the link died (ErrDeadLink).
// It matches ErrConnection, and ErrTimeout when a deadline found it. A
// drop is safe to retry (SafeToRetry): with Config.Reconnect the client
// does.
type DropError struct {
	// Err is what was observed.
	Err error
	// Timeout reports that a deadline found the drop (a liveness check, a
	// TCP timeout).
	Timeout bool
}

func (e *DropError) Error() string { return "client: connection lost: " + e.Err.Error() }

// Unwrap returns ErrConnection, ErrTimeout (if a deadline found the drop)
// and the cause.
func (e *DropError) Unwrap() []error {
	if e.Timeout {
		return []error{ErrConnection, ErrTimeout, e.Err}
	}
	return []error{ErrConnection, e.Err}
}

// SafeToRetry reports true: nothing of the session is lost by logging in
// again (stream management resumes it, or the archive fills the gap).
func (e *DropError) SafeToRetry() bool { return true }

// SafeToRetry reports whether the operation that failed with err may be
// tried again as it was: a lost connection, a timeout, a stale cache. It
// looks for an error with a SafeToRetry() bool method (errors.As), as
// pgx's pgconn.SafeToRetry does.
func SafeToRetry(err error) bool {
	var r interface{ SafeToRetry() bool }
	if errors.As(err, &r) {
		return r.SafeToRetry()
	}
	return false
}

// sessionEnd classifies the error that ended a served session: a lost
// connection or a timeout becomes a *DropError; a stream error or a
// protocol error stays what it is.
func sessionEnd(err error) error {
	var ne net.Error
	switch {
	case err == nil:
		return &DropError{Err: errors.New("the server closed the stream")}
	case login.ConnectionLost(err):
		return &DropError{Err: err}
	case errors.As(err, &ne) && ne.Timeout():
		return &DropError{Err: err, Timeout: true}
	}
	return err
}
