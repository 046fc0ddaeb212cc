//go:build unix

package cache

import (
	"syscall"
	"testing"
)

func TestFileModesUmask(t *testing.T) {
	// A permissive umask must not loosen the files. (No t.Parallel in this
	// package: the umask is per process.)
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	TestFileModes(t)
}
