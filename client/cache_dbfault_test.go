package client_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"
	"github.com/rs/zerolog"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
	"github.com/pipebind/pipebind/login"
)

// Faults of the cache file seen from the client (issue 7, item 3): the
// login always works; features, keys and tokens are rebuilt with a warning;
// messages are never dropped silently: the sync fails with a typed error,
// the cursor stays, and the next sync brings the messages.

// logBuffer is a zerolog destination safe for the client's goroutines.
type logBuffer struct{ syncWriter }

func newLogBuffer() *logBuffer { return &logBuffer{syncWriter{w: &bytes.Buffer{}}} }

func (b *logBuffer) logger() zerolog.Logger { return zerolog.New(b).Level(zerolog.DebugLevel) }

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.(*bytes.Buffer).String()
}

// warned reports whether a warning (or worse) line contains all of subs.
func (b *logBuffer) warned(subs ...string) bool {
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `"level":"warn"`) && !strings.Contains(line, `"level":"error"`) {
			continue
		}
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			return true
		}
	}
	return false
}

// faultSetup is a server whose archive alice has synced into the cache file
// path, which is closed.
func faultSetup(t *testing.T, path string, n int) *xmpptest.Server {
	t.Helper()
	s := newTestServer(t, xmpptest.Config{})
	s.InjectArchiveBulk("alice", "bob@localhost", n, true)
	cfg := testConfig(t, s, "alice", nil)
	cfg.CachePath = path
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	syncReport(t, c)
	c.Close()
	return s
}

// storeOf opens path and returns alice's stored ids and cursor.
func storeOf(t *testing.T, path string) (ids []string, cursor string) {
	t.Helper()
	db, err := cache.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cursor, err = db.Cursor(context.Background(), "alice@localhost")
	if err != nil {
		t.Fatal(err)
	}
	return storeIDs(t, db, "alice@localhost"), cursor
}

