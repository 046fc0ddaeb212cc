package cache

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"
)

// Faults of the database file (issue 7, item 3): locked by another process,
// read-only (readonly_dbfault_test.go), corrupt, full, deleted while open.
// The feature cache, keys, tokens and pins are a cache; messages, cursor and
// markers are data: a failed write stores nothing, and the error says which
// fault it was.

// Environment of TestDBFaultHelperProcess.
const (
	faultHelperEnv   = "PIPEBIND_CACHE_FAULT_HELPER" // the child's job
	faultHelperDBEnv = "PIPEBIND_CACHE_FAULT_DB"
	faultHoldEnv     = "PIPEBIND_CACHE_FAULT_HOLD" // how long "hold" holds the lock after "go"
)

// TestDBFaultHelperProcess is not a test: the fault tests run the test
// binary again with -test.run=^TestDBFaultHelperProcess$ and the environment
// above, and this is the child's work (see faultHelperMain).
func TestDBFaultHelperProcess(t *testing.T) {
	job := os.Getenv(faultHelperEnv)
	if job == "" {
		return // not a child: nothing to do
	}
	if err := faultHelperMain(job, os.Getenv(faultHelperDBEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// faultHelperMain runs one job of a helper process:
//
//   - "immediate": holds a write transaction (BEGIN IMMEDIATE) on the file,
//     prints "locked", waits for a line on stdin, keeps the lock for
//     PIPEBIND_CACHE_FAULT_HOLD more, rolls back, prints
//     "released <unix ns>" and exits.
//   - "exclusive": the same with locking_mode EXCLUSIVE, which keeps even
//     readers of other processes out.
//   - "readonly": runs the read-only checks (readonly_dbfault_test.go),
//     printing "ok" or failing.
func faultHelperMain(job, path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if job == "readonly" {
		return readOnlyChecks(ctx, path, os.Stdout)
	}
	hold, err := time.ParseDuration(os.Getenv(faultHoldEnv))
	if err != nil {
		return err
	}
	// A plain go-sqlite3 connection: another program holding the lock.
	h, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		return err
	}
	defer h.Close()
	conn, err := h.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	switch job {
	case "immediate":
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			return err
		}
	case "exclusive":
		// In WAL mode, EXCLUSIVE locking keeps the lock from the first
		// write on, and other processes cannot even read.
		for _, q := range []string{"PRAGMA locking_mode = EXCLUSIVE", "BEGIN IMMEDIATE",
			"UPDATE server_features SET seen_at = seen_at", "COMMIT", "BEGIN IMMEDIATE"} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
	default:
		return fmt.Errorf("unknown job %q", job)
	}
	fmt.Println("locked")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return err
	}
	// The fault's shape: a lock held this long by someone else.
	t := time.NewTimer(hold)
	<-t.C
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		return err
	}
	fmt.Printf("released %d\n", time.Now().UnixNano())
	return nil
}

// helper is a running helper process.
type helper struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan struct{}
	err   bytes.Buffer
}

// startHelper runs job on path in a helper process and waits for its first
// line (want).
func startHelper(t *testing.T, job, path string, hold time.Duration, want string) *helper {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	h := &helper{t: t, lines: make(chan string, 8), done: make(chan struct{})}
	h.cmd = exec.CommandContext(ctx, exe, "-test.run=^TestDBFaultHelperProcess$", "-test.count=1")
	h.cmd.Env = append(os.Environ(), faultHelperEnv+"="+job, faultHelperDBEnv+"="+path, faultHoldEnv+"="+hold.String())
	h.cmd.Stderr = &h.err
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(h.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	t.Cleanup(func() {
		h.stdin.Close()
		<-h.done
		_ = h.cmd.Wait()
		cancel()
	})
	h.expect(want)
	return h
}

// expect waits for the helper's next line, which must start with prefix,
// and returns the rest.
func (h *helper) expect(prefix string) string {
	h.t.Helper()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-h.lines:
			if !ok {
				<-h.done
				h.t.Fatalf("helper ended before %q: %v\nstderr:\n%s", prefix, h.cmd.Wait(), &h.err)
			}
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				return strings.TrimSpace(rest)
			}
			// go test's own output (PASS, ...) is not ours.
		case <-timer.C:
			h.t.Fatalf("helper: no %q within 30 s", prefix)
		}
	}
}

