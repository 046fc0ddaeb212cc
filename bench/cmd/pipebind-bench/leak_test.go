package main

import (
	"context"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// peerMainEnv makes the test binary run as pipebind-bench itself: the
// -packet test starts its peers as processes (in the emulator's client
// namespace) from os.Executable(), which in a test is this binary.
const peerMainEnv = "PIPEBIND_BENCH_TEST_AS_MAIN"

// TestMain fails the test binary when a goroutine started by a test is still
// running after all tests have finished (issue 7, item 6).
func TestMain(m *testing.M) {
	if os.Getenv(peerMainEnv) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}
