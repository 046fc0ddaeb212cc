package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/pipebind/pipebind/cache"
)

var markReadCommand = command{name: "mark-read", args: []string{"ACCOUNT", "PEER"},
	about: "Logs in as ACCOUNT, brings the local cache level with the archive, and marks the\n" +
		"conversation with PEER read up to its newest message (or -id): a XEP-0490 displayed\n" +
		"marker that the account's other devices see (kept local on a server without PEP)."}

// marked is the JSON of pipebind mark-read.
type marked struct {
	Peer   string `json:"peer"`
	ReadID string `json:"read_id"`
	Unread int    `json:"unread"`
}

func markRead(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mark-read", flag.ContinueOnError)
	var pf probeFlags
	pf.register(fs)
	id := fs.String("id", "", "the archive `stanza-id` to mark read up to (default: the conversation's newest)")
	j, pos, err := markReadCommand.parseAccount(fs, args, stdout)
	if err != nil {
		return err
	}
	peer, err := argJID("PEER", pos[1])
	if err != nil {
		return err
	}
	peer = peer.Bare()
	cfg, db, err := pf.configWithCache(ctx, j, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	cfg.NoPresence = true
	c, err := pf.dial(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	opCtx, cancel := pf.opContext(ctx)
	defer cancel()
	if _, err := c.SyncReport(opCtx); err != nil {
		return fmt.Errorf("bringing the cache level: %w", err)
	}
	acct := j.Bare().String()
	readID := *id
	if readID == "" {
		if readID, err = newestWith(ctx, db, acct, peer.String()); err != nil {
			return err
		}
	}
	if err := c.MarkDisplayed(opCtx, peer, readID); err != nil {
		return fmt.Errorf("marking %s read: %w", peer, err)
	}
	out := marked{Peer: peer.String(), ReadID: readID}
	states, err := db.Unreads(ctx, acct)
	if err != nil {
		return err
	}
	for _, s := range states {
		if s.Peer == out.Peer {
			out.Unread = s.Unread
		}
	}
	if pf.jsonOut {
		return json.NewEncoder(stdout).Encode(out)
	}
	_, err = fmt.Fprintf(stdout, "%s: read up to %s, %d unread\n", out.Peer, out.ReadID, out.Unread)
	return err
}

// newestWith returns the stanza-id of the newest cached message of acct
// with peer.
func newestWith(ctx context.Context, db *cache.DB, acct, peer string) (string, error) {
	msgs, err := db.Messages(ctx, acct, cache.MessageQuery{Peer: peer})
	if err != nil {
		return "", err
	}
	if len(msgs) == 0 {
		return "", fmt.Errorf("no message with %s in the cache (%s): nothing to mark read", peer, db.Path())
	}
	return msgs[len(msgs)-1].StanzaID, nil
}
