package cache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/pipebind/pipebind/mamsync"
	"strings"
	"time"
)

// ErrUnknownMessage is returned, wrapped, by DB.MarkDisplayed for a
// stanza-id that is not stored for that account and peer. Test for it with
// errors.Is.
var ErrUnknownMessage = errors.New("no such message")

// The message types are package mamsync's, which the cache implements the
// store of (mamsync.Store); the aliases keep this package's API whole.
type (
	Direction     = mamsync.Direction
	Message       = mamsync.Message
	StoredMessage = mamsync.StoredMessage
	AppendResult  = mamsync.AppendResult
	Gap           = mamsync.Gap
)

// Directions, as in package mamsync.
const (
	DirectionIn  = mamsync.DirectionIn
	DirectionOut = mamsync.DirectionOut
)

var _ mamsync.Store = (*DB)(nil)

// AppendMessages stores msgs, which must be in archive order, as the newest
// messages of account and, in the same transaction, moves the account's
// sync cursor to cursor (unless cursor is empty).
//
// A message whose StanzaID the account already holds, or which repeats one
// earlier in msgs, is skipped and counted as a duplicate; the others are
// inserted, in the order of msgs, after every message stored before. So
// appending the same batch twice, or overlapping pages, stores each message
// once.
//
// The cursor is the newest archived stanza-id held locally: where the next
// sync resumes. It never moves backward: if both it and the current cursor
// are stored messages of account and cursor is the older of the two (a
// second process replaying pages another already stored), the cursor stays
// where it is. Any other cursor value is taken as given.
//
// Everything happens in one immediate transaction: on any error, nothing of
// msgs is stored and the cursor is unchanged. A message without a StanzaID or
// with an invalid Direction is an error (nothing is silently dropped).
func (db *DB) AppendMessages(ctx context.Context, account string, msgs []Message, cursor string) (inserted, duplicates int, err error) {
	const op = "cache: append messages"
	acct := jidKey(account)
	if acct == "" {
		return 0, 0, fmt.Errorf("%s: empty account", op)
	}
	for i := range msgs {
		if err := checkMessage(&msgs[i]); err != nil {
			return 0, 0, fmt.Errorf("%s: message %d: %w", op, i, classify(err))
		}
	}
	if len(msgs) == 0 && cursor == "" {
		if _, err := db.handle(); err != nil {
			return 0, 0, fmt.Errorf("%s: %w", op, classify(err))
		}
		return 0, 0, nil
	}
	err = db.withTx(ctx, func(tx *sql.Tx) error {
		n, err := insertMessages(ctx, tx, acct, msgs, nil)
		if err != nil {
			return err
		}
		inserted = n
		if cursor == "" {
			return nil
		}
		return moveCursor(ctx, tx, acct, cursor)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", op, classify(err))
	}
	return inserted, len(msgs) - inserted, nil
}

// checkMessage reports why m cannot be stored, if it cannot.
func checkMessage(m *Message) error {
	if m.StanzaID == "" {
		return errors.New("empty stanza-id")
	}
	if !m.Direction.Valid() {
		return fmt.Errorf("invalid %v", m.Direction)
	}
	return nil
}

// insertMessages inserts msgs for acct, in order, with one prepared
// statement, and returns how many rows were inserted. If added is not nil,
// it is called with the index in msgs and the seq of each row inserted, in
// order.
//
// A message is skipped when acct already holds its stanza-id (stored before,
// or earlier in msgs). The stored ones are found first, for the whole batch,
// by heldStanzaIDs; then each new message is a plain one-row INSERT. That is
// 1.4x faster than one statement per message doing both (INSERT ...
// SELECT ... WHERE NOT EXISTS; 80k against 115k messages/s for 100,000
// messages in transactions of 4,000, as mamsync batches them), because one
// query probing the hash index for hundreds of keys costs SQLite much less
// than as many correlated subqueries. The transaction is immediate (it
// holds the write lock), so no other writer can insert between the check
// and the inserts.
//
// One row per INSERT is deliberate. A multi-row INSERT is fewer cgo calls,
// but SQLite must be able to undo such a statement half-way, so it copies
// every page the statement changes to a statement journal, a temporary file
// once past 64 KiB: twice the writes, and slower in BenchmarkAppendMessages.
// A one-row statement needs no statement journal.
func insertMessages(ctx context.Context, tx *sql.Tx, acct string, msgs []Message, added func(i int, seq int64)) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	seen, err := heldStanzaIDs(ctx, tx, acct, msgs)
	if err != nil {
		return 0, err
	}
	stmt, err := tx.PrepareContext(ctx, `
INSERT INTO messages (account, stanza_id, sid_hash, origin_id, peer, dir, ts, body, raw)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)`)
	if err != nil {
		return 0, err
	}
	defer stmt.Close()
	inserted := 0
	for i := range msgs {
		m := &msgs[i]
		if _, dup := seen[m.StanzaID]; dup {
			continue
		}
		seen[m.StanzaID] = struct{}{}
		raw := m.Raw
		if raw == nil {
			raw = []byte{} // nil would bind NULL
		}
		res, err := stmt.ExecContext(ctx, acct, m.StanzaID, sidHash(m.StanzaID), m.OriginID, jidKey(m.Peer),
			int64(m.Direction), m.Time.UnixMicro(), m.Body, raw)
		if err != nil {
			return 0, err
		}
		if added != nil {
			seq, err := res.LastInsertId()
			if err != nil {
				return 0, err
			}
			added(i, seq)
		}
		inserted++
	}
	return inserted, nil
}

