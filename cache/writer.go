package cache

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// writer orders the process's write transactions on one file. SQLite has
// one writer at a time; goroutines that each open a transaction contend in
// SQLite's busy handler, which sleeps and retries with no order, so under a
// burst (a thousand bots logging in at once) some wait past the busy timeout
// although the file is only busy with their neighbours. Here they queue in
// the process instead (sem), and the small writes of a burst are committed
// in groups: one transaction, and one sync to disk, for all the logins that
// arrived while the previous group was written.
type writer struct {
	once sync.Once
	sem  chan struct{} // held while a write transaction runs

	mu      sync.Mutex
	queue   []*smallWrite
	leading bool // a goroutine is committing the queue
}

// smallWrite is one small write waiting for its group.
type smallWrite struct {
	fn   func(ctx context.Context, tx *sql.Tx) error
	done chan error
}

// maxGroup bounds the writes committed in one transaction.
const maxGroup = 256

// acquire waits for the file's write turn in this process, or ctx's end.
func (w *writer) acquire(ctx context.Context) error {
	w.once.Do(func() { w.sem = make(chan struct{}, 1) })
	select {
	case w.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *writer) release() { <-w.sem }

// small runs fn in a write transaction shared with the other small writes
// queued meanwhile, isolated from them by a savepoint: fn's error rolls
// back fn's statements only, and is returned. The first caller of a burst
// commits the groups while others queue (no goroutine of its own). ctx
// bounds the wait; a write already queued may still be committed after ctx
// ends, as a write whose commit reply was lost would be.
func (db *DB) small(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	w := &db.w
	sw := &smallWrite{fn: fn, done: make(chan error, 1)}
	w.mu.Lock()
	w.queue = append(w.queue, sw)
	lead := !w.leading
	w.leading = true
	w.mu.Unlock()
	if lead {
		db.lead()
	}
	select {
	case err := <-sw.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lead commits the queue, a group at a time, until it is empty.
func (db *DB) lead() {
	w := &db.w
	for {
		w.mu.Lock()
		n := min(len(w.queue), maxGroup)
		group := w.queue[:n:n]
		w.queue = w.queue[n:]
		if n == 0 {
			w.queue, w.leading = nil, false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		db.commitGroup(group)
	}
}

// commitGroup writes group in one transaction. Each write runs under a
// savepoint; a failed one is rolled back alone and gets its error, the
// others are committed. If the transaction fails, every write gets that
// error.
func (db *DB) commitGroup(group []*smallWrite) {
	// The group's writers wait on their own contexts; the group is written
	// for all of them, bounded by the busy timeout.
	ctx := context.Background()
	errs := make([]error, len(group))
	err := db.withTx(ctx, func(tx *sql.Tx) error {
		for i, sw := range group {
			errs[i] = savepoint(ctx, tx, i, sw.fn)
		}
		return nil
	})
	for i, sw := range group {
		if err != nil {
			sw.done <- err
		} else {
			sw.done <- errs[i]
		}
	}
}

// savepoint runs fn inside SAVEPOINT wN, rolled back when fn fails.
func savepoint(ctx context.Context, tx *sql.Tx, i int, fn func(context.Context, *sql.Tx) error) error {
	name := fmt.Sprintf("w%d", i)
	if _, err := tx.ExecContext(ctx, "SAVEPOINT "+name); err != nil {
		return err
	}
	if err := fn(ctx, tx); err != nil {
		_, _ = tx.ExecContext(ctx, "ROLLBACK TO "+name)
		_, _ = tx.ExecContext(ctx, "RELEASE "+name)
		return classify(err)
	}
	_, err := tx.ExecContext(ctx, "RELEASE "+name)
	return err
}
