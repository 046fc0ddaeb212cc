package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
)

var cacheCommand = command{name: "cache", args: []string{"show|forget", "[ACCOUNT]"}, optional: 1,
	about: "show lists server features, stored SCRAM keys and FAST tokens (redacted), pins and message counts.\n" +
		"forget ACCOUNT deletes what stands in for ACCOUNT's password (SCRAM keys, FAST token, pin) and\n" +
		"the features of its server, so that the next login checks the password; with -messages, also\n" +
		"ACCOUNT's messages, sync cursor and read markers. Neither creates a cache file."}

// cacheCmd inspects (show) and deletes (forget) what the cache holds.
// Key material is never printed: only which keys exist.
func cacheCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cache", flag.ContinueOnError)
	path := fs.String("cache", envOr(envCache, defaultCachePath()), "cache `file` (SQLite; default $"+envCache+")")
	jsonOut := fs.Bool("json", false, "print JSON")
	messages := fs.Bool("messages", false, "forget: also delete the account's messages, cursor and markers")
	pos, err := cacheCommand.parse(fs, args, stdout)
	if err != nil {
		return err
	}
	switch {
	case pos[0] == "show" && len(pos) == 1:
	case pos[0] == "forget" && len(pos) == 2:
	case pos[0] == "show" || pos[0] == "forget":
		return usagef("want \"show\", or \"forget ACCOUNT\" (pipebind cache -h)")
	default:
		return usagef("unknown cache command %q: want show or forget", pos[0])
	}
	var acct jid.JID
	if pos[0] == "forget" {
		if acct, err = accountJID(pos[1]); err != nil {
			return err
		}
	}
	db, err := openExisting(ctx, *path)
	if err != nil {
		return err
	}
	defer db.Close()
	if pos[0] == "show" {
		return cacheShow(ctx, db, *jsonOut, stdout)
	}
	return cacheForget(ctx, db, acct, *messages, *jsonOut, stdout)
}

// cacheForget deletes acct's credentials, its server's features and, with
// messages, its messages; it is an error when nothing of acct's was
// stored (the features of its server are then left alone).
func cacheForget(ctx context.Context, db *cache.DB, acct jid.JID, messages, jsonOut bool, stdout io.Writer) error {
	bare, domain := acct.Bare().String(), acct.Domainpart()
	creds, err := db.ForgetCredentials(ctx, bare)
	if err != nil {
		return err
	}
	msgs := 0
	if messages {
		if msgs, err = db.ForgetMessages(ctx, bare); err != nil {
			return err
		}
	}
	if creds == 0 && msgs == 0 {
		if n, err := db.CountMessages(ctx, bare); err == nil && n > 0 && !messages {
			return fmt.Errorf("no credentials stored for %s in %s (it has %s: -messages deletes them)", bare, db.Path(), plural(n, "message"))
		}
		return fmt.Errorf("nothing stored for %s in %s", bare, db.Path())
	}
	_, hadFeatures, err := db.Features(ctx, domain)
	if err != nil {
		return err
	}
	if hadFeatures {
		if err := db.ForgetFeatures(ctx, domain); err != nil {
			return err
		}
	}
	if jsonOut {
		return json.NewEncoder(stdout).Encode(struct {
			Account     string `json:"account"`
			Credentials int    `json:"credentials"`
			Features    bool   `json:"features"`
			Messages    int    `json:"messages"`
		}{bare, creds, hadFeatures, msgs})
	}
	fmt.Fprintf(stdout, "forgot %s of %s (SCRAM keys, FAST token, pin)", plural(creds, "credential"), bare)
	if hadFeatures {
		fmt.Fprintf(stdout, " and the features of %s", domain)
	}
	if messages {
		fmt.Fprintf(stdout, ", and %s", plural(msgs, "message"))
	}
	fmt.Fprintln(stdout)
	return nil
}

