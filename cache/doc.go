// Package cache is pipebind's local store: a SQLite database (through
// database/sql and github.com/mattn/go-sqlite3) that remembers what the
// last login learned, so that the next login can pipeline its first write.
//
// It holds each server's stream features ([Features], keyed by domain), one
// installation id per database file ([DB.InstallationID], sent as the SASL2
// <user-agent id=…>), and each account's message archive with its sync
// cursor and per-peer read state ([DB.AppendMessages], [DB.Unreads]). Later
// schema versions add credential material (FAST tokens, SCRAM keys).
//
// # Opening
//
// [Open] opens the database file at a path, creating it if needed, and
// brings its schema up to date. Open it once per file and process and share
// the *[DB]: it wraps a single *sql.DB connection pool. An empty path opens a
// private in-memory database that lives until [DB.Close], useful in tests and
// for one-shot CLI runs that must not touch the disk.
//
// # The feature cache is advice
//
// Cached features choose the shape of the next login's first write; they
// never decide its security. Whatever is stored, the live features the server
// sends win, and the caller compares them with [Features.Equal] and refreshes
// the entry with [DB.PutFeatures] when they differ. For the same reason a
// cache entry that cannot be used (written by another [FeaturesVersion], or
// whose JSON does not decode) is reported as a miss, not as an error: it is
// overwritten by the next successful login.
//
// # Messages are data
//
// Unlike the feature cache, the message store is data: a failed write
// returns an error and nothing is silently dropped or skipped, except a
// message already stored. Messages are keyed per account (a lower-cased bare
// JID) by the stanza-id the account's archive gave them (XEP-0359), so
// [DB.AppendMessages] is idempotent: pages replayed after a crash, or synced
// by two processes at once, store each message once. Each call is one
// immediate transaction that also moves the account's sync cursor, so the
// cursor never runs ahead of, or behind, the messages stored; it never moves
// backward either. Messages are stored in the order appended, which must be
// archive order; [StoredMessage.Seq] records it. [DB.AddGap] notes where an
// expired archive left messages missing.
//
// Read state combines a local read marker ([DB.MarkDisplayed]), which only
// moves forward, with what the server reports ([DB.SetServerUnread]), which
// wins while it is not older than the local marker; see [DB.Unreads].
//
// # Faults of the file
//
// Errors that show a fault of the database file match one of [ErrLocked],
// [ErrReadOnly], [ErrCorrupt], [ErrFull] or [ErrGone] (errors.Is), and still
// wrap SQLite's error (errors.As finds the sqlite3.Error):
//
//   - locked: another process holds the lock past the busy timeout (5 s, or
//     [Options].BusyTimeout). A lock held for less is waited for. Readers
//     are not blocked in WAL mode, except by a process that uses SQLite's
//     EXCLUSIVE locking mode, which makes Open itself fail with ErrLocked.
//   - read-only: the file or its directory cannot be written. Open fails;
//     [OpenWith] with [Options].ReadOnly reads the file, and every write
//     fails with ErrReadOnly. (Without -wal and -shm files beside it, SQLite
//     cannot read a WAL database in a read-only directory: that fails too.)
//   - corrupt: the file is not a database, or a page is malformed. Open
//     checks the header, the schema and the small tables a login reads; the
//     message tables are checked as they are read, so a malformed message
//     page fails the sync, not Open. [MoveAside] moves a corrupt file, with
//     its WAL, out of the way without deleting it.
//   - full: the disk (or [Options].MaxSize) is full.
//   - gone: the file was deleted or replaced while open. SQLite would go on
//     writing into the deleted file, whose content vanishes at Close, so
//     every write transaction first checks that the path still names the
//     file opened, and fails with ErrGone otherwise; reads go on.
//
// A write that fails stores nothing: each is one transaction, which also
// moves the sync cursor, so the messages of a failed append are fetched
// again by the next sync.
//
// # Security defaults
//
//   - The database file is created with mode 0600 before SQLite opens it, so
//     it is never readable by others, not even for an instant. SQLite creates
//     its -wal and -shm files with the mode of the database file; Open checks
//     them and tightens them (and a pre-existing database file) to 0600 when
//     they are looser.
//   - Open does not create missing directories: the caller chooses where the
//     file lives (and that directory's mode).
//   - secure_delete is on: deleted rows (an old FAST token, say) are
//     overwritten with zeros in the database file. Copies may linger in the
//     WAL until its next checkpoint.
//   - Nothing in this package logs, and no error string carries stored
//     values: errors name the operation and wrap the SQLite or I/O error.
//
// # Concurrency
//
// A *DB is safe for concurrent use by any number of goroutines. Several
// processes may also open the same file at once: the database runs in WAL
// mode (readers never block the writer), every write transaction starts with
// BEGIN IMMEDIATE (it takes the write lock up front, so two writers cannot
// deadlock upgrading from a read), and a connection waits up to 5 s for a
// lock held by another connection or process (busy_timeout). A write that
// still cannot get the lock fails with an error wrapping the sqlite3.Error
// (code SQLITE_BUSY); nothing panics. Opening a fresh file, migrating the
// schema and the first [DB.InstallationID] are race-free across processes:
// the switch to WAL mode is retried while another opener holds a lock, and
// the other two each run in one immediate transaction that re-reads the
// state it is about to change.
//
// An in-memory database ("" path) has a single connection: concurrent calls
// on it are serialised.
//
// # Schema and migrations
//
// The schema version is SQLite's PRAGMA user_version. Migrations are an
// ordered list of SQL scripts; migration n brings the schema from version
// n-1 to n, in one transaction that also sets user_version, so a failed
// migration leaves the file as it was. Adding a table is one new entry at the
// end of that list; entries already released are never edited. A file whose
// version is newer than this code knows (written by a newer pipebind) is not
// touched: Open fails with an error matching [ErrSchemaTooNew].
//
// Every call takes a context; cancelling it interrupts the running SQLite
// statement and rolls back an open transaction.
package cache
