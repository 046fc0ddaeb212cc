package cache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestGroupCommitBurst: a thousand logins recorded at once in one process
// all succeed, even with a busy timeout far below what a thousand separate
// transactions take, and every token is stored (issue 14: a first-login
// storm on one shared cache lost FAST tokens to the busy timeout).
func TestGroupCommitBurst(t *testing.T) {
	ctx := t.Context()
	db, err := OpenWith(ctx, filepath.Join(t.TempDir(), "cache.db"), Options{BusyTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 1000
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- db.RecordLogin(ctx, LoginRecord{
				Account: fmt.Sprintf("bot%d@example.org", i),
				Token:   &FastToken{Mechanism: "HT-SHA-256-NONE", Token: fmt.Appendf(nil, "token-%d", i), Expiry: time.Now().Add(time.Hour)},
				Pin:     "SCRAM-SHA-1",
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a login record failed: %v", err)
		}
	}
	toks, err := db.ListFastTokens(ctx)
	if err != nil || len(toks) != n {
		t.Fatalf("%d tokens stored (%v), want %d", len(toks), err, n)
	}
}

// TestGroupCommitIsolation: a write that fails in a group is rolled back
// alone and gets its error; the others of the group are committed.
func TestGroupCommitIsolation(t *testing.T) {
	ctx := t.Context()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "cache.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	boom := errors.New("boom")
	var wg sync.WaitGroup
	results := make([]error, 20)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = db.small(ctx, func(ctx context.Context, tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO mechanism_pins (account, mechanism, updated_at) VALUES (?, 'PLAIN', 0)`, fmt.Sprintf("a%d@x", i)); err != nil {
					return err
				}
				if i%2 == 1 {
					return boom // after its insert: the savepoint must undo it
				}
				return nil
			})
		}()
	}
	wg.Wait()
	pins, err := db.ListMechanismPins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pins) != len(results)/2 {
		t.Errorf("%d pins stored, want %d (the even writes)", len(pins), len(results)/2)
	}
	for i, err := range results {
		if (i%2 == 1) != errors.Is(err, boom) {
			t.Errorf("write %d: %v", i, err)
		}
	}
}
