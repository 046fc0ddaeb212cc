package client

import (
	"context"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/mds"
)

// ErrNoCache is returned by the message and marker methods of a client
// without a cache.
var ErrNoCache = errors.New("client: no message cache configured")

// Unreads returns the unread state per peer: on a XEP-0386 v0.3.0 server the
// server's counts and read ids win; elsewhere counts are computed from the
// cache and the displayed markers (local, and XEP-0490 markers fetched from
// the account's PEP at sync).
func (c *link) Unreads(ctx context.Context) ([]cache.PeerState, error) {
	if c.db == nil {
		return nil, ErrNoCache
	}
	return c.db.Unreads(ctx, c.info.JID.Bare().String())
}

// MarkDisplayed records that the user has seen the message with archive id
// stanzaID from peer (and everything before it). Markers only move forward.
// When the marker moved, it is published as a XEP-0490 displayed marker so
// the account's other devices see it; a server without PEP keeps it local.
func (c *link) MarkDisplayed(ctx context.Context, peer jid.JID, stanzaID string) error {
	if c.db == nil {
		return ErrNoCache
	}
	acct := c.info.JID.Bare()
	moved, err := c.db.MarkDisplayed(ctx, acct.String(), peer.Bare().String(), stanzaID)
	if err != nil || !moved {
		return err
	}
	rctx, finish := c.request(ctx)
	err = finish(mds.Publish(rctx, c.sess, mds.Marker{Peer: peer.Bare(), StanzaID: stanzaID, By: acct}))
	var se stanza.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se) && noPEP(se):
		c.log.Debug().Str("condition", string(se.Condition)).Msg("no XEP-0490 on this server; marker kept locally")
		return nil
	}
	return fmt.Errorf("client: publishing the displayed marker: %w", err)
}

// noPEP reports the conditions of a server without (usable) PEP: the marker
// stays local.
func noPEP(se stanza.Error) bool {
	switch se.Condition {
	case stanza.FeatureNotImplemented, stanza.ServiceUnavailable, stanza.ItemNotFound, stanza.NotAllowed, stanza.Forbidden:
		return true
	}
	return false
}

// fetchDisplayed applies the XEP-0490 markers stored in the account's PEP
// to the cache: those of one-to-one conversations, whose stanza-ids are the
// account's archive ids (the cache holds no groupchat).
func (c *link) fetchDisplayed(ctx context.Context) error {
	rctx, finish := c.request(ctx)
	markers, err := mds.Fetch(rctx, c.sess)
	err = finish(err)
	if err != nil {
		return c.noMarkers(err)
	}
	return c.applyMarkers(ctx, markers)
}

// noMarkers is the outcome of a marker fetch that failed: an IQ error means
// no node yet, or no PEP, so nothing to apply; any other error is one.
func (c *link) noMarkers(err error) error {
	if errors.As(err, new(stanza.Error)) {
		return nil
	}
	return err
}

// applyMarkers records the account's own markers (XEP-0490) in the cache.
func (c *link) applyMarkers(ctx context.Context, markers []mds.Marker) error {
	acct := c.info.JID.Bare()
	for _, m := range markers {
		if !m.By.Equal(acct) {
			continue
		}
		_, err := c.db.MarkDisplayed(ctx, acct.String(), m.Peer.String(), m.StanzaID)
		if err != nil && !errors.Is(err, cache.ErrUnknownMessage) {
			return err
		}
	}
	return nil
}