// heldChunk is how many stanza-ids one heldStanzaIDs query looks up: well
// under SQLite's limit on bound parameters (32,766 since 3.32; 999 before).
const heldChunk = 500

// heldStanzaIDs returns the set of the stanza-ids of msgs that acct already
// holds, with room for the rest. It finds the candidates by the hash index
// (messages_sid), a query per heldChunk messages, and compares account and
// stanza_id exactly, so a hash collision never hides a distinct message.
func heldStanzaIDs(ctx context.Context, tx *sql.Tx, acct string, msgs []Message) (map[string]struct{}, error) {
	held := make(map[string]struct{}, len(msgs))
	args := make([]any, 0, heldChunk)
	var q strings.Builder
	for lo := 0; lo < len(msgs); lo += heldChunk {
		chunk := msgs[lo:min(lo+heldChunk, len(msgs))]
		args = args[:0]
		q.Reset()
		q.WriteString("SELECT account, stanza_id FROM messages INDEXED BY messages_sid WHERE sid_hash IN (")
		for i := range chunk {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteByte('?')
			args = append(args, sidHash(chunk[i].StanzaID))
		}
		q.WriteByte(')')
		rows, err := tx.QueryContext(ctx, q.String(), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var a, id string
			if err := rows.Scan(&a, &id); err != nil {
				rows.Close()
				return nil, err
			}
			if a == acct {
				held[id] = struct{}{}
			}
		}
		err = rows.Err()
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	}
	return held, nil
}

// moveCursor sets acct's cursor unless that would move it backward: to a
// stored message older than the stored message the cursor names.
func moveCursor(ctx context.Context, tx *sql.Tx, acct, cursor string) error {
	_, err := tx.ExecContext(ctx, `
INSERT INTO sync_state (account, cursor, updated_at) VALUES (?1, ?2, ?3)
ON CONFLICT (account) DO UPDATE SET
	cursor     = excluded.cursor,
	updated_at = excluded.updated_at
WHERE coalesce(
	(SELECT seq FROM messages INDEXED BY messages_sid
		WHERE sid_hash = ?4 AND account = ?1 AND stanza_id = excluded.cursor) >=
	(SELECT seq FROM messages INDEXED BY messages_sid
		WHERE sid_hash = `+sidHashFunc+`(sync_state.cursor) AND account = ?1 AND stanza_id = sync_state.cursor),
	1)`,
		acct, cursor, time.Now().Unix(), sidHash(cursor))
	return err
}

// Cursor returns account's sync cursor: the stanza-id of the newest archived
// message held locally, as last set by AppendMessages. It is empty when the
// account was never synced.
func (db *DB) Cursor(ctx context.Context, account string) (latestID string, err error) {
	h, err := db.handle()
	if err != nil {
		return "", fmt.Errorf("cache: cursor: %w", classify(err))
	}
	err = h.QueryRowContext(ctx, `SELECT cursor FROM sync_state WHERE account = ?`, jidKey(account)).Scan(&latestID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("cache: cursor: %w", classify(err))
	}
	return latestID, nil
}

// HasMessage reports whether account holds the message with stanzaID.
func (db *DB) HasMessage(ctx context.Context, account, stanzaID string) (bool, error) {
	h, err := db.handle()
	if err != nil {
		return false, fmt.Errorf("cache: has message: %w", classify(err))
	}
	var one int
	err = h.QueryRowContext(ctx,
		`SELECT 1 FROM messages INDEXED BY messages_sid WHERE sid_hash = ? AND account = ? AND stanza_id = ?`,
		sidHash(stanzaID), jidKey(account), stanzaID,
	).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cache: has message: %w", classify(err))
	}
	return true, nil
}

