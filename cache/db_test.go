package cache

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"
)

// checkModes fails t unless path and its -wal and -shm all exist with
// mode 0600.
func checkModes(t *testing.T, path string) {
	t.Helper()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
		}
	}
}

func TestFileModes(t *testing.T) {
	db, path := openTemp(t)
	ctx := t.Context()
	if err := db.PutFeatures(ctx, fullFeatures()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.InstallationID(ctx); err != nil {
		t.Fatal(err)
	}
	checkModes(t, path)
}

func TestOpenTightensModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Someone loosened the file, and left a stray -wal.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+"-wal", nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path+"-wal", 0o666); err != nil {
		t.Fatal(err)
	}
	db, err = Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkModes(t, path)
}

func TestOpenMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "cache.db")
	db, err := Open(t.Context(), path)
	if err == nil {
		db.Close()
		t.Fatal("Open in a missing directory succeeded")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open: %v, want fs.ErrNotExist", err)
	}
}

func TestOpenOddPath(t *testing.T) {
	// Characters that mean something in a file: URI.
	dir := filepath.Join(t.TempDir(), "a?b#c%20d")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cache db?mode=ro.db")
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	if err := db.PutFeatures(t.Context(), fullFeatures()); err != nil {
		t.Fatal(err)
	}
	if db.Path() != path {
		t.Errorf("Path() = %q, want %q", db.Path(), path)
	}
	checkModes(t, path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q, want the database, -wal and -shm", names)
	}
}

func TestInMemory(t *testing.T) {
	ctx := t.Context()
	db, err := Open(ctx, "")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	if db.Path() != "" {
		t.Errorf("Path() = %q, want empty", db.Path())
	}
	if err := db.PutFeatures(ctx, fullFeatures()); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := db.Features(ctx, "example.org"); err != nil || !ok {
		t.Errorf("Features = _, %v, %v; want ok", ok, err)
	}
	id1, err := db.InstallationID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := db.InstallationID(ctx)
	if err != nil || id1 != id2 {
		t.Errorf("InstallationID = %q, %v; want %q", id2, err, id1)
	}

	// Another in-memory database shares nothing.
	other, err := Open(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, ok, err := other.Features(ctx, "example.org"); err != nil || ok {
		t.Errorf("a second in-memory database sees the first one's entry (ok=%v, err=%v)", ok, err)
	}
}

func TestBusy(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "cache.db")
	db, err := open(ctx, path, options{busyTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	// Another "process" holds the write lock.
	other, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.sql.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}

	err = db.PutFeatures(ctx, fullFeatures())
	var serr sqlite3.Error
	if !errors.As(err, &serr) || serr.Code != sqlite3.ErrBusy {
		t.Errorf("PutFeatures while locked: %v, want a wrapped SQLITE_BUSY", err)
	}
	_, err = db.InstallationID(ctx)
	if !errors.As(err, &serr) || serr.Code != sqlite3.ErrBusy {
		t.Errorf("InstallationID while locked: %v, want a wrapped SQLITE_BUSY", err)
	}
	// Readers are not blocked (WAL).
	if _, _, err := db.Features(ctx, "example.org"); err != nil {
		t.Errorf("Features while locked: %v", err)
	}

	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := db.PutFeatures(ctx, fullFeatures()); err != nil {
		t.Errorf("PutFeatures after the lock is released: %v", err)
	}
}

func TestContextCanceled(t *testing.T) {
	db, _ := openTemp(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := db.PutFeatures(ctx, fullFeatures()); !errors.Is(err, context.Canceled) {
		t.Errorf("PutFeatures with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := db.InstallationID(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("InstallationID with a cancelled context: %v, want context.Canceled", err)
	}
}

func TestWithTxRollsBack(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	insert := func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO installation (id, user_agent_id, created_at) VALUES (1, 'x', 0)`)
		return err
	}
	boom := errors.New("boom")
	if err := db.withTx(ctx, func(tx *sql.Tx) error {
		if err := insert(tx); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Errorf("withTx = %v, want %v", err, boom)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("withTx swallowed a panic")
			}
		}()
		_ = db.withTx(ctx, func(tx *sql.Tx) error {
			if err := insert(tx); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM installation`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d rows after rolled back transactions, want 0", n)
	}
}

func TestPragmas(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	// Hold several connections at once so that pool connections other than
	// the first are checked too.
	var conns []*sql.Conn
	for range 3 {
		c, err := db.sql.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	for i, c := range conns {
		for _, p := range []struct{ pragma, want string }{
			{"journal_mode", "wal"},
			{"busy_timeout", "5000"},
			{"foreign_keys", "1"},
			{"synchronous", "1"}, // NORMAL
			{"secure_delete", "1"},
		} {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != p.want {
				t.Errorf("connection %d: PRAGMA %s = %s, want %s", i, p.pragma, got, p.want)
			}
		}
	}
}