// dialSync logs in with cfg and returns the client's Info and the sync's
// error; the client is closed.
func dialSync(t *testing.T, cfg client.Config) (client.Info, error) {
	t.Helper()
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("the login failed: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err = c.SyncReport(ctx)
	return c.Info(), err
}

// checkHealed logs in once more with a healthy cache: the store must then
// equal the archive.
func checkHealed(t *testing.T, s *xmpptest.Server, path string) {
	t.Helper()
	cfg := testConfig(t, s, "alice", nil)
	cfg.CachePath = path
	info, err := dialSync(t, cfg)
	if err != nil {
		t.Fatalf("sync once the cache is healthy: %v", err)
	}
	if info.CacheFault != nil {
		t.Errorf("CacheFault %v on a healthy cache", info.CacheFault)
	}
	ids, _ := storeOf(t, path)
	if err := equalIDs(ids, archiveIDs(s, "alice")); err != nil {
		t.Fatal(err)
	}
}

// cacheFault returns info's *client.CacheError, failing unless it matches
// want.
func cacheFault(t *testing.T, info client.Info, want error) *client.CacheError {
	t.Helper()
	var fe *client.CacheError
	if !errors.As(info.CacheFault, &fe) || !errors.Is(info.CacheFault, want) {
		t.Fatalf("Info.CacheFault = %v, want a *CacheError matching %q", info.CacheFault, want)
	}
	return fe
}

// noDelivery fails the test if OnMessage is called.
func noDelivery(t *testing.T) func(cache.StoredMessage) {
	return func(m cache.StoredMessage) { t.Errorf("message %s delivered though it was not stored", m.StanzaID) }
}

// scribbleAt writes garbage over n bytes at off in the file at path.
func scribbleAt(t *testing.T, path string, off int64, n int) {
	t.Helper()
	garbage := bytes.Repeat([]byte{0xa5, 0x5a, 0x3c}, n/3+1)[:n]
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

// rootPage returns the offset and size of table's root page in the closed
// file at path.
func rootPage(t *testing.T, path, table string) (off, size int64) {
	t.Helper()
	h, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var root int64
	if err := h.QueryRow(`SELECT rootpage FROM sqlite_schema WHERE name = ?`, table).Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := h.QueryRow(`PRAGMA page_size`).Scan(&size); err != nil {
		t.Fatal(err)
	}
	return (root - 1) * size, size
}

// TestCacheFaultCorrupt: garbage over the file's header, then over its
// message pages.
func TestCacheFaultCorrupt(t *testing.T) {
	t.Run("header", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "cache.db")
		s := faultSetup(t, path, 300)
		scribbleAt(t, path, 0, 100)
		corrupt, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s.InjectArchiveBulk("alice", "bob@localhost", 50, true)
		logs := newLogBuffer()
		cfg := testConfig(t, s, "alice", nil)
		cfg.CachePath, cfg.Logger = path, logs.logger()
		got := newDeliveries()
		cfg.OnMessage = got.on
		info, err := dialSync(t, cfg)
		if err != nil {
			t.Fatalf("sync into the fresh file: %v", err)
		}
		fe := cacheFault(t, info, cache.ErrCorrupt)
		if fe.MovedTo == "" || fe.NoCache || fe.ReadOnly || fe.Path != path {
			t.Errorf("CacheError %+v: want the file moved aside", fe)
		}
		if info.Source != login.SourceNetwork {
			t.Errorf("features from %v, want the network (the cache is new)", info.Source)
		}
		// Moved, never deleted: the corrupt bytes are kept, and the move
		// is reported.
		if kept, err := os.ReadFile(fe.MovedTo); err != nil || !bytes.Equal(kept, corrupt) {
			t.Errorf("%s does not hold the corrupt file (%v)", fe.MovedTo, err)
		}
		if !logs.warned("moved aside", fe.MovedTo) {
			t.Errorf("no warning names %s; log:\n%s", fe.MovedTo, logs)
		}
		// The fresh file got the whole archive again, each message
		// delivered once.
		want := archiveIDs(s, "alice")
		ids, _ := storeOf(t, path)
		if err := equalIDs(ids, want); err != nil {
			t.Fatal(err)
		}
		got.check(t, want)
	})

	t.Run("message pages", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "cache.db")
		s := faultSetup(t, path, 300)
		before, cursor := storeOf(t, path)
		off, size := rootPage(t, path, "messages")
		scribbleAt(t, path, off, int(size))
		s.InjectArchiveBulk("alice", "bob@localhost", 50, true)
		logs := newLogBuffer()
		cfg := testConfig(t, s, "alice", nil)
		cfg.CachePath, cfg.Logger, cfg.OnMessage = path, logs.logger(), noDelivery(t)
		info, err := dialSync(t, cfg)
		// The login's tables are intact: the cache serves the login.
		if info.CacheFault != nil || info.Source != login.SourceCache {
			t.Errorf("login: CacheFault %v, features from %v; want none, the cache", info.CacheFault, info.Source)
		}
		if !errors.Is(err, cache.ErrCorrupt) {
			t.Fatalf("sync into corrupt message pages: %v, want cache.ErrCorrupt", err)
		}
		var serr sqlite3.Error
		if !errors.As(err, &serr) || serr.Code != sqlite3.ErrCorrupt {
			t.Errorf("%v does not wrap SQLITE_CORRUPT", err)
		}
		// The cursor did not move: those messages come again.
		h, herr := sql.Open("sqlite3", "file:"+path+"?mode=ro")
		if herr != nil {
			t.Fatal(herr)
		}
		var c string
		if err := h.QueryRow(`SELECT cursor FROM sync_state`).Scan(&c); err != nil || c != cursor {
			t.Errorf("cursor %q (%v), want %q", c, err, cursor)
		}
		h.Close()
		if len(before) != 300 {
			t.Fatalf("%d messages before the fault", len(before))
		}
		// The application's repair: move the file aside; the next login
		// builds a new one from the archive.
		if _, err := cache.MoveAside(path); err != nil {
			t.Fatal(err)
		}
		checkHealed(t, s, path)
	})
}

// helperLock is the "lock-immediate" and "lock-exclusive" job: another
// program holding the write lock (exclusive: locking_mode EXCLUSIVE, which
// keeps readers out too). It prints "locked", waits for a line on stdin,
// holds on PIPEBIND_CLIENT_HELPER_HOLD longer, rolls back and prints
// "released".
func helperLock(ctx context.Context, job, path string) error {
	hold, err := time.ParseDuration(os.Getenv(helperHoldEnv))
	if err != nil {
		return err
	}
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
	qs := []string{"BEGIN IMMEDIATE"}
	if job == "lock-exclusive" {
		qs = []string{"PRAGMA locking_mode = EXCLUSIVE", "BEGIN IMMEDIATE",
			"UPDATE server_features SET seen_at = seen_at", "COMMIT", "BEGIN IMMEDIATE"}
	}
	for _, q := range qs {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	fmt.Println("locked")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return err
	}
	t := time.NewTimer(hold) // the fault's shape: a lock held this long
	<-t.C
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		return err
	}
	fmt.Println("released")
	return nil
}