// MessageQuery selects the messages DB.Messages returns.
type MessageQuery struct {
	// Peer, if not empty, keeps the conversation with that bare JID only.
	Peer string
	// AfterSeq keeps messages whose Seq is larger; 0 keeps all.
	AfterSeq int64
	// Limit is the most messages returned; 0 or less means no limit.
	Limit int
}

// Messages returns account's messages selected by q, in archive order (by
// Seq ascending). Page through a conversation by passing the Seq of the last
// message returned as the next AfterSeq.
func (db *DB) Messages(ctx context.Context, account string, q MessageQuery) ([]StoredMessage, error) {
	h, err := db.handle()
	if err != nil {
		return nil, fmt.Errorf("cache: messages: %w", classify(err))
	}
	query := `SELECT seq, stanza_id, origin_id, peer, dir, ts, body, raw FROM messages WHERE account = ? AND seq > ?`
	args := []any{jidKey(account), q.AfterSeq}
	if q.Peer != "" {
		query += ` AND peer = ?`
		args = append(args, jidKey(q.Peer))
	}
	query += ` ORDER BY seq`
	if q.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, q.Limit)
	}
	rows, err := h.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("cache: messages: %w", classify(err))
	}
	defer rows.Close()
	var list []StoredMessage
	for rows.Next() {
		var (
			m   StoredMessage
			dir int64
			ts  int64
		)
		if err := rows.Scan(&m.Seq, &m.StanzaID, &m.OriginID, &m.Peer, &dir, &ts, &m.Body, &m.Raw); err != nil {
			return nil, fmt.Errorf("cache: messages: %w", classify(err))
		}
		m.Direction = Direction(dir)
		m.Time = time.UnixMicro(ts).UTC()
		if m.Raw == nil {
			m.Raw = []byte{}
		}
		list = append(list, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cache: messages: %w", classify(err))
	}
	return list, nil
}

// CountMessages returns how many messages account holds.
func (db *DB) CountMessages(ctx context.Context, account string) (int, error) {
	h, err := db.handle()
	if err != nil {
		return 0, fmt.Errorf("cache: count messages: %w", classify(err))
	}
	var n int
	if err := h.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE account = ?`, jidKey(account)).Scan(&n); err != nil {
		return 0, fmt.Errorf("cache: count messages: %w", classify(err))
	}
	return n, nil
}

// AddGap records g for account. Both ids are required; a zero Detected is
// set to now. Recording a gap already recorded (same ids) does nothing.
func (db *DB) AddGap(ctx context.Context, account string, g Gap) error {
	h, err := db.handle()
	if err != nil {
		return fmt.Errorf("cache: add gap: %w", classify(err))
	}
	acct := jidKey(account)
	if acct == "" || g.AfterID == "" || g.BeforeID == "" {
		return errors.New("cache: add gap: empty account or id")
	}
	if g.Detected.IsZero() {
		g.Detected = time.Now()
	}
	_, err = h.ExecContext(ctx, `
INSERT INTO gaps (account, after_id, before_id, detected) VALUES (?, ?, ?, ?)
ON CONFLICT (account, after_id, before_id) DO NOTHING`,
		acct, g.AfterID, g.BeforeID, g.Detected.UnixMicro())
	if err != nil {
		return fmt.Errorf("cache: add gap: %w", classify(err))
	}
	return nil
}

// Gaps returns account's gaps in the order they were recorded.
func (db *DB) Gaps(ctx context.Context, account string) ([]Gap, error) {
	h, err := db.handle()
	if err != nil {
		return nil, fmt.Errorf("cache: gaps: %w", classify(err))
	}
	rows, err := h.QueryContext(ctx,
		`SELECT after_id, before_id, detected FROM gaps WHERE account = ? ORDER BY id`, jidKey(account))
	if err != nil {
		return nil, fmt.Errorf("cache: gaps: %w", classify(err))
	}
	defer rows.Close()
	var list []Gap
	for rows.Next() {
		var (
			g        Gap
			detected int64
		)
		if err := rows.Scan(&g.AfterID, &g.BeforeID, &detected); err != nil {
			return nil, fmt.Errorf("cache: gaps: %w", classify(err))
		}
		g.Detected = time.UnixMicro(detected).UTC()
		list = append(list, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cache: gaps: %w", classify(err))
	}
	return list, nil
}

// jidKey is the form of a bare JID used as a key: trimmed and lower-cased.
func jidKey(jid string) string {
	return strings.ToLower(strings.TrimSpace(jid))
}