// cacheContents is what cache show prints: everything but the secrets.
type cacheContents struct {
	feats    []cache.Features
	keys     []cache.StoredKey
	tokens   []cache.StoredToken
	pins     []cache.StoredPin
	accounts []cacheAccount
}

// cacheAccount is an account's messages in the cache.
type cacheAccount struct {
	JID      string `json:"jid"`
	Messages int    `json:"messages"`
	Cursor   string `json:"cursor"`
}

func cacheShow(ctx context.Context, db *cache.DB, jsonOut bool, w io.Writer) error {
	c, err := readCache(ctx, db)
	if err != nil {
		return err
	}
	if jsonOut {
		return showCacheJSON(db.Path(), c, w)
	}
	showCacheText(db.Path(), c, w)
	return nil
}

// readCache reads what cache show prints.
func readCache(ctx context.Context, db *cache.DB) (c cacheContents, err error) {
	if c.feats, err = db.ListFeatures(ctx); err != nil {
		return c, err
	}
	if c.keys, err = db.ListScramKeys(ctx); err != nil {
		return c, err
	}
	if c.tokens, err = db.ListFastTokens(ctx); err != nil {
		return c, err
	}
	if c.pins, err = db.ListMechanismPins(ctx); err != nil {
		return c, err
	}
	accts, err := db.Accounts(ctx)
	if err != nil {
		return c, err
	}
	for _, a := range accts {
		n, err := db.CountMessages(ctx, a)
		if err != nil {
			return c, err
		}
		cur, err := db.Cursor(ctx, a)
		if err != nil {
			return c, err
		}
		c.accounts = append(c.accounts, cacheAccount{a, n, cur})
	}
	return c, nil
}

// showCacheJSON prints c as one JSON object, the secrets redacted.
func showCacheJSON(path string, c cacheContents, w io.Writer) error {
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
		Accounts  []cacheAccount   `json:"accounts"`
	}{Path: path, Features: c.feats, ScramKeys: []key{}, Tokens: []token{}, Pins: []pin{}, Accounts: c.accounts}
	for _, k := range c.keys {
		out.ScramKeys = append(out.ScramKeys, key{k.Account, k.Mechanism, k.Iterations, "[redacted]"})
	}
	for _, t := range c.tokens {
		out.Tokens = append(out.Tokens, token{t.Account, t.Mechanism, t.Expiry, "[redacted]"})
	}
	for _, p := range c.pins {
		out.Pins = append(out.Pins, pin{p.Account, p.Mechanism})
	}
	return json.NewEncoder(w).Encode(out)
}

// showCacheText prints c a line per entry, the secrets redacted.
func showCacheText(path string, c cacheContents, w io.Writer) {
	fmt.Fprintf(w, "cache %s\n", path)
	for _, f := range c.feats {
		best := "classic"
		switch {
		case f.SASL2 && f.Bind2:
			best = "sasl2"
		case f.Bind2Draft:
			best = "bind2-draft"
		}
		fmt.Fprintf(w, "  server %-24s best path %-11s mechanisms %v fast %v seen %s\n", f.Domain, best, f.SASL2Mechanisms, f.FASTMechanisms, f.SeenAt.Format("2006-01-02 15:04"))
	}
	for _, k := range c.keys {
		fmt.Fprintf(w, "  keys   %-24s %s, %d iterations: ClientKey/ServerKey [redacted]\n", k.Account, k.Mechanism, k.Iterations)
	}
	for _, t := range c.tokens {
		fmt.Fprintf(w, "  token  %-24s %s, expires %s: [redacted]\n", t.Account, t.Mechanism, t.Expiry.Format("2006-01-02 15:04"))
	}
	for _, p := range c.pins {
		fmt.Fprintf(w, "  pinned %-24s %s (the strongest password mechanism used)\n", p.Account, p.Mechanism)
	}
	for _, a := range c.accounts {
		fmt.Fprintf(w, "  msgs   %-24s %d messages, cursor %s\n", a.JID, a.Messages, orNone(a.Cursor))
	}
}
