package cache

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Features returns the stored features of domain. The domain is matched
// case-insensitively.
//
// ok is false, with a nil error, when there is no usable entry: none at all,
// one written with another FeaturesVersion, or one whose stored JSON does not
// decode. Such an entry is a cache miss, not a failure; the next PutFeatures
// replaces it. err is reserved for the database failing.
func (db *DB) Features(ctx context.Context, domain string) (f Features, ok bool, err error) {
	h, err := db.handle()
	if err != nil {
		return Features{}, false, fmt.Errorf("cache: features: %w", classify(err))
	}
	key := domainKey(domain)
	if key == "" {
		return Features{}, false, nil
	}
	var (
		version int
		data    string
	)
	err = h.QueryRowContext(ctx,
		`SELECT version, data FROM server_features WHERE domain = ?`, key,
	).Scan(&version, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return Features{}, false, nil
	}
	if err != nil {
		return Features{}, false, fmt.Errorf("cache: features: %w", classify(err))
	}
	f, ok = decodeFeatures(key, version, data)
	return f, ok, nil
}

// decodeFeatures decodes a server_features row; ok is false when it is not
// a usable entry.
func decodeFeatures(domain string, version int, data string) (f Features, ok bool) {
	if version != FeaturesVersion {
		return Features{}, false
	}
	if err := json.Unmarshal([]byte(data), &f); err != nil || f.Version != FeaturesVersion {
		return Features{}, false
	}
	f.Domain = domain // the key is authoritative
	f.Normalize()     // stored normalized; cheap to make sure
	return f, true
}

// PutFeatures stores f as the features of f.Domain, replacing any earlier
// entry. What is stored is normalized (see Features.Normalize), with Version
// set to FeaturesVersion and a zero SeenAt set to now; SeenAt is kept in UTC.
// f itself is not modified. An empty Domain is an error.
func (db *DB) PutFeatures(ctx context.Context, f Features) error {
	h, err := db.handle()
	if err != nil {
		return fmt.Errorf("cache: put features: %w", classify(err))
	}
	f, data, err := encodeFeatures(f)
	if err != nil {
		return fmt.Errorf("cache: put features: %w", classify(err))
	}
	if err := upsertFeatures(ctx, h, f, data); err != nil {
		return fmt.Errorf("cache: put features: %w", classify(err))
	}
	return nil
}

// encodeFeatures returns f as stored (normalized, versioned, SeenAt in
// UTC) and its JSON.
func encodeFeatures(f Features) (Features, string, error) {
	f = f.Normalized()
	if f.Domain == "" {
		return f, "", errors.New("empty domain")
	}
	f.Version = FeaturesVersion
	if f.SeenAt.IsZero() {
		f.SeenAt = time.Now()
	}
	f.SeenAt = f.SeenAt.UTC() // also drops the monotonic reading
	data, err := json.Marshal(f)
	if err != nil {
		return f, "", err
	}
	return f, string(data), nil
}

// upsertFeatures writes f (as returned by encodeFeatures) and its JSON.
func upsertFeatures(ctx context.Context, q querier, f Features, data string) error {
	// An upsert rather than INSERT OR REPLACE: REPLACE deletes the old row
	// first, which would cascade to rows that later schema versions attach
	// to a server.
	_, err := q.ExecContext(ctx, `
INSERT INTO server_features (domain, version, seen_at, sasl2, bind2, bind2_draft, direct_tls, data)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (domain) DO UPDATE SET
	version     = excluded.version,
	seen_at     = excluded.seen_at,
	sasl2       = excluded.sasl2,
	bind2       = excluded.bind2,
	bind2_draft = excluded.bind2_draft,
	direct_tls  = excluded.direct_tls,
	data        = excluded.data`,
		f.Domain, f.Version, f.SeenAt.Unix(), f.SASL2, f.Bind2, f.Bind2Draft, f.DirectTLS, data)
	return err
}

// ForgetFeatures deletes the stored features of domain (matched
// case-insensitively). Forgetting a domain that has no entry is not an error.
func (db *DB) ForgetFeatures(ctx context.Context, domain string) error {
	h, err := db.handle()
	if err != nil {
		return fmt.Errorf("cache: forget features: %w", classify(err))
	}
	if _, err := h.ExecContext(ctx, `DELETE FROM server_features WHERE domain = ?`, domainKey(domain)); err != nil {
		return fmt.Errorf("cache: forget features: %w", classify(err))
	}
	return nil
}

// ListFeatures returns every usable entry, ordered by domain. Entries that
// Features would report as a miss (another FeaturesVersion, undecodable JSON)
// are left out.
func (db *DB) ListFeatures(ctx context.Context) ([]Features, error) {
	h, err := db.handle()
	if err != nil {
		return nil, fmt.Errorf("cache: list features: %w", classify(err))
	}
	rows, err := h.QueryContext(ctx, `SELECT domain, version, data FROM server_features ORDER BY domain`)
	if err != nil {
		return nil, fmt.Errorf("cache: list features: %w", classify(err))
	}
	defer rows.Close()
	var list []Features
	for rows.Next() {
		var (
			domain, data string
			version      int
		)
		if err := rows.Scan(&domain, &version, &data); err != nil {
			return nil, fmt.Errorf("cache: list features: %w", classify(err))
		}
		if f, ok := decodeFeatures(domain, version, data); ok {
			list = append(list, f)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cache: list features: %w", classify(err))
	}
	return list, nil
}
