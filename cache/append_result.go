package cache

import (
	"context"
	"database/sql"
	"fmt"
)

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
		if err := checkMessage(&msgs[i]); err != nil {
			return res, fmt.Errorf("%s: message %d: %w", op, i, classify(err))
		}
	}
	if len(msgs) == 0 && cursor == "" {
		return res, nil
	}
	err := db.withTx(ctx, func(tx *sql.Tx) error {
		res = AppendResult{}
		n, err := insertMessages(ctx, tx, acct, msgs, func(i int, seq int64) {
			res.Added = append(res.Added, StoredMessage{Message: msgs[i], Seq: seq})
		})
		if err != nil {
			return err
		}
		res.Duplicates = len(msgs) - n
		if cursor == "" {
			return nil
		}
		return moveCursor(ctx, tx, acct, cursor)
	})
	if err != nil {
		return AppendResult{}, fmt.Errorf("%s: %w", op, classify(err))
	}
	return res, nil
}
