package cache

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	// Also registers the "sqlite3" database/sql driver.
	"github.com/mattn/go-sqlite3"
)

// ErrClosed is returned, wrapped, by the methods of a DB after Close. Test
// for it with errors.Is.
var ErrClosed = errors.New("database is closed")

// fileMode is the mode of the database file and of SQLite's -wal and -shm
// files next to it: they hold credentials, readable by their owner only.
const fileMode fs.FileMode = 0o600

// defaultBusyTimeout is how long a connection waits for a lock held by
// another connection or process before it gives up with SQLITE_BUSY.
const defaultBusyTimeout = 5 * time.Second

// DB is an open cache database. It is safe for concurrent use by multiple
// goroutines; see the package documentation for use from several processes.
type DB struct {
	sql    *sql.DB
	path   string
	closed atomic.Bool
	// file is the database file as opened (nil in memory): a write
	// transaction first checks that path still names it (see ErrGone).
	file fs.FileInfo
	// w orders this process's write transactions (writer.go).
	w writer

	closeOnce sync.Once
}

// Options adjust OpenWith. The zero value is what Open uses.
type Options struct {
	// BusyTimeout is how long a statement waits for a lock held by another
	// connection or process before it fails with an error matching
	// ErrLocked. Zero means 5 s; it is never unbounded.
	BusyTimeout time.Duration
	// MaxSize caps the database file, in bytes, rounded down to whole pages;
	// a write that would grow the file past it fails with an error matching
	// ErrFull and stores nothing. A cap below the file's current size keeps
	// the current size. Zero means no cap other than the disk's.
	MaxSize int64
	// ReadOnly opens an existing file without writing to it: the file is not
	// created, its mode not tightened, its schema not migrated (an older
	// schema is an error), and every write fails with an error matching
	// ErrReadOnly. SQLite still needs the -wal and -shm files beside the
	// database: they must exist, or the directory be writable.
	ReadOnly bool
}

// options are the knobs Open fixes, which tests turn.
type options struct {
	busyTimeout time.Duration
	maxSize     int64
	readOnly    bool
}

// Open opens the cache database at path, creating it if needed, and brings
// its schema up to date.
//
// The file, and SQLite's -wal and -shm files beside it, are created mode 0600
// (an existing file with a looser mode is tightened to 0600). The directory
// must exist. The database runs in WAL mode with a 5 s busy timeout,
// immediate write transactions and foreign keys enforced.
//
// An empty path opens a private in-memory database, gone after Close.
//
// If the file's schema is newer than this package knows, Open returns an
// error matching ErrSchemaTooNew and leaves the file alone.
//
// ctx bounds the opening and the migrations only; the DB lives until Close.
//
// Open's errors match ErrReadOnly (the file or directory cannot be written),
// ErrCorrupt (the file is not a database, or its schema or the small tables
// a login reads are malformed; the message tables are not scanned), ErrLocked
// or ErrFull when the file shows that fault; see MoveAside for a corrupt file.
func Open(ctx context.Context, path string) (*DB, error) {
	return OpenWith(ctx, path, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, path string, o Options) (*DB, error) {
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = defaultBusyTimeout
	}
	if o.ReadOnly && path == "" {
		return nil, errors.New("cache: open: a read-only database needs a file")
	}
	return open(ctx, path, options{busyTimeout: o.BusyTimeout, maxSize: max(o.MaxSize, 0), readOnly: o.ReadOnly})
}

func open(ctx context.Context, path string, o options) (*DB, error) {
	fail := func(err error) (*DB, error) {
		return nil, fmt.Errorf("cache: open %s: %w", path, classify(err))
	}
	var file fs.FileInfo
	if path != "" {
		var err error
		if o.readOnly {
			file, err = os.Stat(path)
		} else {
			file, err = prepareFile(path)
		}
		if err != nil {
			return fail(err)
		}
	}
	dsn, err := dataSourceName(path, o)
	if err != nil {
		return fail(err)
	}
	sdb := sql.OpenDB(&connector{dsn: dsn, drv: &sqlite3.SQLiteDriver{ConnectHook: o.connectHook}})
	if path == "" {
		// Each connection to ":memory:" is a database of its own: keep
		// exactly one, for ever.
		sdb.SetMaxOpenConns(1)
		sdb.SetMaxIdleConns(1)
		sdb.SetConnMaxLifetime(0)
		sdb.SetConnMaxIdleTime(0)
	}
	db := &DB{sql: sdb, path: path, file: file}
	if err := db.init(ctx, o); err != nil {
		_ = sdb.Close()
		return fail(err)
	}
	return db, nil
}

// connector opens connections of one DB: go-sqlite3 with pipebind's
// connection setup (see connectHook) and the DB's options.
type connector struct {
	dsn string
	drv *sqlite3.SQLiteDriver
}

