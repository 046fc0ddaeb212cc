package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/pipebind/pipebind/cache"
)

// What Dial does when the cache file (Config.CachePath) is faulty. The file
// holds two kinds of things:
//
//   - a cache: server features, SCRAM keys, FAST tokens, mechanism pins.
//     Losing them costs round trips and a PBKDF2, never the login: Dial logs
//     a warning and logs in without them, and a later login rebuilds them.
//   - data: messages, the sync cursor, read markers. They are never dropped
//     silently: a write that fails stores nothing and leaves the cursor
//     where it was, the sync's error (Client.SyncReport) says why, and the
//     next sync fetches the same messages again from the archive.
//
// Faults found when Dial opens the file:
//
//   - corrupt (cache.ErrCorrupt): the file is moved aside, with its WAL, to
//     NAME.corrupt-<UTC time> (cache.MoveAside), never deleted, and a fresh
//     file is created. The login reads features from the server; the sync
//     fetches the archive again. A corrupt file cannot be trusted to say
//     whether it held messages the archive has since expired, so it is
//     kept for a repair tool, and reported: Info.CacheFault is a
//     *CacheError with MovedTo set, and a warning is logged.
//   - read-only (cache.ErrReadOnly): the file is opened read-only. The login
//     uses what it holds; nothing learned is stored (a warning each time);
//     a sync that has messages to store fails with cache.ErrReadOnly.
//   - anything else (locked past the busy timeout, a newer schema, a missing
//     directory, ...): the login goes on without a cache, and SyncReport
//     returns ErrNoSync wrapping the fault.
//
// Faults during the session (locked, full, deleted, corrupt pages) come back
// from the cache calls as errors matching cache.ErrLocked, cache.ErrFull,
// cache.ErrGone, cache.ErrCorrupt or cache.ErrReadOnly: warnings for the
// cache, the sync's error for messages.
//
// A cache passed in Config.Cache belongs to the application: Dial never
// moves or reopens it, and its faults are reported the same way.

// CacheError is a fault of the cache file that Dial worked around (see
// Info.CacheFault). It wraps the cache package's error: test it with
// errors.Is against cache.ErrCorrupt, cache.ErrReadOnly, cache.ErrLocked ...
type CacheError struct {
	// Path is the cache file (Config.CachePath).
	Path string
	// MovedTo is where a corrupt file was moved (with its -wal and -shm),
	// empty when nothing was moved.
	MovedTo string
	// ReadOnly reports that the file is used read-only.
	ReadOnly bool
	// NoCache reports that the login went on without a cache.
	NoCache bool
	// Err is the fault.
	Err error
}

func (e *CacheError) Error() string {
	var what string
	switch {
	case e.MovedTo != "":
		what = "moved aside to " + e.MovedTo + "; started a fresh cache"
	case e.ReadOnly:
		what = "using it read-only"
	default:
		what = "logging in without it"
	}
	return fmt.Sprintf("client: cache %s: %s: %v", e.Path, what, e.Err)
}

func (e *CacheError) Unwrap() error { return e.Err }

// openCache returns the cache to use: Config.Cache (own false), the file
// Config.CachePath opened (own true), or nil. A faulty file is dealt with as
// described above: fault is then a *CacheError, and db may be nil. err is
// only for ctx ending.
func openCache(ctx context.Context, cfg Config, log zerolog.Logger) (db *cache.DB, own bool, fault error, err error) {
	if cfg.Cache != nil {
		return cfg.Cache, false, nil, nil
	}
	path := cfg.CachePath
	if path == "" {
		return nil, false, nil, nil
	}
	db, err = cache.Open(ctx, path)
	if err == nil {
		return db, true, nil, nil
	}
	if ctx.Err() != nil {
		return nil, false, nil, fmt.Errorf("client: open cache: %w", err)
	}
	fe := &CacheError{Path: path, Err: err}
	switch {
	case errors.Is(err, cache.ErrCorrupt):
		moved, merr := cache.MoveAside(path)
		if merr != nil {
			fe.Err, fe.NoCache = errors.Join(err, merr), true
			break
		}
		fe.MovedTo = moved
		db, err = cache.Open(ctx, path)
		if err != nil {
			fe.Err, fe.NoCache = errors.Join(fe.Err, err), true
			break
		}
		log.Warn().Err(fe.Err).Str("cache", path).Str("moved_to", moved).
			Msg("cache file corrupt: moved aside, not deleted; starting a fresh cache (messages are fetched again from the archive)")
		return db, true, fe, nil
	case errors.Is(err, cache.ErrReadOnly):
		db, err = cache.OpenWith(ctx, path, cache.Options{ReadOnly: true})
		if err != nil {
			fe.Err, fe.NoCache = errors.Join(fe.Err, err), true
			break
		}
		fe.ReadOnly = true
		log.Warn().Err(fe.Err).Str("cache", path).
			Msg("cache file read-only: using what it holds; nothing is stored, messages are not synced")
		return db, true, fe, nil
	default:
		fe.NoCache = true
	}
	if ctx.Err() != nil {
		return nil, false, nil, fmt.Errorf("client: open cache: %w", err)
	}
	log.Warn().Err(fe.Err).Str("cache", path).Msg("cache file unusable: logging in without a cache; messages are not synced")
	return nil, false, fe, nil
}

// noteCacheFault makes SyncReport say why there is no sync when a faulty
// cache file left the client without a cache.
func (c *link) noteCacheFault(fault error) {
	var fe *CacheError
	if !errors.As(fault, &fe) || !fe.NoCache {
		return
	}
	c.mu.Lock()
	if errors.Is(c.syncErr, ErrNoSync) {
		c.syncErr = fmt.Errorf("%w: %w", ErrNoSync, fault)
	}
	c.mu.Unlock()
}
