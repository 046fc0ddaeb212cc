package cache

import (
	"testing"
	"time"
)

// TestForgetCredentials (issue 16): the SCRAM keys, FAST token and pin of
// one account go in one call that says how many there were; another
// account's, the features and the messages stay.
func TestForgetCredentials(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	const other = "romeo@montague.example"
	for _, acct := range []string{account, other} {
		if err := db.PutScramKeys(ctx, acct, ScramKeys{Mechanism: "SCRAM-SHA-256", Salt: []byte("salt"), Iterations: 4096,
			ClientKey: []byte("ck"), ServerKey: []byte("sk")}); err != nil {
			t.Fatal(err)
		}
		if err := db.RecordLogin(ctx, LoginRecord{Account: acct, Pin: "SCRAM-SHA-256",
			Token: &FastToken{Mechanism: "HT-SHA-256-NONE", Token: []byte("tok"), Expiry: time.Now().Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend(t, db, archive("a", 3), "a-2", 3, 0)
	// Case does not matter: accounts are bare JIDs, lower-cased.
	if n, err := db.ForgetCredentials(ctx, "Juliet@Capulet.example"); err != nil || n != 3 {
		t.Fatalf("ForgetCredentials = %d, %v; want 3", n, err)
	}
	if n, err := db.ForgetCredentials(ctx, account); err != nil || n != 0 {
		t.Fatalf("ForgetCredentials again = %d, %v; want 0", n, err)
	}
	if _, ok, _ := db.FastTokenFor(ctx, other); !ok {
		t.Error("the other account's token went too")
	}
	if pin, ok, _ := db.MechanismPin(ctx, other); !ok || pin != "SCRAM-SHA-256" {
		t.Error("the other account's pin went too")
	}
	if n, _ := db.CountMessages(ctx, account); n != 3 {
		t.Errorf("%d messages left, want 3", n)
	}
}

// TestForgetMessages: an account's messages, cursor, gaps and markers go;
// another account's stay, and the next append starts afresh.
func TestForgetMessages(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	msgs := archive("a", 5)
	mustAppend(t, db, msgs, "a-4", 5, 0)
	if _, _, err := db.AppendMessages(ctx, "romeo@montague.example", archive("r", 2), "r-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.MarkDisplayed(ctx, account, msgs[0].Peer, msgs[0].StanzaID); err != nil {
		t.Fatal(err)
	}
	if err := db.AddGap(ctx, account, Gap{AfterID: "a-1", BeforeID: "a-2"}); err != nil {
		t.Fatal(err)
	}
	if n, err := db.ForgetMessages(ctx, account); err != nil || n != 5 {
		t.Fatalf("ForgetMessages = %d, %v; want 5", n, err)
	}
	if c, _ := db.Cursor(ctx, account); c != "" {
		t.Errorf("cursor %q left", c)
	}
	if g, _ := db.Gaps(ctx, account); len(g) != 0 {
		t.Errorf("gaps left: %v", g)
	}
	if u, _ := db.Unreads(ctx, account); len(u) != 0 {
		t.Errorf("peer state left: %v", u)
	}
	if n, _ := db.CountMessages(ctx, "romeo@montague.example"); n != 2 {
		t.Errorf("the other account has %d messages, want 2", n)
	}
	mustAppend(t, db, msgs, "a-4", 5, 0) // stored again, not duplicates
}
