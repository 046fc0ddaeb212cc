package prosodytest

import (
	"context"
	"testing"
	"time"

	"github.com/pipebind/pipebind/internal/daemontest"
)

// StartT starts a server for t and registers its Close with t.Cleanup; when
// the test has failed, the cleanup first logs Prosody's log.
//
// A missing Prosody fails the test, as does a server that does not start:
// integration tests are never skipped silently. Only under -short is a
// missing Prosody a skip.
func StartT(t testing.TB, opt Options) *Server {
	t.Helper()
	return daemontest.StartT(t, "prosodytest", 30*time.Second, ErrNotInstalled, func(ctx context.Context) (*Server, error) {
		return Start(ctx, opt)
	})
}

// LogDir is where the server keeps its files (for failure reports).
func (s *Server) LogDir() string { return s.Dir }
