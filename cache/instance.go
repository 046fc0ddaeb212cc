package cache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// ErrInstanceInUse reports an instance of an account that another client
// uses: in this process, or in another process that is still running.
var ErrInstanceInUse = errors.New("instance in use by another client")

// Instance is one client of an account among those that share a cache file
// (bots of one account in one process, two runs of pipebind sync, ...). Each
// has a user-agent id of its own, stable across runs, which the server ties
// its resource and its FAST token to (XEP-0388, XEP-0484): two clients with
// one user-agent id would bind the same resource and throw each other out
// (a conflict stream error). An Instance is claimed (ClaimInstance) for as
// long as a client runs, and released when it stops; a claim held by a
// process that has died is taken over.
type Instance struct {
	// Account is the bare JID, as given.
	Account string
	// Name is the instance's name; "" is the account's default instance,
	// whose user-agent id is the installation's (InstallationID).
	Name string
	// UserAgentID is its SASL2 user-agent id.
	UserAgentID string

	db   *DB
	key  string
	once sync.Once
}

// claims are this process's claims, by file and instance: within a process
// the registry decides; between processes, the claimed_pid column.
var claims sync.Map // claimKey -> struct{}

func claimKey(db *DB, account, name string) string {
	file := db.path
	if file == "" {
		file = fmt.Sprintf("memory %p", db) // each in-memory DB is its own
	}
	return file + "\x00" + jidKey(account) + "\x00" + name
}

// maxAutoInstances bounds ClaimAnyInstance's search.
const maxAutoInstances = 64

// ClaimInstance claims the instance name of account for this client until
// Release; it returns ErrInstanceInUse if another client (of this process,
// or of another that runs) holds it.
func (db *DB) ClaimInstance(ctx context.Context, account, name string) (*Instance, error) {
	key := claimKey(db, account, name)
	if _, held := claims.LoadOrStore(key, struct{}{}); held {
		return nil, fmt.Errorf("cache: claim instance %q of %s: %w (this process)", name, account, ErrInstanceInUse)
	}
	in := &Instance{Account: account, Name: name, db: db, key: key}
	err := db.small(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		in.UserAgentID, err = claimRow(ctx, tx, jidKey(account), name)
		return err
	})
	if err != nil {
		claims.Delete(key)
		return nil, fmt.Errorf("cache: claim instance %q of %s: %w", name, account, classify(err))
	}
	return in, nil
}

// ClaimAnyInstance claims the first free instance of account among "" (the
// default), "2", "3", ...: the first client of a cache gets the default
// instance, a second one running at the same time "2", and each keeps its
// user-agent id from run to run as long as they start in the same order.
func (db *DB) ClaimAnyInstance(ctx context.Context, account string) (*Instance, error) {
	for n := 1; n <= maxAutoInstances; n++ {
		name := ""
		if n > 1 {
			name = strconv.Itoa(n)
		}
		in, err := db.ClaimInstance(ctx, account, name)
		if !errors.Is(err, ErrInstanceInUse) {
			return in, err
		}
	}
	return nil, fmt.Errorf("cache: claim an instance of %s: %w (all %d)", account, ErrInstanceInUse, maxAutoInstances)
}

// claimRow takes the instance's row for this process and returns its
// user-agent id, creating both when the instance is new.
func claimRow(ctx context.Context, tx *sql.Tx, acct, name string) (string, error) {
	var ua string
	var pid, start int64
	err := tx.QueryRowContext(ctx, `SELECT user_agent_id, claimed_pid, claimed_start FROM instances WHERE account = ? AND name = ?`,
		acct, name).Scan(&ua, &pid, &start)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if ua, err = newInstanceUA(ctx, tx, name); err != nil {
			return "", err
		}
	case err != nil:
		return "", err
	case pid != 0 && pid != int64(os.Getpid()) && processRuns(int(pid), start):
		return "", fmt.Errorf("%w (process %d)", ErrInstanceInUse, pid)
	}
	// A claim of this process's own is stale (the registry holds the live
	// ones), as is one of a process that has ended.
	_, err = tx.ExecContext(ctx, `
INSERT INTO instances (account, name, user_agent_id, claimed_pid, claimed_start) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (account, name) DO UPDATE SET claimed_pid = excluded.claimed_pid, claimed_start = excluded.claimed_start`,
		acct, name, ua, os.Getpid(), processStart(os.Getpid()))
	return ua, err
}

// newInstanceUA is a new instance's user-agent id: the installation's for
// the default instance (so that a file from before instances keeps its
// tokens), a new random one otherwise.
func newInstanceUA(ctx context.Context, tx *sql.Tx, name string) (string, error) {
	id, err := newUUID()
	if err != nil || name != "" {
		return id, err
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT OR IGNORE INTO installation (id, user_agent_id, created_at) VALUES (1, ?, ?)`, id, time.Now().Unix()); err != nil {
		return "", err
	}
	return installationID(ctx, tx)
}

// Release gives the instance up. It is idempotent; the DB must still be
// open.
func (in *Instance) Release(ctx context.Context) error {
	var err error
	in.once.Do(func() {
		defer claims.Delete(in.key)
		err = in.db.small(ctx, func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE instances SET claimed_pid = 0, claimed_start = 0 WHERE account = ? AND name = ? AND claimed_pid = ?`,
				jidKey(in.Account), in.Name, os.Getpid())
			return err
		})
		if err != nil {
			err = fmt.Errorf("cache: release instance %q of %s: %w", in.Name, in.Account, classify(err))
		}
	})
	return err
}
