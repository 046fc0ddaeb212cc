//go:build linux

package pathemu

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the test binary when a goroutine started by a test is still
// running after all tests have finished. Run as a helper process (see
// TestStartInServerNamespace), it runs the helper instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper())
	}
	goleak.VerifyTestMain(m)
}
