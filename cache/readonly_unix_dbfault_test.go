//go:build unix

package cache

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// TestFaultReadOnly: the database file, or also its directory, cannot be
// written. The checks run in a helper process (readOnlyChecks) that really
// cannot write: under root, which file modes do not stop, the helper runs as
// the user nobody; otherwise as this user, with the modes taking effect.
func TestFaultReadOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes") // -short only
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root := os.Getuid() == 0
	for _, variant := range []string{"file", "dir"} {
		t.Run(variant, func(t *testing.T) {
			src, _ := seeded(t)
			// A directory that the user nobody can reach: t.TempDir's are
			// private to this user.
			dir, err := os.MkdirTemp("", "pipebind-readonly-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = os.Chmod(dir, 0o700)
				_ = os.RemoveAll(dir)
			})
			path := filepath.Join(dir, "cache.db")
			copyFile(t, src, path, 0o444)
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			run := exe
			if root {
				// The test binary sits in a directory private to root.
				run = filepath.Join(dir, "helper.test")
				copyFile(t, exe, run, 0o555)
			}
			dirMode := os.FileMode(0o777)
			if variant == "dir" {
				dirMode = 0o555
			}
			if err := os.Chmod(dir, dirMode); err != nil {
				t.Fatal(err)
			}

			cmd := exec.CommandContext(t.Context(), run, "-test.run=^TestDBFaultHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), faultHelperEnv+"=readonly", faultHelperDBEnv+"="+path, faultVariantEnv+"="+variant)
			if root {
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil || !bytes.Contains(stdout.Bytes(), []byte("ok\n")) {
				t.Fatalf("helper (root=%v): %v\nstdout:\n%s\nstderr:\n%s", root, err, &stdout, &stderr)
			}
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
				t.Errorf("the read-only file changed (%v)", err)
			}
		})
	}
}

// copyFile copies src to dst, mode perm.
func copyFile(t *testing.T, src, dst string, perm os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, perm); err != nil {
		t.Fatal(err)
	}
}
