//go:build unix

package client_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// TestCacheFaultReadOnly: the cache file, or also its directory, cannot be
// written. The login runs in a helper process (helperReadOnlyDial) that
// really cannot write: under root, which file modes do not stop, it runs as
// the user nobody; otherwise as this user, with the modes taking effect.
func TestCacheFaultReadOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes") // -short only
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root := os.Getuid() == 0
	for _, tc := range []struct {
		name    string
		dirMode os.FileMode
		want    string
	}{
		{"file read-only", 0o777, "readonly"},
		{"directory read-only", 0o555, "nocache"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A directory the user nobody can reach (t.TempDir's are not).
			dir, err := os.MkdirTemp("", "pipebind-readonly-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = os.Chmod(dir, 0o700)
				_ = os.RemoveAll(dir)
			})
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "cache.db")
			s := faultSetup(t, path, 300)
			s.InjectArchiveBulk("alice", "bob@localhost", 50, true)
			run := exe
			if root {
				// The test binary sits in a directory private to root.
				run = filepath.Join(dir, "helper.test")
				copyExecutable(t, exe, run)
			}
			if err := os.Chmod(path, 0o444); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.dirMode); err != nil {
				t.Fatal(err)
			}
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			p := startProc(t, "readonly", run, helperEnv(s, "readonly-dial", path, helperWantEnv+"="+tc.want), func(cmd *exec.Cmd) {
				if root {
					cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
				}
			})
			p.next("ok")
			p.wait()
			if after, err := os.ReadFile(path); err != nil || !bytes.Equal(after, before) {
				t.Errorf("the read-only file changed (%v)", err)
			}
			// Writable again: the next login stores what was missed.
			if err := os.Chmod(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, 0o600); err != nil {
				t.Fatal(err)
			}
			checkHealed(t, s, path)
		})
	}
}

// copyExecutable copies the file src to dst, mode 0555.
func copyExecutable(t *testing.T, src, dst string) { copyFile(t, src, dst, 0o555) }
