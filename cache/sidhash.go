package cache

import (
	"hash/fnv"

	"github.com/mattn/go-sqlite3"
)

// sidHash is the key of the messages_sid index: the 64-bit FNV-1a hash of a
// stanza-id. It is stored in the file, so it must never change.
func sidHash(stanzaID string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(stanzaID))
	return int64(h.Sum64())
}

// sidHashFunc is sidHash as an SQL function, for the queries that look up a
// stanza-id held in a column. It is registered on every connection of the
// pool (connectHook), and used in queries only, never in the schema, so the
// file stays readable by any SQLite.
const sidHashFunc = "pipebind_sid_hash"

// connectHook prepares each new connection (see also options.connectHook),
// for what the DSN has no key for:
//
//   - sidHashFunc, deterministic;
//   - cache_size 16 MiB (default 2 MiB), so the pages a catch-up touches
//     stay cached across transactions;
//   - temp_store memory, for the rare statement journal and sorts.
func connectHook(c *sqlite3.SQLiteConn) error {
	if err := c.RegisterFunc(sidHashFunc, sqlSidHash, true); err != nil {
		return err
	}
	_, err := c.Exec("PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 8192; PRAGMA journal_size_limit = 67108864", nil)
	return err
}

// sqlSidHash is sidHash for SQL values: NULL and non-text values hash to
// NULL, which matches nothing.
func sqlSidHash(v any) any {
	switch v := v.(type) {
	case string:
		return sidHash(v)
	case []byte:
		return sidHash(string(v))
	}
	return nil
}
