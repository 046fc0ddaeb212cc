package cache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrSchemaTooNew reports a database file whose schema version is newer than
// this package knows: a newer pipebind wrote it. Open leaves such a file
// untouched. It is always returned wrapped; test for it with errors.Is.
var ErrSchemaTooNew = errors.New("database schema is newer than this pipebind knows")

// A migration brings the schema from version n-1 to version n, where n is
// its position in migrations counting from 1.
type migration struct {
	// name says what the migration adds, for errors.
	name string
	// sql is one or more statements, run in one transaction.
	sql string
}

// migrations is the schema's history, oldest first. To change the schema,
// append an entry; never edit or reorder a released one, since files in the
// field have already run it.
var migrations = []migration{
	{
		name: "server features and installation id",
		sql: `
CREATE TABLE server_features (
	domain      TEXT PRIMARY KEY,  -- lower-cased JID domainpart
	version     INTEGER NOT NULL,  -- FeaturesVersion of data
	seen_at     INTEGER NOT NULL,  -- Unix time, seconds
	sasl2       INTEGER,           -- 0 or 1, copied from data to query on
	bind2       INTEGER,
	bind2_draft INTEGER,
	direct_tls  INTEGER,
	data        TEXT NOT NULL      -- JSON of Features
);
CREATE TABLE installation (
	id            INTEGER PRIMARY KEY CHECK (id = 1),  -- one row at most
	user_agent_id TEXT NOT NULL,                       -- UUID v4
	created_at    INTEGER NOT NULL                     -- Unix time, seconds
);
`,
	},
	{
		name: "messages, sync cursor, gaps and read markers",
		sql: `
CREATE TABLE messages (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,      -- archive order; never reused
	account   TEXT NOT NULL CHECK (account <> ''),   -- lower-cased bare JID
	stanza_id TEXT NOT NULL CHECK (stanza_id <> ''), -- XEP-0359 <stanza-id by=account>
	origin_id TEXT NOT NULL,                         -- XEP-0359 <origin-id>, or ''
	peer      TEXT NOT NULL,                         -- lower-cased bare JID
	dir       INTEGER NOT NULL CHECK (dir IN (1, 2)), -- Direction: 1 in, 2 out
	ts        INTEGER NOT NULL,                      -- archive time, Unix microseconds
	body      TEXT NOT NULL,
	raw       BLOB NOT NULL,                         -- the whole <message>
	sid_hash  INTEGER NOT NULL                       -- sidHash(stanza_id); see below
);
-- (account, stanza_id) is unique, but not by a UNIQUE constraint: an index
-- of random text keys dirties about one page per inserted message. The
-- compact, non-unique index of the 64-bit hash finds a stanza-id's rows, and
-- every lookup (insertMessages among them) compares account and stanza_id
-- exactly, so a hash collision never drops a distinct message.
CREATE INDEX messages_sid ON messages (sid_hash);
CREATE INDEX messages_account ON messages (account, seq);
CREATE INDEX messages_peer ON messages (account, peer, seq, dir);
CREATE TABLE sync_state (
	account    TEXT PRIMARY KEY,  -- lower-cased bare JID
	cursor     TEXT NOT NULL,     -- stanza-id of the newest archived message held
	updated_at INTEGER NOT NULL   -- Unix time, seconds
) WITHOUT ROWID;
CREATE TABLE gaps (
	id        INTEGER PRIMARY KEY,
	account   TEXT NOT NULL,
	after_id  TEXT NOT NULL CHECK (after_id <> ''),  -- last stanza-id held before the gap
	before_id TEXT NOT NULL CHECK (before_id <> ''), -- first stanza-id held after it
	detected  INTEGER NOT NULL,                      -- Unix microseconds
	UNIQUE (account, after_id, before_id)
);
CREATE TABLE peer_state (
	account         TEXT NOT NULL,
	peer            TEXT NOT NULL,
	read_id         TEXT,                        -- local displayed marker (stanza-id)
	read_seq        INTEGER,                     -- its messages.seq
	server_read_id  TEXT,                        -- as the server reported, or ''
	server_count    INTEGER,                     -- as the server reported
	server_reported INTEGER NOT NULL DEFAULT 0,  -- 1 once the server reported
	server_base_seq INTEGER,                     -- max(messages.seq) at the report
	PRIMARY KEY (account, peer)
) WITHOUT ROWID;
`,
	},
	{
		name: "cached SCRAM keys",
		sql: `
CREATE TABLE scram_keys (
	account     TEXT    NOT NULL,           -- bare JID, lower-cased
	mechanism   TEXT    NOT NULL,           -- e.g. SCRAM-SHA-256 (the -PLUS variant shares the keys)
	salt        BLOB    NOT NULL,
	iterations  INTEGER NOT NULL,
	client_key  BLOB    NOT NULL,
	server_key  BLOB    NOT NULL,
	updated_at  INTEGER NOT NULL,
	PRIMARY KEY (account, mechanism)
);
`,
	},
	{
		name: "FAST tokens and mechanism pins",
		sql: `
CREATE TABLE fast_tokens (
	account    TEXT    PRIMARY KEY,  -- bare JID, lower-cased
	mechanism  TEXT    NOT NULL,     -- e.g. HT-SHA-256-EXPR: the token is bound to it
	token      BLOB    NOT NULL,     -- the secret, as the server sent it
	expiry     INTEGER NOT NULL,     -- Unix time, seconds
	updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE mechanism_pins (
	account    TEXT    PRIMARY KEY,  -- bare JID, lower-cased
	mechanism  TEXT    NOT NULL,     -- the strongest password mechanism used so far
	updated_at INTEGER NOT NULL
) WITHOUT ROWID;
`,
	},
	{
		name: "instances: a user-agent id and a FAST token per client of an account",
		sql: `
CREATE TABLE instances (
	account       TEXT    NOT NULL,            -- bare JID, lower-cased
	name          TEXT    NOT NULL,            -- client.Config.Instance; '' is the default
	user_agent_id TEXT    NOT NULL,            -- its SASL2 user-agent id
	claimed_pid   INTEGER NOT NULL DEFAULT 0,  -- the process using it now; 0: none
	claimed_start INTEGER NOT NULL DEFAULT 0,  -- that process's start time, against pid reuse
	PRIMARY KEY (account, name)
) WITHOUT ROWID;
CREATE TABLE fast_tokens_v5 (
	account    TEXT    NOT NULL,             -- bare JID, lower-cased
	instance   TEXT    NOT NULL DEFAULT '',  -- the instance the token was issued to
	mechanism  TEXT    NOT NULL,
	token      BLOB    NOT NULL,
	expiry     INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (account, instance)
) WITHOUT ROWID;
INSERT INTO fast_tokens_v5 (account, instance, mechanism, token, expiry, updated_at)
	SELECT account, '', mechanism, token, expiry, updated_at FROM fast_tokens;
DROP TABLE fast_tokens;
ALTER TABLE fast_tokens_v5 RENAME TO fast_tokens;
`,
	},
}

