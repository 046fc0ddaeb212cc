package cache

import (
	"context"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewUUID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id, err := newUUID()
		if err != nil {
			t.Fatal(err)
		}
		if !uuidV4.MatchString(id) {
			t.Fatalf("newUUID() = %q, not a version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("newUUID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestInstallationIDStableAcrossReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "cache.db")
	var first string
	for i := range 3 {
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			id, err := db.InstallationID(ctx)
			if err != nil {
				t.Fatalf("InstallationID: %v", err)
			}
			if !uuidV4.MatchString(id) {
				t.Errorf("InstallationID = %q, not a version 4 UUID", id)
			}
			if first == "" {
				first = id
			} else if id != first {
				t.Errorf("Open #%d: InstallationID = %q, want %q", i+1, id, first)
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// Another file, another installation.
	other, _ := openTemp(t)
	id, err := other.InstallationID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if id == first {
		t.Errorf("two database files share InstallationID %q", id)
	}
}

// raceInstallationID calls get from n goroutines released together and
// checks that they all succeed with the same id.
func raceInstallationID(t *testing.T, n int, get func(ctx context.Context, i int) (string, error)) {
	t.Helper()
	ctx := t.Context()
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		ids   = make([]string, n)
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			ids[i], errs[i] = get(ctx, i)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("goroutine %d: %v", i, errs[i])
		} else if ids[i] != ids[0] {
			t.Errorf("goroutine %d: InstallationID = %q, goroutine 0 got %q", i, ids[i], ids[0])
		}
	}
}

func TestInstallationIDConcurrentFirstCall(t *testing.T) {
	db, _ := openTemp(t)
	raceInstallationID(t, 8, func(ctx context.Context, _ int) (string, error) {
		return db.InstallationID(ctx)
	})
}

func TestInstallationIDConcurrentOpens(t *testing.T) {
	// Eight handles on one fresh file: concurrent creation, migration and
	// first InstallationID.
	path := filepath.Join(t.TempDir(), "cache.db")
	raceInstallationID(t, 8, func(ctx context.Context, _ int) (string, error) {
		db, err := Open(ctx, path)
		if err != nil {
			return "", err
		}
		defer db.Close()
		return db.InstallationID(ctx)
	})
}