// release tells the helper to let go of the lock (after its hold time).
func (h *helper) release() {
	h.t.Helper()
	if _, err := io.WriteString(h.stdin, "go\n"); err != nil {
		h.t.Fatal(err)
	}
}

// seeded returns a file holding features, a FAST token, keys and 100
// messages of account, closed.
func seeded(t *testing.T) (path string, msgs []Message) {
	t.Helper()
	ctx := t.Context()
	path = filepath.Join(t.TempDir(), "cache.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	msgs = archive("m", 300)
	mustAppend(t, db, msgs[:100], msgs[99].StanzaID, 100, 0)
	f := fullFeatures()
	tok := FastToken{Mechanism: "HT-SHA-256-NONE", Token: []byte("tok"), Expiry: time.Now().Add(time.Hour)}
	if err := db.RecordLogin(ctx, LoginRecord{Account: account, Features: &f, Token: &tok, Pin: "SCRAM-SHA-256"}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutScramKeys(ctx, account, ScramKeys{Mechanism: "SCRAM-SHA-256", Salt: []byte("salt"), Iterations: 4096,
		ClientKey: []byte("ck"), ServerKey: []byte("sk")}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.InstallationID(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path, msgs
}

// checkUnchanged checks that db still holds exactly msgs[:n] of account,
// with the cursor at the last of them.
func checkUnchanged(t *testing.T, db *DB, msgs []Message, n int) {
	t.Helper()
	if got, err := db.CountMessages(t.Context(), account); err != nil || got != n {
		t.Errorf("CountMessages = %d, %v; want %d", got, err, n)
	}
	if c, err := db.Cursor(t.Context(), account); err != nil || c != msgs[n-1].StanzaID {
		t.Errorf("Cursor = %q, %v; want %s", c, err, msgs[n-1].StanzaID)
	}
}

// isFault checks that err matches want and no other fault, still wraps the
// SQLite error (when sqliteCode is not 0) and names the operation.
func isFault(t *testing.T, what string, err, want error, sqliteCode sqlite3.ErrNo) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want an error matching %q", what, err, want)
		return
	}
	for _, other := range []error{ErrLocked, ErrReadOnly, ErrCorrupt, ErrFull, ErrGone} {
		if other != want && errors.Is(err, other) {
			t.Errorf("%s: %v also matches %q", what, err, other)
		}
	}
	var serr sqlite3.Error
	if sqliteCode != 0 && (!errors.As(err, &serr) || serr.Code != sqliteCode) {
		t.Errorf("%s: %v does not wrap SQLite's %v", what, err, sqliteCode)
	}
	if !strings.HasPrefix(err.Error(), "cache: ") {
		t.Errorf("%s: %q does not say where it failed", what, err)
	}
}

// TestFaultLockedByProcess: another process holds the write lock.
func TestFaultLockedByProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes") // -short only
	}
	ctx := t.Context()

	t.Run("held past the busy timeout", func(t *testing.T) {
		path, msgs := seeded(t)
		const timeout = 300 * time.Millisecond
		db, err := OpenWith(ctx, path, Options{BusyTimeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		h := startHelper(t, "immediate", path, 0, "locked")

		// Each write waits for the timeout, no more, and fails with
		// ErrLocked; nothing is stored.
		for _, w := range []struct {
			name string
			fn   func() error
		}{
			{"AppendMessages", func() error {
				_, _, err := db.AppendMessages(ctx, account, msgs[100:200], msgs[199].StanzaID)
				return err
			}},
			{"MarkDisplayed", func() error { _, err := db.MarkDisplayed(ctx, account, msgs[0].Peer, msgs[0].StanzaID); return err }},
			{"PutFeatures", func() error { return db.PutFeatures(ctx, fullFeatures()) }},
			{"RecordLogin", func() error { return db.RecordLogin(ctx, LoginRecord{Account: account, Pin: "PLAIN"}) }},
			{"PutScramKeys", func() error {
				return db.PutScramKeys(ctx, account, ScramKeys{Mechanism: "SCRAM-SHA-1", ClientKey: []byte("c"), ServerKey: []byte("s")})
			}},
		} {
			start := time.Now()
			err := w.fn()
			took := time.Since(start)
			isFault(t, w.name, err, ErrLocked, sqlite3.ErrBusy)
			if took < timeout || took > timeout+5*time.Second {
				t.Errorf("%s failed after %v, want the busy timeout (%v)", w.name, took, timeout)
			}
		}
		// WAL: readers are not blocked.
		if _, ok, err := db.Features(ctx, "example.org"); err != nil || !ok {
			t.Errorf("Features while locked: %v, %v", ok, err)
		}
		checkUnchanged(t, db, msgs, 100)

		h.release()
		h.expect("released")
		mustAppend(t, db, msgs[100:200], msgs[199].StanzaID, 100, 0)
		checkUnchanged(t, db, msgs, 200)
	})

	t.Run("held briefly is waited for", func(t *testing.T) {
		path, msgs := seeded(t)
		db, err := Open(ctx, path) // the default 5 s busy timeout
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		// The helper holds the lock for 400 ms after "go". A write started
		// before the release can only commit after it: success proves the
		// wait. If this process was too slow to start the write before the
		// release, the round proves nothing and runs again.
		for round := 0; ; round++ {
			if round == 5 {
				t.Fatal("5 rounds without a write started while the lock was held")
			}
			h := startHelper(t, "immediate", path, 400*time.Millisecond, "locked")
			lo, hi := 100+20*round, 120+20*round
			h.release()
			start := time.Now()
			_, _, err := db.AppendMessages(ctx, account, msgs[lo:hi], msgs[hi-1].StanzaID)
			end := time.Now()
			if err != nil {
				t.Fatalf("a write during a brief lock: %v", err)
			}
			ns, err := strconv.ParseInt(h.expect("released"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			released := time.Unix(0, ns)
			checkUnchanged(t, db, msgs, hi)
			if start.Before(released) {
				if !end.After(released) {
					t.Errorf("the write ended at %v, before the lock was released at %v", end, released)
				}
				return
			}
		}
	})

	t.Run("exclusive lock keeps readers out", func(t *testing.T) {
		path, _ := seeded(t)
		h := startHelper(t, "exclusive", path, 0, "locked")
		const timeout = 300 * time.Millisecond
		start := time.Now()
		db, err := OpenWith(ctx, path, Options{BusyTimeout: timeout})
		took := time.Since(start)
		if err == nil {
			db.Close()
			t.Fatal("Open succeeded while another process held an exclusive lock")
		}
		isFault(t, "Open", err, ErrLocked, sqlite3.ErrBusy)
		if took < timeout || took > timeout+5*time.Second {
			t.Errorf("Open failed after %v, want about the busy timeout (%v)", took, timeout)
		}
		h.release()
		h.expect("released")
		db, err = OpenWith(ctx, path, Options{BusyTimeout: timeout})
		if err != nil {
			t.Fatalf("Open after the lock was released: %v", err)
		}
		db.Close()
	})
}

// pageOf returns the byte offset of the root page of table in the closed
// database file at path.
func pageOf(t *testing.T, path, table string) (offset, pageSize int64) {
	t.Helper()
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var root int64
	if err := db.sql.QueryRowContext(t.Context(), `SELECT rootpage FROM sqlite_schema WHERE name = ?`, table).Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := db.sql.QueryRowContext(t.Context(), `PRAGMA page_size`).Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	return (root - 1) * pageSize, pageSize
}

// scribble writes n bytes of garbage at off in the file at path.
func scribble(t *testing.T, path string, off int64, n int) {
	t.Helper()
	garbage := make([]byte, n)
	for i := range garbage {
		garbage[i] = byte(i*7 + 3)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(garbage, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFaultCorrupt: garbage over the header, over a table the login reads,
// over the messages.
func TestFaultCorrupt(t *testing.T) {
	ctx := t.Context()

	t.Run("header", func(t *testing.T) {
		path, _ := seeded(t)
		scribble(t, path, 0, 100)
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Open(ctx, path)
		isFault(t, "Open", err, ErrCorrupt, sqlite3.ErrNotADB)
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, before) {
			t.Fatalf("Open changed the corrupt file (%v)", err)
		}
		moved, err := MoveAside(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(moved, path+".corrupt-") {
			t.Errorf("moved to %s", moved)
		}
		if got, err := os.ReadFile(moved); err != nil || !bytes.Equal(got, before) {
			t.Errorf("the moved file differs from the corrupt one (%v)", err)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still exists after MoveAside: %v", path, err)
		}
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("Open after MoveAside: %v", err)
		}
		defer db.Close()
		if n, err := db.CountMessages(ctx, account); err != nil || n != 0 {
			t.Errorf("fresh file: %d messages, %v", n, err)
		}
	})

	t.Run("login table", func(t *testing.T) {
		path, _ := seeded(t)
		off, size := pageOf(t, path, "fast_tokens")
		scribble(t, path, off+8, int(size)-16)
		_, err := Open(ctx, path)
		isFault(t, "Open", err, ErrCorrupt, 0)
	})

	t.Run("messages", func(t *testing.T) {
		path, msgs := seeded(t)
		off, size := pageOf(t, path, "messages")
		scribble(t, path, off, int(size))
		// The message store is not scanned at Open (it is large): the
		// login's tables are fine, the cache works.
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer db.Close()
		if _, ok, err := db.Features(ctx, "example.org"); err != nil || !ok {
			t.Errorf("Features: %v, %v", ok, err)
		}
		_, _, err = db.AppendMessages(ctx, account, msgs[100:200], msgs[199].StanzaID)
		isFault(t, "AppendMessages", err, ErrCorrupt, sqlite3.ErrCorrupt)
		_, err = db.Messages(ctx, account, MessageQuery{})
		isFault(t, "Messages", err, ErrCorrupt, sqlite3.ErrCorrupt)
		// Nothing moved: the next sync starts from the same cursor.
		if c, err := db.Cursor(ctx, account); err != nil || c != msgs[99].StanzaID {
			t.Errorf("Cursor = %q, %v; want %s", c, err, msgs[99].StanzaID)
		}
	})

	t.Run("not a database", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "notes.txt")
		if err := os.WriteFile(path, bytes.Repeat([]byte("not a database\n"), 500), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(ctx, path)
		isFault(t, "Open", err, ErrCorrupt, sqlite3.ErrNotADB)
	})
}

// TestFaultFull: the disk fills up (simulated with SQLite's page cap).
func TestFaultFull(t *testing.T) {
	ctx := t.Context()
	path, msgs := seeded(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := OpenWith(ctx, path, Options{MaxSize: fi.Size()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// 200 messages with 4 KiB bodies cannot fit in the pages free.
	big := append([]Message(nil), msgs[100:]...)
	for i := range big {
		big[i].Body = strings.Repeat("x", 4096)
	}
	_, _, err = db.AppendMessages(ctx, account, big, big[len(big)-1].StanzaID)
	isFault(t, "AppendMessages", err, ErrFull, sqlite3.ErrFull)
	checkUnchanged(t, db, msgs, 100)
	// Reading still works, and so does a write that fits.
	if _, ok, err := db.Features(ctx, "example.org"); err != nil || !ok {
		t.Errorf("Features: %v, %v", ok, err)
	}
	if _, err := db.MarkDisplayed(ctx, account, msgs[0].Peer, msgs[0].StanzaID); err != nil {
		t.Errorf("MarkDisplayed, which needs no new page: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Space again: the same messages are stored.
	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustAppend(t, db, big, big[len(big)-1].StanzaID, len(big), 0)
	checkUnchanged(t, db, msgs, 300)
}

// TestFaultDeleted: the file is deleted, or replaced, while open. SQLite
// would go on writing to the deleted file, which vanishes at Close: writes
// are refused instead.
func TestFaultDeleted(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name  string
		fault func(t *testing.T, path string)
	}{
		{"deleted", func(t *testing.T, path string) {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if err := os.Remove(path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
					t.Fatal(err)
				}
			}
		}},
		{"deleted, WAL kept", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced", func(t *testing.T, path string) {
			other := path + ".new"
			if err := os.WriteFile(other, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(other, path); err != nil {
				t.Fatal(err)
			}
		}},
		{"moved aside", func(t *testing.T, path string) {
			if _, err := MoveAside(path); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, msgs := seeded(t)
			db, err := Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			tc.fault(t, path)
			_, _, err = db.AppendMessages(ctx, account, msgs[100:200], msgs[199].StanzaID)
			isFault(t, "AppendMessages", err, ErrGone, 0)
			isFault(t, "RecordLogin", db.RecordLogin(ctx, LoginRecord{Account: account, Pin: "PLAIN"}), ErrGone, 0)
			_, err = db.MarkDisplayed(ctx, account, msgs[0].Peer, msgs[0].StanzaID)
			isFault(t, "MarkDisplayed", err, ErrGone, 0)
			checkUnchanged(t, db, msgs, 100) // reads see the open file
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			// Opening the path anew gives a working (fresh) database.
			db2, err := Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer db2.Close()
			mustAppend(t, db2, msgs[:10], msgs[9].StanzaID, 10, 0)
		})
	}
}

// TestFaultClassify maps each SQLite code and system error to its fault,
// keeping the text and the cause.
func TestFaultClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{sqlite3.Error{Code: sqlite3.ErrBusy}, ErrLocked},
		{sqlite3.Error{Code: sqlite3.ErrBusy, ExtendedCode: sqlite3.ErrBusySnapshot}, ErrLocked},
		{sqlite3.Error{Code: sqlite3.ErrLocked}, ErrLocked},
		{sqlite3.Error{Code: sqlite3.ErrReadonly}, ErrReadOnly},
		{sqlite3.Error{Code: sqlite3.ErrPerm}, ErrReadOnly},
		{sqlite3.Error{Code: sqlite3.ErrReadonly, ExtendedCode: sqlite3.ErrReadonlyDbMoved}, ErrGone},
		{sqlite3.Error{Code: sqlite3.ErrCorrupt}, ErrCorrupt},
		{sqlite3.Error{Code: sqlite3.ErrNotADB}, ErrCorrupt},
		{sqlite3.Error{Code: sqlite3.ErrFull}, ErrFull},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.ENOSPC}, ErrFull},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.EROFS}, ErrReadOnly},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.EACCES}, ErrReadOnly},
		{sqlite3.Error{Code: sqlite3.ErrConstraint}, nil},
		{sqlite3.Error{Code: sqlite3.ErrIoErr}, nil},
		{errors.New("other"), nil},
		{context.Canceled, nil},
	} {
		wrapped := fmt.Errorf("step: %w", tc.err)
		got := classify(wrapped)
		if got.Error() != wrapped.Error() {
			t.Errorf("%v: text changed to %q", tc.err, got)
		}
		if !errors.Is(got, tc.err) {
			t.Errorf("%v: the cause is lost", tc.err)
		}
		for _, fault := range []error{ErrLocked, ErrReadOnly, ErrCorrupt, ErrFull, ErrGone} {
			if errors.Is(got, fault) != (fault == tc.want) {
				t.Errorf("%v: errors.Is(%q) = %v", tc.err, fault, errors.Is(got, fault))
			}
		}
		if again := classify(got); again != got {
			t.Errorf("%v: classified twice", tc.err)
		}
	}
	if classify(nil) != nil {
		t.Error("classify(nil) is not nil")
	}
}

// TestMoveAside moves the WAL with the file, never replaces a file, and
// reports a missing one.
func TestMoveAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.db")
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var moved []string
	for i := range 3 {
		write(path, "db"+strconv.Itoa(i))
		write(path+"-wal", "wal"+strconv.Itoa(i))
		m, err := MoveAside(path)
		if err != nil {
			t.Fatal(err)
		}
		moved = append(moved, m)
		for suffix, want := range map[string]string{"": "db", "-wal": "wal"} {
			if got, err := os.ReadFile(m + suffix); err != nil || string(got) != want+strconv.Itoa(i) {
				t.Errorf("move %d: %s holds %q (%v)", i, m+suffix, got, err)
			}
			if _, err := os.Stat(path + suffix); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("move %d: %s left behind", i, path+suffix)
			}
		}
		if _, err := os.Stat(m + "-shm"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("move %d: an -shm appeared", i)
		}
	}
	if moved[0] == moved[1] || moved[1] == moved[2] || moved[0] == moved[2] {
		t.Errorf("the same name twice: %v", moved)
	}
	if _, err := MoveAside(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("MoveAside of a missing file: %v", err)
	}
}