func (c *connector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c *connector) Driver() driver.Driver                        { return c.drv }

// connectHook prepares each new connection of a DB opened with o.
func (o options) connectHook(c *sqlite3.SQLiteConn) error {
	if err := connectHook(c); err != nil {
		return err
	}
	if o.maxSize <= 0 {
		return nil
	}
	// max_page_count is per connection and counts pages: set it on each.
	rows, err := c.Query("PRAGMA page_size", nil)
	if err != nil {
		return err
	}
	v := make([]driver.Value, 1)
	err = rows.Next(v)
	_ = rows.Close()
	if err != nil {
		return err
	}
	size, ok := v[0].(int64)
	if !ok || size <= 0 {
		return fmt.Errorf("page size %v", v[0])
	}
	_, err = c.Exec("PRAGMA max_page_count = "+strconv.FormatInt(max(o.maxSize/size, 1), 10), nil)
	return err
}

// init connects, switches a file to WAL mode, migrates and checks the modes
// of the files SQLite made.
func (db *DB) init(ctx context.Context, o options) error {
	if err := db.sql.PingContext(ctx); err != nil {
		return err
	}
	switch {
	case db.path == "":
	case o.readOnly:
		if err := checkWAL(ctx, db.sql); err != nil {
			return err
		}
	default:
		if err := enableWAL(ctx, db.sql, o.busyTimeout); err != nil {
			return err
		}
	}
	if o.readOnly {
		v, err := userVersion(ctx, db.sql)
		if err != nil {
			return err
		}
		if v > len(migrations) {
			return fmt.Errorf("%w (file at version %d, code knows up to %d)", ErrSchemaTooNew, v, len(migrations))
		}
		if v < len(migrations) {
			return fmt.Errorf("%w: schema version %d needs migrating to %d", ErrReadOnly, v, len(migrations))
		}
	} else if err := migrate(ctx, db, migrations); err != nil {
		return err
	}
	if err := checkTables(ctx, db.sql); err != nil {
		return err
	}
	if db.path == "" || o.readOnly {
		return nil
	}
	// An idle connection is now in the pool, with the -wal and -shm files
	// open. SQLite gives them the database file's mode; make sure.
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := tightenMode(db.path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// checkTables runs SQLite's quick_check on the schema and on each table a
// login reads (all but the message store's, which are large and checked as
// they are read), so that a malformed one fails Open with ErrCorrupt rather
// than a login later. They hold a few rows each: this costs microseconds.
func checkTables(ctx context.Context, q querier) error {
	for _, table := range []string{"sqlite_schema", "server_features", "installation", "scram_keys", "fast_tokens", "mechanism_pins", "sync_state"} {
		var res string
		// PRAGMA takes no bound parameters; the names are ours.
		if err := q.QueryRowContext(ctx, "PRAGMA quick_check("+table+")").Scan(&res); err != nil {
			return fmt.Errorf("check %s: %w", table, err)
		}
		if res != "ok" {
			return fmt.Errorf("check %s: %w: %s", table, ErrCorrupt, truncate(res, 200))
		}
	}
	return nil
}

// truncate shortens s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// prepareFile creates the database file with mode 0600 unless it exists,
// and tightens the modes of the file and of any -wal and -shm left beside
// it to 0600. It returns the file's FileInfo.
func prepareFile(path string) (fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := tightenMode(path); err != nil {
		return nil, err
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := tightenMode(path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return fi, nil
}

// tightenMode sets the permission bits of path to 0600 if they differ.
func tightenMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm() == fileMode {
		return nil
	}
	return os.Chmod(path, fileMode)
}

// dataSourceName is the go-sqlite3 DSN for path ("" for in-memory). The
// keys starting with "_" are go-sqlite3's, applied on every new connection
// of the pool:
//
//   - _synchronous=NORMAL: with WAL, durable against application crashes; a
//     power loss may drop the last commits, never corrupt the file. Fine for
//     a cache.
//   - _busy_timeout: wait this many ms for a lock before SQLITE_BUSY.
//   - _txlock=immediate: BEGIN IMMEDIATE for every database/sql transaction,
//     so a transaction that reads then writes holds the write lock from the
//     start and cannot fail half-way with an unretriable SQLITE_BUSY.
//   - _foreign_keys=1: enforce REFERENCES clauses (off by default in SQLite).
//   - _secure_delete=on: overwrite deleted content with zeros.
//
// WAL mode is not among them: enableWAL sets it, once per file.
//
// A file path is passed as an absolute "file:" URI, escaped, so that no
// character of the path ("?", "#", "%") is read as URI syntax.
func dataSourceName(path string, o options) (string, error) {
	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(o.busyTimeout.Milliseconds(), 10))
	q.Set("_txlock", "immediate")
	q.Set("_foreign_keys", "1")
	q.Set("_secure_delete", "on")
	if path == "" {
		return ":memory:?" + q.Encode(), nil
	}
	q.Set("_synchronous", "NORMAL")
	if o.readOnly {
		q.Set("mode", "ro") // SQLite's own URI key
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	abs = filepath.ToSlash(abs)
	if abs[0] != '/' {
		abs = "/" + abs // a Windows drive letter: file:///C:/…
	}
	u := url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}
	return u.String(), nil
}

// enableWAL puts the database file in WAL mode, in which readers do not
// block the writer nor each other, across processes too. The mode is stored
// in the file: connections opened later use it without asking.
//
// It is not set in the DSN because the switch is the one step that the busy
// timeout does not cover. Switching needs the write lock after the switching
// connection has taken a read lock, and SQLite refuses such an upgrade with
// an immediate SQLITE_BUSY, whatever the timeout, when another connection
// holds a lock (waiting could deadlock). Several processes opening a fresh
// file at once meet exactly that; so the switch is retried here, with a short
// randomized backoff, for up to the busy timeout. On a file already in WAL
// mode the pragma only reads, and succeeds at once.
func enableWAL(ctx context.Context, h *sql.DB, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	backoff := time.Millisecond
	for {
		var mode string
		err := h.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode)
		if err == nil {
			if !strings.EqualFold(mode, "wal") {
				return fmt.Errorf("enable WAL: journal mode is %q", mode)
			}
			return nil
		}
		if !isBusy(err) || time.Now().After(deadline) {
			return fmt.Errorf("enable WAL: %w", err)
		}
		wait := backoff/2 + rand.N(backoff) // 0.5 to 1.5 backoff: no lockstep
		backoff = min(2*backoff, 50*time.Millisecond)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("enable WAL: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// checkWAL checks, without writing, that a file opened read-only is in WAL
// mode (pipebind never leaves one in another mode).
func checkWAL(ctx context.Context, h *sql.DB) error {
	var mode string
	if err := h.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q", mode)
	}
	return nil
}

// isBusy reports whether err is SQLite's SQLITE_BUSY or SQLITE_LOCKED.
func isBusy(err error) bool {
	var serr sqlite3.Error
	return errors.As(err, &serr) && (serr.Code == sqlite3.ErrBusy || serr.Code == sqlite3.ErrLocked)
}

// Path returns the path the DB was opened with, "" for in-memory.
func (db *DB) Path() string { return db.path }

// Close closes the database. It waits for running calls to finish; calls
// made afterwards return an error matching ErrClosed. Close is idempotent:
// later calls do nothing and return nil.
func (db *DB) Close() error {
	var err error
	db.closeOnce.Do(func() {
		db.closed.Store(true)
		if cerr := db.sql.Close(); cerr != nil {
			err = fmt.Errorf("cache: close: %w", cerr)
		}
	})
	return err
}

// handle returns the pool, or ErrClosed after Close.
func (db *DB) handle() (*sql.DB, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	return db.sql, nil
}

// withTx runs fn in a transaction (BEGIN IMMEDIATE, see dataSourceName),
// after the process's other write transactions on the file (writer.go), and
// commits it if fn returns nil. It rolls back in every other case: an error
// from fn, a panic in fn, or a cancelled ctx.
//
// Its error matches ErrLocked, ErrReadOnly, ErrCorrupt, ErrFull or ErrGone
// when it shows that fault. Before fn runs, with the write lock held, it
// checks that the file is still the one opened (ErrGone otherwise): SQLite
// keeps writing to a deleted file, whose content then vanishes at Close.
func (db *DB) withTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	h, err := db.handle()
	if err != nil {
		return err
	}
	if err := db.w.acquire(ctx); err != nil {
		return err
	}
	defer db.w.release()
	tx, err := h.BeginTx(ctx, nil)
	if err != nil {
		return classify(err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	if err := db.checkFile(); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return classify(err)
	}
	// Commit ends the transaction even when it fails (go-sqlite3 then rolls
	// back), so Rollback has nothing left to do.
	committed = true
	return classify(tx.Commit())
}

// checkFile returns an error matching ErrGone when the DB's path no longer
// names the file opened. An in-memory DB has no file.
func (db *DB) checkFile() error {
	if db.file == nil {
		return nil
	}
	fi, err := os.Stat(db.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s no longer exists", ErrGone, db.path)
	case err != nil:
		return classify(err)
	case !os.SameFile(fi, db.file):
		return fmt.Errorf("%w: %s is another file now", ErrGone, db.path)
	}
	return nil
}