// TestCacheFaultLocked: another process holds the cache's lock.
func TestCacheFaultLocked(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes") // -short only
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	lock := func(t *testing.T, s *xmpptest.Server, job, path string, hold time.Duration) *proc {
		p := startProc(t, job, exe, helperEnv(s, job, path, helperHoldEnv+"="+hold.String()), nil)
		p.next("locked")
		return p
	}

	t.Run("held past the busy timeout", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "cache.db")
		s := faultSetup(t, path, 300)
		_, cursor := storeOf(t, path)
		s.InjectArchiveBulk("alice", "bob@localhost", 100, true)
		p := lock(t, s, "lock-immediate", path, 0)
		db, err := cache.OpenWith(context.Background(), path, cache.Options{BusyTimeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		cfg := testConfig(t, s, "alice", db)
		cfg.OnMessage = noDelivery(t)
		info, err := dialSync(t, cfg)
		if info.Source != login.SourceCache {
			t.Errorf("features from %v: reading the cache must not wait for the writer", info.Source)
		}
		if !errors.Is(err, cache.ErrLocked) {
			t.Fatalf("sync while locked: %v, want cache.ErrLocked", err)
		}
		if n, err := db.CountMessages(context.Background(), "alice@localhost"); err != nil || n != 300 {
			t.Errorf("%d messages (%v), want the 300 held before", n, err)
		}
		if c, _ := db.Cursor(context.Background(), "alice@localhost"); c != cursor {
			t.Errorf("the cursor moved to %q", c)
		}
		p.send("go")
		p.next("released")
		db.Close()
		checkHealed(t, s, path)
	})

	t.Run("held briefly", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "cache.db")
		s := faultSetup(t, path, 300)
		s.InjectArchiveBulk("alice", "bob@localhost", 100, true)
		p := lock(t, s, "lock-immediate", path, 500*time.Millisecond)
		p.send("go")
		cfg := testConfig(t, s, "alice", nil)
		cfg.CachePath = path
		info, err := dialSync(t, cfg) // within the 5 s busy timeout: waited for
		if err != nil || info.CacheFault != nil {
			t.Fatalf("a lock held for 500 ms: sync %v, cache fault %v", err, info.CacheFault)
		}
		p.next("released")
		ids, _ := storeOf(t, path)
		if err := equalIDs(ids, archiveIDs(s, "alice")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("exclusive lock at open", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "cache.db")
		s := faultSetup(t, path, 300)
		s.InjectArchiveBulk("alice", "bob@localhost", 100, true)
		p := lock(t, s, "lock-exclusive", path, 0)
		logs := newLogBuffer()
		cfg := testConfig(t, s, "alice", nil)
		cfg.CachePath, cfg.Logger = path, logs.logger()
		start := time.Now()
		info, err := dialSync(t, cfg)
		if took := time.Since(start); took > 20*time.Second {
			t.Errorf("the login took %v: the wait for the lock must be bounded (5 s)", took)
		}
		fe := cacheFault(t, info, cache.ErrLocked)
		if !fe.NoCache {
			t.Errorf("CacheError %+v: want NoCache", fe)
		}
		if !errors.Is(err, client.ErrNoSync) || !errors.Is(err, cache.ErrLocked) {
			t.Errorf("SyncReport: %v, want ErrNoSync and cache.ErrLocked", err)
		}
		if !logs.warned("without a cache") {
			t.Errorf("no warning; log:\n%s", logs)
		}
		p.send("go")
		p.next("released")
		checkHealed(t, s, path)
	})
}

// TestCacheFaultFull: the disk fills up during the sync (simulated with
// cache.Options.MaxSize, SQLite's page cap).
func TestCacheFaultFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	s := faultSetup(t, path, 100)
	_, cursor := storeOf(t, path)
	s.InjectArchiveBulk("alice", "bob@localhost", 3000, true)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := cache.OpenWith(context.Background(), path, cache.Options{MaxSize: fi.Size()})
	if err != nil {
		t.Fatal(err)
	}
	logs := newLogBuffer()
	cfg := testConfig(t, s, "alice", db)
	cfg.OnMessage, cfg.Logger = noDelivery(t), logs.logger()
	_, err = dialSync(t, cfg)
	if !errors.Is(err, cache.ErrFull) {
		t.Fatalf("sync into a full disk: %v, want cache.ErrFull", err)
	}
	if n, err := db.CountMessages(context.Background(), "alice@localhost"); err != nil || n != 100 {
		t.Errorf("%d messages (%v), want the 100 held before", n, err)
	}
	if c, _ := db.Cursor(context.Background(), "alice@localhost"); c != cursor {
		t.Errorf("the cursor moved to %q", c)
	}
	if !logs.warned("reconcile failed", "full") {
		t.Errorf("no warning; log:\n%s", logs)
	}
	db.Close()
	checkHealed(t, s, path)
}

