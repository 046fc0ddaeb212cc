package cache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// FastToken is a XEP-0484 FAST token: a secret the server issued for one
// account and installation, bound to one mechanism. It is as sensitive as a
// password: the file is 0600, and the token is never logged or listed.
type FastToken struct {
	// Mechanism is the HT-* mechanism the token was issued for.
	Mechanism string
	// Token is the secret, exactly as the server sent it.
	Token []byte
	// Expiry is when the server stops accepting the token.
	Expiry time.Time
}

// Valid reports whether t can be tried at now: it is complete and has not
// expired.
func (t FastToken) Valid(now time.Time) bool {
	return t.Mechanism != "" && len(t.Token) > 0 && now.Before(t.Expiry)
}

// FastTokenFor returns the FAST token stored for the default instance of
// account (FastTokenOf with instance ""). A token that has expired is not
// returned (ok is false): it is never tried.
func (db *DB) FastTokenFor(ctx context.Context, account string) (t FastToken, ok bool, err error) {
	return db.FastTokenOf(ctx, account, "")
}

// FastTokenOf returns the FAST token stored for one instance of account
// (see ClaimInstance): a token is issued to one client's user-agent id. A
// token that has expired is not returned (ok is false).
func (db *DB) FastTokenOf(ctx context.Context, account, instance string) (t FastToken, ok bool, err error) {
	h, err := db.handle()
	if err != nil {
		return t, false, fmt.Errorf("cache: fast token: %w", classify(err))
	}
	var exp int64
	err = h.QueryRowContext(ctx, `SELECT mechanism, token, expiry FROM fast_tokens WHERE account = ? AND instance = ?`,
		jidKey(account), instance).Scan(&t.Mechanism, &t.Token, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return FastToken{}, false, nil
	}
	if err != nil {
		return FastToken{}, false, fmt.Errorf("cache: fast token: %w", classify(err))
	}
	t.Expiry = time.Unix(exp, 0).UTC()
	if !t.Valid(time.Now()) {
		return FastToken{}, false, nil
	}
	return t, true, nil
}

// ForgetFastToken deletes the FAST tokens of every instance of account (the
// user logs out). Forgetting a missing token is not an error.
func (db *DB) ForgetFastToken(ctx context.Context, account string) error {
	err := db.small(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM fast_tokens WHERE account = ?`, jidKey(account))
		return err
	})
	if err != nil {
		return fmt.Errorf("cache: forget fast token: %w", classify(err))
	}
	return nil
}

// ForgetFastTokenOf deletes the FAST token of one instance of account (the
// server refused it).
func (db *DB) ForgetFastTokenOf(ctx context.Context, account, instance string) error {
	err := db.small(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM fast_tokens WHERE account = ? AND instance = ?`, jidKey(account), instance)
		return err
	})
	if err != nil {
		return fmt.Errorf("cache: forget fast token: %w", classify(err))
	}
	return nil
}

// StoredToken describes a stored FAST token without the secret.
type StoredToken struct {
	Account   string
	Instance  string
	Mechanism string
	Expiry    time.Time
	Updated   time.Time
}

// ListFastTokens lists the stored FAST tokens (never the secrets), for tools
// such as pipebind cache show.
func (db *DB) ListFastTokens(ctx context.Context) ([]StoredToken, error) {
	h, err := db.handle()
	if err != nil {
		return nil, fmt.Errorf("cache: list fast tokens: %w", classify(err))
	}
	rows, err := h.QueryContext(ctx, `SELECT account, instance, mechanism, expiry, updated_at FROM fast_tokens ORDER BY account, instance`)
	if err != nil {
		return nil, fmt.Errorf("cache: list fast tokens: %w", classify(err))
	}
	defer rows.Close()
	var out []StoredToken
	for rows.Next() {
		var t StoredToken
		var exp, upd int64
		if err := rows.Scan(&t.Account, &t.Instance, &t.Mechanism, &exp, &upd); err != nil {
			return nil, fmt.Errorf("cache: list fast tokens: %w", classify(err))
		}
		t.Expiry, t.Updated = time.Unix(exp, 0).UTC(), time.Unix(upd, 0).UTC()
		out = append(out, t)
	}
	return out, rows.Err()
}

// MechanismPin returns the pinned mechanism of account: the strongest
// password mechanism a login of that account has used. ok is false when
// nothing is pinned yet.
func (db *DB) MechanismPin(ctx context.Context, account string) (mechanism string, ok bool, err error) {
	h, err := db.handle()
	if err != nil {
		return "", false, fmt.Errorf("cache: mechanism pin: %w", classify(err))
	}
	err = h.QueryRowContext(ctx, `SELECT mechanism FROM mechanism_pins WHERE account = ?`, jidKey(account)).Scan(&mechanism)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("cache: mechanism pin: %w", classify(err))
	}
	return mechanism, true, nil
}

