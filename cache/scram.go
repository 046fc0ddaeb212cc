package cache

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ScramKeys are SCRAM's ClientKey and ServerKey for one account and
// mechanism, valid for one salt and iteration count (RFC 5802). They let a
// login skip PBKDF2; the password itself is never stored. They are as
// sensitive as a password hash: the file is 0600 and they are never
// logged.
type ScramKeys struct {
	Mechanism  string
	Salt       []byte
	Iterations int
	ClientKey  []byte
	ServerKey  []byte
}

// ScramKeysFor returns the keys stored for account and mechanism when they
// were derived with salt and iterations; ok is false otherwise (the server
// changed them: the keys are derived again).
func (db *DB) ScramKeysFor(ctx context.Context, account, mechanism string, salt []byte, iterations int) (k ScramKeys, ok bool, err error) {
	h, err := db.handle()
	if err != nil {
		return k, false, fmt.Errorf("cache: scram keys: %w", classify(err))
	}
	var s []byte
	var it int
	err = h.QueryRowContext(ctx, `SELECT salt, iterations, client_key, server_key FROM scram_keys WHERE account = ? AND mechanism = ?`,
		jidKey(account), mechanism).Scan(&s, &it, &k.ClientKey, &k.ServerKey)
	if errors.Is(err, sql.ErrNoRows) {
		return ScramKeys{}, false, nil
	}
	if err != nil {
		return ScramKeys{}, false, fmt.Errorf("cache: scram keys: %w", classify(err))
	}
	if it != iterations || !bytes.Equal(s, salt) {
		return ScramKeys{}, false, nil
	}
	k.Mechanism, k.Salt, k.Iterations = mechanism, s, it
	return k, true, nil
}

// PutScramKeys stores k for account, replacing the keys of that mechanism.
// A login that goes on to succeed rather puts them in its LoginRecord: one
// transaction with the rest of what it learned.
func (db *DB) PutScramKeys(ctx context.Context, account string, k ScramKeys) error {
	if jidKey(account) == "" || !k.complete() {
		return errors.New("cache: put scram keys: incomplete keys")
	}
	err := db.small(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return putScramKeys(ctx, tx, jidKey(account), k, time.Now().Unix())
	})
	if err != nil {
		return fmt.Errorf("cache: put scram keys: %w", classify(err))
	}
	return nil
}

func (k ScramKeys) complete() bool {
	return k.Mechanism != "" && len(k.ClientKey) > 0 && len(k.ServerKey) > 0
}

// putScramKeys writes k for the account key acct in tx.
func putScramKeys(ctx context.Context, tx *sql.Tx, acct string, k ScramKeys, now int64) error {
	_, err := tx.ExecContext(ctx, `
INSERT INTO scram_keys (account, mechanism, salt, iterations, client_key, server_key, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (account, mechanism) DO UPDATE SET
	salt = excluded.salt, iterations = excluded.iterations,
	client_key = excluded.client_key, server_key = excluded.server_key, updated_at = excluded.updated_at`,
		acct, k.Mechanism, k.Salt, k.Iterations, k.ClientKey, k.ServerKey, now)
	return err
}

// ForgetScramKeys deletes the keys of account (for example after a failed
// login that used them: the password may have changed).
func (db *DB) ForgetScramKeys(ctx context.Context, account string) error {
	err := db.small(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM scram_keys WHERE account = ?`, jidKey(account))
		return err
	})
	if err != nil {
		return fmt.Errorf("cache: forget scram keys: %w", classify(err))
	}
	return nil
}

// StoredKey describes stored SCRAM keys without the keys themselves.
type StoredKey struct {
	Account    string
	Mechanism  string
	Iterations int
	Updated    time.Time
}

// ListScramKeys lists the stored SCRAM keys (never the key material), for
// tools such as pipebind cache show.
func (db *DB) ListScramKeys(ctx context.Context) ([]StoredKey, error) {
	h, err := db.handle()
	if err != nil {
		return nil, fmt.Errorf("cache: list scram keys: %w", classify(err))
	}
	rows, err := h.QueryContext(ctx, `SELECT account, mechanism, iterations, updated_at FROM scram_keys ORDER BY account, mechanism`)
	if err != nil {
		return nil, fmt.Errorf("cache: list scram keys: %w", classify(err))
	}
	defer rows.Close()
	var out []StoredKey
	for rows.Next() {
		var k StoredKey
		var ts int64
		if err := rows.Scan(&k.Account, &k.Mechanism, &k.Iterations, &ts); err != nil {
			return nil, fmt.Errorf("cache: list scram keys: %w", classify(err))
		}
		k.Updated = time.Unix(ts, 0).UTC()
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cache: list scram keys: %w", classify(err))
	}
	return out, nil
}

// Accounts lists the accounts with a sync cursor or stored messages.
func (db *DB) Accounts(ctx context.Context) ([]string, error) {
	h, err := db.handle()
	if err != nil {
		return nil, fmt.Errorf("cache: accounts: %w", classify(err))
	}
	rows, err := h.QueryContext(ctx, `SELECT account FROM sync_state UNION SELECT DISTINCT account FROM messages ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("cache: accounts: %w", classify(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, fmt.Errorf("cache: accounts: %w", classify(err))
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cache: accounts: %w", classify(err))
	}
	return out, nil
}
