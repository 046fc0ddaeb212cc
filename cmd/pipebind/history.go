package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
)

type historyEntry struct {
	StanzaID  string          `json:"stanza_id"`
	Peer      string          `json:"peer"`
	Direction cache.Direction `json:"direction"`
	Time      time.Time       `json:"time"`
	Body      string          `json:"body"`
}

func newHistoryEntry(m cache.StoredMessage) historyEntry {
	return historyEntry{StanzaID: m.StanzaID, Peer: m.Peer, Direction: m.Direction, Time: m.Time, Body: m.Body}
}

// print writes e as one line: time, direction, peer, body, stanza-id.
func (e historyEntry) print(w io.Writer) error {
	arrow := "<-"
	if e.Direction == cache.DirectionOut {
		arrow = "->"
	}
	_, err := fmt.Fprintf(w, "%s  %s %s  %s  [%s]\n", e.Time.Local().Format("2006-01-02 15:04:05"), arrow, e.Peer,
		strings.ReplaceAll(e.Body, "\n", " ⏎ "), e.StanzaID)
	return err
}

var historyCommand = command{name: "history", args: []string{"ACCOUNT"},
	about: "Lists the messages of ACCOUNT held in the local cache, oldest first (no network)."}

// history lists the messages held in a cache file.
func history(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	path := fs.String("cache", envOr(envCache, defaultCachePath()), "cache `file` (SQLite; default $"+envCache+")")
	with := fs.String("with", "", "only messages with this `JID` (bare)")
	limit := fs.Int("n", 0, "show at most the last `n` messages (0: all)")
	jsonOut := fs.Bool("json", false, "print a JSON array")
	acct, _, err := historyCommand.parseAccount(fs, args, stdout)
	if err != nil {
		return err
	}
	if err := atLeastZero("-n", *limit, "all"); err != nil {
		return err
	}
	q := cache.MessageQuery{}
	if *with != "" {
		w, err := jid.Parse(*with)
		if err != nil {
			return usagef("-with %q: %v", *with, err)
		}
		q.Peer = w.Bare().String()
	}
	db, err := openExisting(ctx, *path)
	if err != nil {
		return err
	}
	defer db.Close()
	msgs, err := db.Messages(ctx, acct.Bare().String(), q)
	if err != nil {
		return err
	}
	if *limit > 0 && len(msgs) > *limit {
		msgs = msgs[len(msgs)-*limit:]
	}
	entries := make([]historyEntry, 0, len(msgs))
	for _, m := range msgs {
		entries = append(entries, newHistoryEntry(m))
	}
	if *jsonOut {
		return json.NewEncoder(stdout).Encode(entries)
	}
	w := bufio.NewWriter(stdout)
	for _, e := range entries {
		_ = e.print(w) // bufio: Flush reports the error
	}
	if len(entries) == 0 {
		fmt.Fprintln(w, "no messages")
	}
	return w.Flush()
}

// openExisting opens a cache file that must exist already (history, cache
// show and forget): a mistyped path is an error that names it, never a new
// empty database.
func openExisting(ctx context.Context, path string) (*cache.DB, error) {
	if path == "" {
		return nil, usagef("-cache: no cache file (-cache or %s)", envCache)
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, usagef("no cache file %s (-cache or %s names it; probe, sync and listen create it)", path, envCache)
	}
	db, err := cache.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", path, err)
	}
	return db, nil
}