// ForgetMechanismPin deletes the pin of account.
func (db *DB) ForgetMechanismPin(ctx context.Context, account string) error {
	err := db.small(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM mechanism_pins WHERE account = ?`, jidKey(account))
		return err
	})
	if err != nil {
		return fmt.Errorf("cache: forget mechanism pin: %w", classify(err))
	}
	return nil
}

// LoginRecord is what a successful login leaves in the cache, written by
// RecordLogin in one transaction: either all of it is stored or none.
type LoginRecord struct {
	// Account is the bare JID that logged in.
	Account string
	// Instance is the instance of the account that logged in (its FAST
	// token is its own); "" is the default instance.
	Instance string
	// Features, when non-nil, replace the stored features of
	// Features.Domain.
	Features *Features
	// Token, when non-nil, replaces the instance's FAST token (a new or
	// rotated token).
	Token *FastToken
	// ForgetToken deletes the instance's FAST token (ignored with Token).
	ForgetToken bool
	// Pin, when non-empty, becomes the account's pinned mechanism.
	Pin string
	// ScramKeys, when non-nil, replace the account's SCRAM keys for
	// ScramKeys.Mechanism (keys the login derived; see PutScramKeys).
	ScramKeys *ScramKeys
}

// RecordLogin stores r in one transaction, so that a token is never kept
// without the login that obtained it, nor the other way round.
func (db *DB) RecordLogin(ctx context.Context, r LoginRecord) error {
	acct := jidKey(r.Account)
	if acct == "" {
		return errors.New("cache: record login: empty account")
	}
	var fdata string
	var f Features
	if r.Features != nil {
		var err error
		f, fdata, err = encodeFeatures(*r.Features)
		if err != nil {
			return fmt.Errorf("cache: record login: %w", classify(err))
		}
	}
	if r.Token != nil && (r.Token.Mechanism == "" || len(r.Token.Token) == 0) {
		return errors.New("cache: record login: incomplete FAST token")
	}
	if r.ScramKeys != nil && !r.ScramKeys.complete() {
		return errors.New("cache: record login: incomplete SCRAM keys")
	}
	now := time.Now().Unix()
	err := db.small(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if r.Features != nil {
			if err := upsertFeatures(ctx, tx, f, fdata); err != nil {
				return err
			}
		}
		switch {
		case r.Token != nil:
			if _, err := tx.ExecContext(ctx, `
INSERT INTO fast_tokens (account, instance, mechanism, token, expiry, updated_at) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (account, instance) DO UPDATE SET
	mechanism = excluded.mechanism, token = excluded.token,
	expiry = excluded.expiry, updated_at = excluded.updated_at`,
				acct, r.Instance, r.Token.Mechanism, r.Token.Token, r.Token.Expiry.Unix(), now); err != nil {
				return err
			}
		case r.ForgetToken:
			if _, err := tx.ExecContext(ctx, `DELETE FROM fast_tokens WHERE account = ? AND instance = ?`, acct, r.Instance); err != nil {
				return err
			}
		}
		if r.Pin != "" {
			if _, err := tx.ExecContext(ctx, `
INSERT INTO mechanism_pins (account, mechanism, updated_at) VALUES (?, ?, ?)
ON CONFLICT (account) DO UPDATE SET mechanism = excluded.mechanism, updated_at = excluded.updated_at`,
				acct, r.Pin, now); err != nil {
				return err
			}
		}
		if r.ScramKeys != nil {
			return putScramKeys(ctx, tx, acct, *r.ScramKeys, now)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache: record login: %w", classify(err))
	}
	return nil
}

// StoredPin is an account's pinned mechanism.
type StoredPin struct {
	Account   string
	Mechanism string
	Updated   time.Time
}

// ListMechanismPins lists the pinned mechanisms, for tools such as pipebind
// cache show.
func (db *DB) ListMechanismPins(ctx context.Context) ([]StoredPin, error) {
	h, err := db.handle()
	if err != nil {
		return nil, fmt.Errorf("cache: list mechanism pins: %w", classify(err))
	}
	rows, err := h.QueryContext(ctx, `SELECT account, mechanism, updated_at FROM mechanism_pins ORDER BY account`)
	if err != nil {
		return nil, fmt.Errorf("cache: list mechanism pins: %w", classify(err))
	}
	defer rows.Close()
	var out []StoredPin
	for rows.Next() {
		var p StoredPin
		var upd int64
		if err := rows.Scan(&p.Account, &p.Mechanism, &upd); err != nil {
			return nil, fmt.Errorf("cache: list mechanism pins: %w", classify(err))
		}
		p.Updated = time.Unix(upd, 0).UTC()
		out = append(out, p)
	}
	return out, classify(rows.Err())
}
