package ejabberdtest

import (
	"context"
	"errors"
	"testing"
	"time"
)

// startTimeout bounds StartT: process start, readiness and registrations.
const startTimeout = 60 * time.Second

// StartT starts a server for t and registers its Close with t.Cleanup; when
// the test has failed, the cleanup first logs ejabberd's log.
//
// A missing ejabberd fails the test, as does a server that does not start:
// integration tests are never skipped silently. Only under -short is a
// missing ejabberd a skip.
func StartT(t testing.TB, opt Options) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	s, err := Start(ctx, opt)
	if err != nil {
		if errors.Is(err, ErrNotInstalled) {
			if testing.Short() {
				t.Skipf("ejabberdtest: skipped in -short mode: %v", err)
			}
			t.Fatalf("%v (run scripts/test, which installs it)", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ejabberd log (%s):\n%s", s.Dir, s.Log())
		}
		if err := s.Close(); err != nil {
			t.Errorf("ejabberdtest: close: %v", err)
		}
	})
	return s
}
