package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/pipebind/pipebind/cache"
)

// cacheCmd inspects (show) and deletes (forget) what the cache holds.
// Key material is never printed: only which keys exist.
func cacheCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cache", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("cache", defaultCachePath(), "cache `file` (SQLite)")
	jsonOut := fs.Bool("json", false, "print JSON (show)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pipebind cache [-cache FILE] [-json] show\n       pipebind cache [-cache FILE] forget JID\n\nshow lists server features, stored SCRAM keys (redacted) and message counts;\nforget deletes the JID's stored keys and its server's features.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
		if err == nil {
			fs.Usage()
		}
		return errUsage
	}
	if *path == "" {
		return errors.New("-cache: no cache file")
	}
	db, err := cache.Open(ctx, *path)
	if err != nil {
		return err
	}
	defer db.Close()
	switch fs.Arg(0) {
	case "show":
		return cacheShow(ctx, db, *jsonOut, stdout)
	case "forget":
		if fs.NArg() != 2 {
			fs.Usage()
			return errUsage
		}
		j, err := accountJID(fs.Arg(1))
		if err != nil {
			return err
		}
		acct := j.Bare().String()
		for _, forget := range []func(context.Context, string) error{db.ForgetScramKeys, db.ForgetFastToken, db.ForgetMechanismPin} {
			if err := forget(ctx, acct); err != nil {
				return err
			}
		}
		if err := db.ForgetFeatures(ctx, j.Domainpart()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "forgot the SCRAM keys, FAST token and mechanism pin of %s and the features of %s\n", j.Bare(), j.Domainpart())
		return nil
	}
	fs.Usage()
	return errUsage
}

func cacheShow(ctx context.Context, db *cache.DB, jsonOut bool, w io.Writer) error {
	feats, err := db.ListFeatures(ctx)
	if err != nil {
		return err
	}
	keys, err := db.ListScramKeys(ctx)
	if err != nil {
		return err
	}
	tokens, err := db.ListFastTokens(ctx)
	if err != nil {
		return err
	}
	pins, err := db.ListMechanismPins(ctx)
	if err != nil {
		return err
	}
	accts, err := db.Accounts(ctx)
	if err != nil {
		return err
	}
	type account struct {
		JID      string `json:"jid"`
		Messages int    `json:"messages"`
		Cursor   string `json:"cursor"`
	}
	var accounts []account
	for _, a := range accts {
		n, err := db.CountMessages(ctx, a)
		if err != nil {
			return err
		}
		c, err := db.Cursor(ctx, a)
		if err != nil {
			return err
		}
		accounts = append(accounts, account{a, n, c})
	}
	if jsonOut {
		type key struct {
			Account    string `json:"account"`
			Mechanism  string `json:"mechanism"`
			Iterations int    `json:"iterations"`
			Keys       string `json:"keys"`
		}
		type token struct {
			Account   string    `json:"account"`
			Mechanism string    `json:"mechanism"`
			Expiry    time.Time `json:"expiry"`
			Token     string    `json:"token"`
		}
		type pin struct {
			Account   string `json:"account"`
			Mechanism string `json:"mechanism"`
		}
		out := struct {
			Path      string           `json:"path"`
			Features  []cache.Features `json:"features"`
			ScramKeys []key            `json:"scram_keys"`
			Tokens    []token          `json:"fast_tokens"`
			Pins      []pin            `json:"mechanism_pins"`
			Accounts  []account        `json:"accounts"`
		}{Path: db.Path(), Features: feats, ScramKeys: []key{}, Tokens: []token{}, Pins: []pin{}, Accounts: accounts}
		for _, k := range keys {
			out.ScramKeys = append(out.ScramKeys, key{k.Account, k.Mechanism, k.Iterations, "[redacted]"})
		}
		for _, t := range tokens {
			out.Tokens = append(out.Tokens, token{t.Account, t.Mechanism, t.Expiry, "[redacted]"})
		}
		for _, p := range pins {
			out.Pins = append(out.Pins, pin{p.Account, p.Mechanism})
		}
		return json.NewEncoder(w).Encode(out)
	}
	fmt.Fprintf(w, "cache %s\n", db.Path())
	for _, f := range feats {
		path := "classic"
		switch {
		case f.SASL2 && f.Bind2:
			path = "sasl2"
		case f.Bind2Draft:
			path = "bind2-draft"
		}
		fmt.Fprintf(w, "  server %-24s best path %-11s mechanisms %v fast %v seen %s\n", f.Domain, path, f.SASL2Mechanisms, f.FASTMechanisms, f.SeenAt.Format("2006-01-02 15:04"))
	}
	for _, k := range keys {
		fmt.Fprintf(w, "  keys   %-24s %s, %d iterations: ClientKey/ServerKey [redacted]\n", k.Account, k.Mechanism, k.Iterations)
	}
	for _, t := range tokens {
		fmt.Fprintf(w, "  token  %-24s %s, expires %s: [redacted]\n", t.Account, t.Mechanism, t.Expiry.Format("2006-01-02 15:04"))
	}
	for _, p := range pins {
		fmt.Fprintf(w, "  pinned %-24s %s (the strongest password mechanism used)\n", p.Account, p.Mechanism)
	}
	for _, a := range accounts {
		fmt.Fprintf(w, "  msgs   %-24s %d messages, cursor %s\n", a.JID, a.Messages, orNone(a.Cursor))
	}
	return nil
}
