package cache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// MarkDisplayed moves the local read marker of account's conversation with
// peer to the message stanzaID: the last message the user has seen. The
// marker only moves forward, in archive order: moved is false, and nothing
// changes, when the marker already is at that message or at a later one.
//
// stanzaID must be a message stored for account with peer (either
// direction); any other id is an error matching ErrUnknownMessage.
func (db *DB) MarkDisplayed(ctx context.Context, account, peer, stanzaID string) (moved bool, err error) {
	const op = "cache: mark displayed"
	acct, p := jidKey(account), jidKey(peer)
	err = db.withTx(ctx, func(tx *sql.Tx) error {
		var (
			seq     int64
			msgPeer string
		)
		err := tx.QueryRowContext(ctx,
			`SELECT seq, peer FROM messages INDEXED BY messages_sid WHERE sid_hash = ? AND account = ? AND stanza_id = ?`,
			sidHash(stanzaID), acct, stanzaID,
		).Scan(&seq, &msgPeer)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrUnknownMessage
		}
		if err != nil {
			return err
		}
		if msgPeer != p {
			return fmt.Errorf("%w with this peer", ErrUnknownMessage)
		}
		res, err := tx.ExecContext(ctx, `
INSERT INTO peer_state (account, peer, read_id, read_seq) VALUES (?, ?, ?, ?)
ON CONFLICT (account, peer) DO UPDATE SET
	read_id  = excluded.read_id,
	read_seq = excluded.read_seq
WHERE read_seq IS NULL OR excluded.read_seq > read_seq`,
			acct, p, stanzaID, seq)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		moved = n > 0
		return err
	})
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, classify(err))
	}
	return moved, nil
}

// SetServerUnread records what the server reported (XEP-0386 v0.3.0
// <unreads/>) for account's conversation with peer: the id of the last
// message read on any client (readID, may be empty) and the number of
// unread messages (count). A later report replaces an earlier one.
//
// Call it once the store has caught up with the archive the report describes
// (after the sync that followed the login): messages appended later are
// taken to be new to the server's count. See DB.Unreads for how the report
// and the local marker combine.
func (db *DB) SetServerUnread(ctx context.Context, account, peer, readID string, count int) error {
	const op = "cache: set server unread"
	acct, p := jidKey(account), jidKey(peer)
	if acct == "" || p == "" {
		return fmt.Errorf("%s: empty account or peer", op)
	}
	if count < 0 {
		return fmt.Errorf("%s: negative count %d", op, count)
	}
	h, err := db.handle()
	if err != nil {
		return fmt.Errorf("%s: %w", op, classify(err))
	}
	// Seqs are shared by all accounts: the largest one marks what is held
	// now, whichever account it belongs to.
	_, err = h.ExecContext(ctx, `
INSERT INTO peer_state (account, peer, server_read_id, server_count, server_reported, server_base_seq)
VALUES (?1, ?2, ?3, ?4, 1, (SELECT coalesce(max(seq), 0) FROM messages))
ON CONFLICT (account, peer) DO UPDATE SET
	server_read_id  = excluded.server_read_id,
	server_count    = excluded.server_count,
	server_reported = 1,
	server_base_seq = excluded.server_base_seq`,
		acct, p, readID, count)
	if err != nil {
		return fmt.Errorf("%s: %w", op, classify(err))
	}
	return nil
}

// PeerState is the read state of one conversation, as DB.Unreads reports it.
type PeerState struct {
	// Peer is the other party's bare JID, lower-cased.
	Peer string
	// ReadID is the stanza-id of the last message read: the server's
	// read-id or the local marker, whichever is newer; empty when neither
	// is known.
	ReadID string
	// Unread is the number of unread incoming messages.
	Unread int
	// ServerReported is true when ReadID and Unread come from the server's
	// report (plus the incoming messages stored since), false when they are
	// computed from the local marker.
	ServerReported bool
}

// Unreads returns the read state of every conversation of account that has
// stored messages, a local marker or a server report, ordered by peer.
//
// The server wins for the count and the read-id; the local marker only moves
// forward. So the server's report is in force when it exists and its read-id
// is not older than the local marker: either there is no local marker, or
// both are stored messages and the server's is the same or later. Then
// ReadID is the server's read-id and Unread the server's count plus the
// incoming messages stored since the report. Otherwise ReadID is the local
// marker and Unread the number of incoming messages after it (all incoming
// messages when there is no marker).
func (db *DB) Unreads(ctx context.Context, account string) ([]PeerState, error) {
	const op = "cache: unreads"
	h, err := db.handle()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, classify(err))
	}
	// One statement, so one consistent snapshot. srv_seq is the server's
	// read-id resolved against the messages held now: it may have been
	// stored after the report.
	rows, err := h.QueryContext(ctx, `
WITH peers (peer) AS (
	SELECT DISTINCT peer FROM messages WHERE account = ?1
	UNION
	SELECT peer FROM peer_state WHERE account = ?1
),
st AS (
	SELECT p.peer AS peer,
		coalesce(s.read_id, '') AS read_id,
		s.read_seq AS read_seq,
		coalesce(s.server_reported, 0) AS reported,
		coalesce(s.server_read_id, '') AS srv_id,
		coalesce(s.server_count, 0) AS srv_count,
		coalesce(s.server_base_seq, 0) AS base_seq,
		(SELECT m.seq FROM messages m INDEXED BY messages_sid
			WHERE m.sid_hash = `+sidHashFunc+`(coalesce(s.server_read_id, ''))
				AND m.account = ?1 AND m.stanza_id = s.server_read_id AND m.peer = p.peer) AS srv_seq
	FROM peers p LEFT JOIN peer_state s ON s.account = ?1 AND s.peer = p.peer
),
judged AS (
	SELECT *, reported AND (read_seq IS NULL OR coalesce(srv_seq >= read_seq, 0)) AS server_wins
	FROM st
)
SELECT peer,
	CASE WHEN server_wins AND srv_id <> '' THEN srv_id ELSE read_id END,
	CASE WHEN server_wins
		THEN srv_count + (SELECT count(*) FROM messages m
			WHERE m.account = ?1 AND m.peer = judged.peer AND m.seq > judged.base_seq AND m.dir = 1)
		ELSE (SELECT count(*) FROM messages m
			WHERE m.account = ?1 AND m.peer = judged.peer AND m.seq > coalesce(judged.read_seq, 0) AND m.dir = 1)
	END,
	server_wins
FROM judged
ORDER BY peer`, jidKey(account))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, classify(err))
	}
	defer rows.Close()
	var list []PeerState
	for rows.Next() {
		var s PeerState
		if err := rows.Scan(&s.Peer, &s.ReadID, &s.Unread, &s.ServerReported); err != nil {
			return nil, fmt.Errorf("%s: %w", op, classify(err))
		}
		list = append(list, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, classify(err))
	}
	return list, nil
}