// migrate brings the schema of db up to len(ms), one migration per
// immediate transaction. Each transaction re-reads user_version once it
// holds the write lock, so processes racing to migrate the same file apply
// each migration once.
func migrate(ctx context.Context, db *DB, ms []migration) error {
	h, err := db.handle()
	if err != nil {
		return err
	}
	// Fast path, without the write lock: already up to date.
	v, err := userVersion(ctx, h)
	if err != nil {
		return err
	}
	for {
		if v > len(ms) {
			return fmt.Errorf("%w (file at version %d, code knows up to %d)", ErrSchemaTooNew, v, len(ms))
		}
		if v == len(ms) {
			return nil
		}
		err := db.withTx(ctx, func(tx *sql.Tx) error {
			v, err = userVersion(ctx, tx)
			if err != nil || v >= len(ms) {
				return err // another connection got here first; recheck
			}
			m := ms[v]
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("schema %d (%s): %w", v+1, m.name, err)
			}
			// PRAGMA takes no bound parameters; v+1 is an int we made.
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
				return fmt.Errorf("schema %d (%s): %w", v+1, m.name, err)
			}
			v++
			return nil
		})
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
}

// querier is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// userVersion reads PRAGMA user_version, the schema version.
func userVersion(ctx context.Context, q querier) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}