// TestCacheFaultDeletedMidRun: the cache file is deleted while the client
// runs; a live message then arrives. It is not stored into the deleted file
// (which would vanish at Close): the sync reports cache.ErrGone, and the
// next login builds a new file with everything. (Live messages are stored
// off the reading goroutine: the test waits for the store's error line.)
func TestCacheFaultDeletedMidRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	s := faultSetup(t, path, 200)
	bob, err := client.Dial(context.Background(), testConfig(t, s, "bob", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()

	arrived := make(chan struct{}, 1)
	stored := &logSignal{sub: "storing live messages failed", ch: make(chan struct{})}
	cfg := testConfig(t, s, "alice", nil)
	cfg.CachePath, cfg.OnMessage = path, noDelivery(t)
	cfg.Logger = zerolog.New(stored)
	cfg.Handler = xmpp.HandlerFunc(func(_ xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		if start.Name.Local == "message" {
			select {
			case arrived <- struct{}{}:
			default:
			}
		}
		return nil
	})
	var (
		alice    *client.Client
		errAtLog error
	)
	// The failure is in SyncReport by the time it is logged.
	stored.atLine = func() { _, errAtLog = alice.SyncReport(context.Background()) }
	alice, err = client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	syncReport(t, alice) // level
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	if err := sendChat(bob, "alice@localhost", "after the delete"); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []chan struct{}{arrived, stored.ch} {
		select {
		case <-ch:
		case <-time.After(20 * time.Second):
			t.Fatal("the live message did not arrive, or its store was not tried")
		}
	}
	if !errors.Is(errAtLog, cache.ErrGone) {
		t.Fatalf("SyncReport when the failure was logged: %v, want cache.ErrGone", errAtLog)
	}
	_, err = alice.SyncReport(context.Background())
	if !errors.Is(err, cache.ErrGone) {
		t.Fatalf("SyncReport after storing into a deleted file: %v, want cache.ErrGone", err)
	}
	alice.Close()
	checkHealed(t, s, path)
}

// logSignal is a log writer that closes ch at the first line containing
// sub.
type logSignal struct {
	sub string
	ch  chan struct{}
	// atLine, if set, runs on the logging goroutine at that first line,
	// before ch is closed: what a reader of the log can see then.
	atLine func()
	once   sync.Once
}

func (w *logSignal) Write(p []byte) (int, error) {
	if strings.Contains(string(p), w.sub) {
		w.once.Do(func() {
			if w.atLine != nil {
				w.atLine()
			}
			close(w.ch)
		})
	}
	return len(p), nil
}

// helperReadOnlyDial is the "readonly-dial" job, run by a process that
// cannot write the cache file (see TestCacheFaultReadOnly). It logs in with
// the file and prints "ok" when the login worked around it as
// PIPEBIND_CLIENT_HELPER_WANT says: "readonly" (the file used read-only: the
// cached features serve the login, the sync fails with cache.ErrReadOnly) or
// "nocache" (no cache: the sync is off, saying why).
func helperReadOnlyDial(ctx context.Context, path string) error {
	cfg, err := helperConfig()
	if err != nil {
		return err
	}
	logs := newLogBuffer()
	cfg.CachePath, cfg.Logger = path, logs.logger()
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		return fmt.Errorf("the login failed: %w", err)
	}
	defer c.Close()
	_, serr := c.SyncReport(ctx)
	info := c.Info()
	var fe *client.CacheError
	if !errors.As(info.CacheFault, &fe) || !errors.Is(fe, cache.ErrReadOnly) {
		return fmt.Errorf("Info.CacheFault = %v, want a *CacheError matching cache.ErrReadOnly", info.CacheFault)
	}
	switch want := os.Getenv(helperWantEnv); want {
	case "readonly":
		if !fe.ReadOnly || fe.NoCache || info.Source != login.SourceCache {
			return fmt.Errorf("CacheError %+v, features from %v: want the file read-only, its features used", fe, info.Source)
		}
		if !errors.Is(serr, cache.ErrReadOnly) {
			return fmt.Errorf("SyncReport: %v, want cache.ErrReadOnly", serr)
		}
		if !logs.warned("read-only") {
			return fmt.Errorf("no warning; log:\n%s", logs)
		}
	case "nocache":
		if !fe.NoCache || info.Source != login.SourceNetwork {
			return fmt.Errorf("CacheError %+v, features from %v: want no cache", fe, info.Source)
		}
		if !errors.Is(serr, client.ErrNoSync) || !errors.Is(serr, cache.ErrReadOnly) {
			return fmt.Errorf("SyncReport: %v, want ErrNoSync and cache.ErrReadOnly", serr)
		}
		if !logs.warned("without a cache") {
			return fmt.Errorf("no warning; log:\n%s", logs)
		}
	default:
		return fmt.Errorf("want %q", want)
	}
	fmt.Println("ok")
	return nil
}
