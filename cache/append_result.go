package cache

import (
	"context"
	"database/sql"
	"fmt"
)

// AppendResult says what an append stored.
type AppendResult struct {
	// Added are the messages that were new, in store order, with their Seq.
	Added []StoredMessage
	// Duplicates counts the messages already held (or repeated in the batch).
	Duplicates int
}

// AppendMessagesResult is AppendMessages that also returns which messages
// were new, so that a caller can deliver each message to an application
// exactly once: a message is in Added of exactly one call, whatever the
// number of processes or goroutines appending it.
func (db *DB) AppendMessagesResult(ctx context.Context, account string, msgs []Message, cursor string) (AppendResult, error) {
	const op = "cache: append messages"
	var res AppendResult
	acct := jidKey(account)
	if acct == "" {
		return res, fmt.Errorf("%s: empty account", op)
	}
	for i := range msgs {
		if err := msgs[i].check(); err != nil {
			return res, fmt.Errorf("%s: message %d: %w", op, i, err)
		}
	}
	if len(msgs) == 0 && cursor == "" {
		return res, nil
	}
	err := db.withTx(ctx, func(tx *sql.Tx) error {
		res = AppendResult{}
		// seq is AUTOINCREMENT: rows inserted now are exactly those with a
		// seq above the largest ever assigned before.
		var before int64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0)`).Scan(&before); err != nil {
			return err
		}
		n, err := insertMessages(ctx, tx, acct, msgs)
		if err != nil {
			return err
		}
		if n > 0 {
			byID := make(map[string]int, len(msgs))
			for i := len(msgs) - 1; i >= 0; i-- {
				byID[msgs[i].StanzaID] = i // the first occurrence wins
			}
			rows, err := tx.QueryContext(ctx, `SELECT seq, stanza_id FROM messages WHERE account = ? AND seq > ? ORDER BY seq`, acct, before)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var sm StoredMessage
				var id string
				if err := rows.Scan(&sm.Seq, &id); err != nil {
					return err
				}
				i, ok := byID[id]
				if !ok {
					return fmt.Errorf("stored %q, which was not in the batch", id)
				}
				sm.Message = msgs[i]
				res.Added = append(res.Added, sm)
			}
			if err := rows.Err(); err != nil {
				return err
			}
		}
		res.Duplicates = len(msgs) - n
		if cursor == "" {
			return nil
		}
		return moveCursor(ctx, tx, acct, cursor)
	})
	if err != nil {
		return AppendResult{}, fmt.Errorf("%s: %w", op, err)
	}
	return res, nil
}
