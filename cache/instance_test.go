package cache

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestInstances: the default instance has the installation's user-agent
// id; a second claim of a held instance is ErrInstanceInUse in the same
// process; ClaimAnyInstance takes the first free one; ids are stable across
// releases; a claim of a process that has ended is taken over.
func TestInstances(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "cache.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	inst, err := db.InstallationID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, err := db.ClaimAnyInstance(ctx, "Bot@Example.org")
	if err != nil || a.Name != "" || a.UserAgentID != inst {
		t.Fatalf("first claim: %+v, %v; want the default instance with the installation id", a, err)
	}
	if _, err := db.ClaimInstance(ctx, "bot@example.org", ""); !errors.Is(err, ErrInstanceInUse) {
		t.Fatalf("second claim of a held instance: %v, want ErrInstanceInUse", err)
	}
	b, err := db.ClaimAnyInstance(ctx, "bot@example.org")
	if err != nil || b.Name != "2" || b.UserAgentID == "" || b.UserAgentID == inst {
		t.Fatalf("automatic second claim: %+v, %v", b, err)
	}
	other, err := db.ClaimAnyInstance(ctx, "other@example.org")
	if err != nil || other.Name != "" {
		t.Fatalf("another account: %+v, %v", other, err)
	}
	ua2 := b.UserAgentID
	for _, in := range []*Instance{a, b, other} {
		if err := in.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Released, and claimed again in the other order: the same ids.
	b2, err := db.ClaimInstance(ctx, "bot@example.org", "2")
	if err != nil || b2.UserAgentID != ua2 {
		t.Fatalf("instance 2 again: %+v, %v; want user-agent id %s", b2, err, ua2)
	}
	defer b2.Release(ctx)

	// A claim left by a process that has ended (a pid that does not run).
	if _, err := db.sql.ExecContext(ctx, `UPDATE instances SET claimed_pid = ?, claimed_start = 1 WHERE name = ''`, deadPID(t)); err != nil {
		t.Fatal(err)
	}
	a2, err := db.ClaimInstance(ctx, "bot@example.org", "")
	if err != nil || a2.UserAgentID != inst {
		t.Fatalf("taking over a dead process's claim: %+v, %v", a2, err)
	}
	defer a2.Release(ctx)
	// A claim of a process that runs (this test's parent) is respected.
	if _, err := db.sql.ExecContext(ctx, `INSERT INTO instances (account, name, user_agent_id, claimed_pid, claimed_start) VALUES ('bot@example.org', 'x', 'u', ?, ?)`,
		os.Getppid(), processStart(os.Getppid())); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ClaimInstance(ctx, "bot@example.org", "x"); !errors.Is(err, ErrInstanceInUse) {
		t.Fatalf("an instance another running process holds: %v, want ErrInstanceInUse", err)
	}
}

// deadPID returns a pid no process has.
func deadPID(t *testing.T) int {
	t.Helper()
	for pid := 4 << 20; pid > 1<<20; pid-- {
		if !processRuns(pid, 0) {
			return pid
		}
	}
	t.Fatal("no free pid")
	return 0
}
