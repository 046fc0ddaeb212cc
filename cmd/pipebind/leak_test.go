package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the test binary when a goroutine started by a test is still
// running after all tests have finished (issue 7, item 6), and removes the
// pipebind binary the CLI tests built.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { removeBin() }))
}
