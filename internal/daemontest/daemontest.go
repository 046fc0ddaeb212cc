// Package daemontest holds what the real-server test harnesses
// (internal/prosodytest, internal/ejabberdtest) share: starting a server
// for a test, failing loudly when it is missing, and stopping it.
package daemontest

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Server is a started daemon.
type Server interface {
	Close() error
	Log() string
	LogDir() string
}

// StartT starts a server with start (bounded by timeout), registers its
// Close with t.Cleanup and, when the test failed, logs the daemon's log
// first. A missing daemon (an error matching notInstalled) fails the test,
// as does one that does not start: integration tests are never skipped
// silently. Only under -short is a missing daemon a skip.
func StartT[S Server](t testing.TB, name string, timeout time.Duration, notInstalled error, start func(context.Context) (S, error)) S {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	s, err := start(ctx)
	if err != nil {
		if errors.Is(err, notInstalled) {
			if testing.Short() {
				t.Skipf("%s: skipped in -short mode: %v", name, err)
			}
			t.Fatalf("%v (run scripts/test, which installs it)", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log (%s):\n%s", name, s.LogDir(), s.Log())
		}
		if err := s.Close(); err != nil {
			t.Errorf("%s: close: %v", name, err)
		}
	})
	return s
}
