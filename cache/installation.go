package cache

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// InstallationID returns this installation's id: a random UUID (version 4,
// lower-case text) created on the first call and the same for the life of
// the database file. Concurrent first calls, from goroutines or from
// processes sharing the file, all return the same id.
//
// It is sent as the SASL2 <user-agent id=…>, which lets a server tie FAST
// tokens and sessions to this installation; it identifies nothing else.
func (db *DB) InstallationID(ctx context.Context) (string, error) {
	h, err := db.handle()
	if err != nil {
		return "", fmt.Errorf("cache: installation id: %w", classify(err))
	}
	// Fast path: a read, which in WAL mode takes no lock.
	id, err := installationID(ctx, h)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("cache: installation id: %w", classify(err))
	}

	// First call on this file. Whoever takes the write lock first inserts;
	// the others' INSERT OR IGNORE does nothing and they read the winner's.
	candidate, err := newUUID()
	if err != nil {
		return "", fmt.Errorf("cache: installation id: %w", classify(err))
	}
	err = db.withTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT OR IGNORE INTO installation (id, user_agent_id, created_at) VALUES (1, ?, ?)`,
			candidate, time.Now().Unix()); err != nil {
			return err
		}
		id, err = installationID(ctx, tx)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("cache: installation id: %w", classify(err))
	}
	return id, nil
}

func installationID(ctx context.Context, q querier) (string, error) {
	var id string
	err := q.QueryRowContext(ctx, `SELECT user_agent_id FROM installation WHERE id = 1`).Scan(&id)
	return id, err
}

// newUUID returns a random (version 4) UUID in its canonical text form, as
// in RFC 9562, section 5.4.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant 10xx (RFC 9562)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
