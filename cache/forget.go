package cache

import (
	"context"
	"database/sql"
	"fmt"
)

// Deleting what the cache holds for one account, in one transaction each.

// ForgetCredentials deletes what stands in for account's password: its
// SCRAM keys, its FAST token and its mechanism pin (for example after a
// password change, or to make the next login check the password). It
// returns how many entries it deleted: zero when none was stored. The
// server features and the messages are kept.
func (db *DB) ForgetCredentials(ctx context.Context, account string) (int, error) {
	n, err := db.deleteAccount(ctx, account, "scram_keys", "fast_tokens", "mechanism_pins")
	if err != nil {
		return 0, fmt.Errorf("cache: forget credentials: %w", err)
	}
	return n[0] + n[1] + n[2], nil
}

// ForgetMessages deletes account's messages and everything about them: the
// sync cursor, the archive gaps and the read markers. The next sync fetches
// the archive again from its start. It returns how many messages it
// deleted.
func (db *DB) ForgetMessages(ctx context.Context, account string) (int, error) {
	n, err := db.deleteAccount(ctx, account, "messages", "sync_state", "gaps", "peer_state")
	if err != nil {
		return 0, fmt.Errorf("cache: forget messages: %w", err)
	}
	return n[0], nil
}

// deleteAccount deletes the rows of account in tables, in one
// transaction, and returns how many it deleted from each.
func (db *DB) deleteAccount(ctx context.Context, account string, tables ...string) ([]int, error) {
	n := make([]int, len(tables))
	err := db.small(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for i, t := range tables {
			// t is one of this file's constant table names, never input.
			res, err := tx.ExecContext(ctx, `DELETE FROM `+t+` WHERE account = ?`, jidKey(account))
			if err != nil {
				return err
			}
			k, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n[i] = int(k)
		}
		return nil
	})
	if err != nil {
		return nil, classify(err)
	}
	return n, nil
}
