package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/login"
	"github.com/pipebind/pipebind/mamsync"
)

// ErrNoSync is returned by SyncReport when no reconciliation runs (no
// cache, or Config.NoSync).
var ErrNoSync = errors.New("client: message sync is off")

// closedChan is a closed channel: Synced's answer when there is no sync.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// startSync runs the reconciliation after the login and the catch-up loop,
// on goroutines that Close stops.
func (c *link) startSync(db *cache.DB) {
	if c.syncer == nil {
		c.mu.Lock()
		c.syncErr = ErrNoSync
		c.ready = c.info.Timings.Total // logged in is ready
		c.mu.Unlock()
		c.syncDone = closedChan
		return
	}
	c.syncDone = make(chan struct{})
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		rep, err := c.reconcile(db)
		err = c.syncError(err)
		c.mu.Lock()
		c.syncRep, c.syncErr = rep, err
		if err == nil {
			c.ready = time.Since(c.dialStart)
		}
		c.mu.Unlock()
		if err != nil && c.ctx.Err() == nil {
			c.log.Warn().Err(err).Msg("reconcile failed")
		}
		close(c.syncDone)
		for {
			select {
			case <-c.ctx.Done():
				return
			case <-c.syncer.Live():
				// Live messages are stored here, never on the session's
				// reading goroutine: a store waiting for the database
				// delays no acknowledgement and no IQ answer.
				if _, err := c.syncer.StoreLive(c.ctx); err != nil && c.ctx.Err() == nil {
					// The error is set before it is logged: who reads the
					// log line finds it in SyncReport.
					err = c.syncError(err)
					c.setSyncErr(err)
					c.log.Error().Err(err).Msg("storing live messages failed; the next reconcile fetches them")
				}
			case <-c.syncer.NeedCatchUp():
				if _, err := c.syncer.CatchUp(c.ctx, c.sess); err != nil && c.ctx.Err() == nil {
					err = c.syncError(err)
					c.setSyncErr(err)
					c.log.Warn().Err(err).Msg("catch-up failed")
				}
			}
		}
	}()
}

func (c *link) reconcile(db *cache.DB) (mamsync.Report, error) {
	acct := c.info.JID.Bare().String()
	rep, err := c.page()
	if err != nil {
		return rep, err
	}
	// v0.3.0: the server's unread counts win (cache.SetServerUnread counts
	// messages stored after the report on top, so it comes after the sync).
	if d := c.info.Draft; d != nil && d.Unreads != nil {
		for _, u := range d.Unreads {
			if err := db.SetServerUnread(c.ctx, acct, u.JID.String(), u.ReadID, u.Count); err != nil {
				return rep, err
			}
		}
	}
	if c.info.Draft == nil {
		// XEP-0490: the markers other devices published.
		markers := c.fetchDisplayed
		if c.ahead != nil {
			markers = c.aheadMarkers // asked in the login's write
		}
		if err := markers(c.ctx); err != nil {
			return rep, fmt.Errorf("client: displayed markers: %w", err)
		}
	}
	return rep, nil
}

// page brings the store level with the archive: from the first page the
// login's write asked for, or from where the archive says it stands (the
// v0.3.0 <bound>'s latest-id, or its metadata).
func (c *link) page() (mamsync.Report, error) {
	if c.aheadQ != nil {
		return c.syncer.ReconcileAhead(c.ctx, c.sess, c.aheadQ)
	}
	var t mamsync.Target
	if d := c.info.Draft; d != nil {
		t = mamsync.Target{LatestID: d.LatestID, Known: true}
	} else {
		var err error
		t, err = mamsync.Metadata(c.ctx, c.sess)
		switch {
		case errors.Is(err, mamsync.ErrNoMetadata):
			t = mamsync.Target{}
		case err != nil:
			return mamsync.Report{}, err
		}
	}
	return c.syncer.Reconcile(c.ctx, c.sess, t)
}

// syncError types an error of the reconciliation: the session's own end
// when the session ended under it, a *DropError for a lost connection,
// ErrTimeout for a deadline.
func (c *link) syncError(err error) error {
	if err == nil {
		return nil
	}
	if c.ctx.Err() != nil {
		if serr := c.Err(); serr != nil && !errors.Is(serr, ErrClosed) {
			return fmt.Errorf("client: session ended during sync: %w (%v)", serr, err)
		}
	}
	switch {
	case login.ConnectionLost(err):
		return fmt.Errorf("client: sync: %w", &DropError{Err: err})
	case errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrTimeout):
		return fmt.Errorf("client: sync: %w (%w)", ErrTimeout, err)
	}
	return err
}

// ctxError is the error of a wait ctx ended: a deadline also matches
// ErrTimeout.
func ctxError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (%w)", ErrTimeout, err)
	}
	return err
}

func (c *link) setSyncErr(err error) {
	c.mu.Lock()
	if c.syncErr == nil {
		c.syncErr = err
	}
	c.mu.Unlock()
}

// Synced is closed when the reconciliation after the login has finished
// (or immediately when sync is off).
func (c *link) Synced() <-chan struct{} { return c.syncDone }

// SyncReport waits for the reconciliation after the login (bounded by ctx)
// and returns its report.
func (c *link) SyncReport(ctx context.Context) (mamsync.Report, error) {
	select {
	case <-c.syncDone:
	case <-ctx.Done():
		return mamsync.Report{}, fmt.Errorf("client: sync report: %w", ctxError(ctx.Err()))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.syncRep, c.syncErr
}
