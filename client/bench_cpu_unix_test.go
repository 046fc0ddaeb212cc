//go:build unix

package client_test

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user and system) the whole process has
// used: client, in-process server, SQLite and the runtime. ok is false
// where the platform does not say.
func processCPU() (d time.Duration, ok bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
