package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
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

// history lists the messages held in a cache file.
func history(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("cache", defaultCachePath(), "cache `file` (SQLite)")
	with := fs.String("with", "", "only messages with this `JID` (bare)")
	limit := fs.Int("n", 0, "show at most the last `n` messages (0: all)")
	jsonOut := fs.Bool("json", false, "print a JSON array")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pipebind history [-cache FILE] [-with JID] [-n N] [-json] ACCOUNT\n\nLists the messages of ACCOUNT held in the local cache, oldest first.\n\nflags:")
		fs.PrintDefaults()
	}
	acct, err := parseAccount(fs, args)
	if err != nil {
		return err
	}
	q := cache.MessageQuery{}
	if *with != "" {
		w, err := jid.Parse(*with)
		if err != nil {
			return fmt.Errorf("-with: %w", err)
		}
		q.Peer = w.Bare().String()
	}
	if *path == "" {
		return errors.New("-cache: no cache file")
	}
	db, err := cache.Open(ctx, *path)
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
		entries = append(entries, historyEntry{StanzaID: m.StanzaID, Peer: m.Peer, Direction: m.Direction, Time: m.Time, Body: m.Body})
	}
	if *jsonOut {
		return json.NewEncoder(stdout).Encode(entries)
	}
	w := bufio.NewWriter(stdout)
	for _, e := range entries {
		arrow := "<-"
		if e.Direction == cache.DirectionOut {
			arrow = "->"
		}
		fmt.Fprintf(w, "%s  %s %s  %s  [%s]\n", e.Time.Local().Format("2006-01-02 15:04:05"), arrow, e.Peer,
			strings.ReplaceAll(e.Body, "\n", " ⏎ "), e.StanzaID)
	}
	if len(entries) == 0 {
		fmt.Fprintln(w, "no messages")
	}
	return w.Flush()
}
