//go:build unix

package client_test

import (
	"syscall"
	"testing"
)

// raiseOpenFiles lifts this process's soft limit of open files to at least
// want, for it and for the servers it starts. Go raises the soft limit of
// its own process at start but gives child processes the original one
// (often 1024) unless the program sets the limit itself, as here.
func raiseOpenFiles(t *testing.T, want uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < want {
		t.Fatalf("the hard limit of open files is %d; this test needs %d (ulimit -Hn)", lim.Max, want)
	}
	lim.Cur = max(lim.Cur, want)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
}
