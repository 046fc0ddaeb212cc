package cache_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/pipebind/pipebind/cache"
)

func ExampleDB_PutFeatures() {
	dir, err := os.MkdirTemp("", "pipebind-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	db, err := cache.Open(ctx, filepath.Join(dir, "cache.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	// After a login: remember what the server offered.
	live := cache.Features{
		Domain:          "Example.org",
		DirectTLS:       true,
		SASL2:           true,
		SASL2Mechanisms: []string{"SCRAM-SHA-256", "PLAIN", "SCRAM-SHA-256"},
		Bind2:           true,
		Bind2Inline:     []string{"urn:xmpp:sm:3", "urn:xmpp:carbons:2"},
	}
	if err := db.PutFeatures(ctx, live); err != nil {
		log.Fatal(err)
	}

	// Before the next login: plan the first write from the cache.
	cached, ok, err := db.Features(ctx, "example.org")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("hit:", ok)
	fmt.Println("domain:", cached.Domain)
	fmt.Println("sasl2:", cached.SASL2, cached.SASL2Mechanisms)
	fmt.Println("bind2:", cached.Bind2, cached.Bind2Inline)

	// After it: refresh the entry only if the live features changed.
	fmt.Println("changed:", !cached.Equal(live))

	_, ok, err = db.Features(ctx, "example.net")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("unknown server hit:", ok)
	// Output:
	// hit: true
	// domain: example.org
	// sasl2: true [PLAIN SCRAM-SHA-256]
	// bind2: true [urn:xmpp:carbons:2 urn:xmpp:sm:3]
	// changed: false
	// unknown server hit: false
}

func ExampleDB_AppendMessages() {
	dir, err := os.MkdirTemp("", "pipebind-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	db, err := cache.Open(ctx, filepath.Join(dir, "cache.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	const account = "juliet@capulet.example"
	page := []cache.Message{
		{StanzaID: "a1", Peer: "romeo@montague.example", Direction: cache.DirectionIn, Body: "Juliet?"},
		{StanzaID: "a2", Peer: "romeo@montague.example", Direction: cache.DirectionOut, Body: "Romeo!"},
		{StanzaID: "a3", Peer: "romeo@montague.example", Direction: cache.DirectionIn, Body: "Art thou there?"},
	}
	// Store a MAM page and move the sync cursor in one transaction.
	n, dup, err := db.AppendMessages(ctx, account, page, "a3")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("inserted:", n, "duplicates:", dup)

	// A replayed page (after a crash, or by another process) stores nothing.
	n, dup, err = db.AppendMessages(ctx, account, page[1:], "a3")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("inserted:", n, "duplicates:", dup)

	cursor, err := db.Cursor(ctx, account)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("resume after:", cursor)

	if _, err := db.MarkDisplayed(ctx, account, "romeo@montague.example", "a1"); err != nil {
		log.Fatal(err)
	}
	unreads, err := db.Unreads(ctx, account)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range unreads {
		fmt.Printf("%s: %d unread after %s\n", s.Peer, s.Unread, s.ReadID)
	}
	// Output:
	// inserted: 3 duplicates: 0
	// inserted: 0 duplicates: 2
	// resume after: a3
	// romeo@montague.example: 1 unread after a1
}
