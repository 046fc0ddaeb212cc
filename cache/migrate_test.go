package cache

import (
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// rawOpen opens path with database/sql directly, bypassing Open.
func rawOpen(t *testing.T, path string) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

// schemaTables are the tables of an up-to-date file (sqlite_sequence is
// SQLite's, for the AUTOINCREMENT of messages.seq).
const schemaTables = "fast_tokens,gaps,installation,instances,mechanism_pins,messages,peer_state,scram_keys,server_features,sqlite_sequence,sync_state"

func tables(t *testing.T, q querier) []string {
	t.Helper()
	rows, err := q.QueryContext(t.Context(), `SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

func TestMigrationsIdempotentOnReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "cache.db")
	for i := range 3 {
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("Open #%d: %v", i+1, err)
		}
		v, err := userVersion(ctx, db.sql)
		if err != nil {
			t.Fatal(err)
		}
		if v != len(migrations) {
			t.Errorf("Open #%d: user_version = %d, want %d", i+1, v, len(migrations))
		}
		if got := strings.Join(tables(t, db.sql), ","); got != schemaTables {
			t.Errorf("Open #%d: tables %s", i+1, got)
		}
		if i == 0 {
			if err := db.PutFeatures(ctx, fullFeatures()); err != nil {
				t.Fatal(err)
			}
		} else if _, ok, err := db.Features(ctx, "example.org"); err != nil || !ok {
			t.Errorf("Open #%d: Features = _, %v, %v; want the entry written before", i+1, ok, err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSchemaTooNew(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "cache.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw := rawOpen(t, path)
	if _, err := raw.ExecContext(ctx, "PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}

	db, err = Open(ctx, path)
	if err == nil {
		db.Close()
		t.Fatal("Open of a schema from the future succeeded")
	}
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open: %v, want ErrSchemaTooNew", err)
	}
	if !strings.Contains(err.Error(), "99") {
		t.Errorf("error %q does not say which version the file has", err)
	}
	// The file is left alone.
	if v, err := userVersion(ctx, raw); err != nil || v != 99 {
		t.Errorf("user_version after the failed Open = %d, %v; want 99", v, err)
	}
}

// TestNextMigration shows that a later schema version is one more entry in
// the list, applied to files already at version 1, and that a failing
// migration leaves the file at the version it had.
func TestNextMigration(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	if err := db.PutFeatures(ctx, fullFeatures()); err != nil {
		t.Fatal(err)
	}

	bad := append(migrations[:len(migrations):len(migrations)],
		migration{name: "half good", sql: `CREATE TABLE good (x INTEGER); CREATE TABLE nonsense (`})
	if err := migrate(ctx, db, bad); err == nil {
		t.Fatal("a failing migration succeeded")
	}
	if v, _ := userVersion(ctx, db.sql); v != len(migrations) {
		t.Errorf("user_version after a failed migration = %d, want %d", v, len(migrations))
	}
	if got := strings.Join(tables(t, db.sql), ","); got != schemaTables {
		t.Errorf("tables after a failed migration: %s", got)
	}

	next := append(migrations[:len(migrations):len(migrations)],
		migration{name: "credentials", sql: `
CREATE TABLE credentials (
	domain TEXT NOT NULL REFERENCES server_features (domain) ON DELETE CASCADE,
	token  BLOB
);`},
		migration{name: "markers", sql: `CREATE TABLE markers (peer TEXT PRIMARY KEY);`},
	)
	if err := migrate(ctx, db, next); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if v, _ := userVersion(ctx, db.sql); v != len(next) {
		t.Errorf("user_version = %d, want %d", v, len(next))
	}
	if err := migrate(ctx, db, next); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	if got := strings.Join(tables(t, db.sql), ","); got != "credentials,fast_tokens,gaps,installation,instances,markers,mechanism_pins,messages,peer_state,scram_keys,server_features,sqlite_sequence,sync_state" {
		t.Errorf("tables: %s", got)
	}

	// Foreign keys are on, and replacing features keeps the rows that refer
	// to them (an upsert, not a delete and insert).
	if _, err := db.sql.ExecContext(ctx, `INSERT INTO credentials (domain, token) VALUES ('nowhere.example', x'00')`); err == nil {
		t.Error("a dangling foreign key was accepted")
	}
	if _, err := db.sql.ExecContext(ctx, `INSERT INTO credentials (domain, token) VALUES ('example.org', x'00')`); err != nil {
		t.Fatal(err)
	}
	if err := db.PutFeatures(ctx, Features{Domain: "example.org", Bind2: true}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM credentials`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("PutFeatures dropped %d rows that refer to the domain", 1-n)
	}
}

// TestMigrateFromVersion1 opens a file written by the first release (schema
// version 1, with features stored) and checks that it gains the message
// tables and keeps its data.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "cache.db")
	v1 := &DB{sql: rawOpen(t, path), path: path}
	if err := migrate(ctx, v1, migrations[:1]); err != nil {
		t.Fatal(err)
	}
	if err := v1.PutFeatures(ctx, fullFeatures()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(tables(t, v1.sql), ","); got != "installation,server_features" {
		t.Fatalf("version 1 tables: %s", got)
	}
	v1.Close()

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open of a version 1 file: %v", err)
	}
	defer db.Close()
	if v, _ := userVersion(ctx, db.sql); v != len(migrations) {
		t.Errorf("user_version = %d, want %d", v, len(migrations))
	}
	if got := strings.Join(tables(t, db.sql), ","); got != schemaTables {
		t.Errorf("tables: %s", got)
	}
	if _, ok, err := db.Features(ctx, "example.org"); err != nil || !ok {
		t.Errorf("Features after the upgrade = _, %v, %v", ok, err)
	}
	msg := Message{StanzaID: "1", Peer: "c@d", Direction: DirectionIn}
	if n, _, err := db.AppendMessages(ctx, "a@b", []Message{msg}, "1"); err != nil || n != 1 {
		t.Errorf("AppendMessages after the upgrade = %d, %v", n, err)
	}
}
