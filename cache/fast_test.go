package cache

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestRecordLoginTokenFeaturesPin(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	const acct = "Alice@Example.org"
	if _, ok, err := db.FastTokenFor(ctx, acct); err != nil || ok {
		t.Fatalf("FastTokenFor on empty cache = %v, %v", ok, err)
	}
	tok := FastToken{Mechanism: "HT-SHA-256-EXPR", Token: []byte("s3cret-token"), Expiry: time.Now().Add(time.Hour)}
	f := Features{Domain: "example.org", SASL2: true, FASTMechanisms: []string{"HT-SHA-256-EXPR"}}
	if err := db.RecordLogin(ctx, LoginRecord{Account: acct, Features: &f, Token: &tok, Pin: "SCRAM-SHA-256-PLUS"}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := db.FastTokenFor(ctx, "alice@example.org")
	if err != nil || !ok {
		t.Fatalf("FastTokenFor = %v, %v", ok, err)
	}
	if got.Mechanism != tok.Mechanism || !bytes.Equal(got.Token, tok.Token) || got.Expiry.Unix() != tok.Expiry.Unix() {
		t.Fatalf("token = %+v, want %+v", got, tok)
	}
	if sf, ok, err := db.Features(ctx, "example.org"); err != nil || !ok || !sf.SASL2 {
		t.Fatalf("features = %+v, %v, %v", sf, ok, err)
	}
	if pin, ok, err := db.MechanismPin(ctx, acct); err != nil || !ok || pin != "SCRAM-SHA-256-PLUS" {
		t.Fatalf("pin = %q, %v, %v", pin, ok, err)
	}

	// Rotation replaces the token.
	rot := FastToken{Mechanism: "HT-SHA-256-EXPR", Token: []byte("rotated"), Expiry: time.Now().Add(2 * time.Hour)}
	if err := db.RecordLogin(ctx, LoginRecord{Account: acct, Token: &rot}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := db.FastTokenFor(ctx, acct); !bytes.Equal(got.Token, rot.Token) {
		t.Fatalf("after rotation token = %q", got.Token)
	}
	list, err := db.ListFastTokens(ctx)
	if err != nil || len(list) != 1 || list[0].Mechanism != "HT-SHA-256-EXPR" {
		t.Fatalf("ListFastTokens = %+v, %v", list, err)
	}
	if strings.Contains(strings.ToLower(fmtList(list)), "rotated") {
		t.Fatal("ListFastTokens shows the secret")
	}

	// ForgetToken deletes it, in the same transaction as the rest.
	if err := db.RecordLogin(ctx, LoginRecord{Account: acct, ForgetToken: true}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.FastTokenFor(ctx, acct); ok {
		t.Fatal("token still there after ForgetToken")
	}
}

func fmtList(l []StoredToken) string {
	var b strings.Builder
	for _, t := range l {
		b.WriteString(t.Account + " " + t.Mechanism + " " + t.Expiry.String() + "\n")
	}
	return b.String()
}

func TestFastTokenExpiredNotReturned(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	old := FastToken{Mechanism: "HT-SHA-256-NONE", Token: []byte("x"), Expiry: time.Now().Add(-time.Minute)}
	if err := db.RecordLogin(ctx, LoginRecord{Account: "a@b", Token: &old}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := db.FastTokenFor(ctx, "a@b"); err != nil || ok {
		t.Fatalf("expired token returned: ok=%v err=%v", ok, err)
	}
}

func TestRecordLoginAtomic(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	tok := FastToken{Mechanism: "HT-SHA-256-NONE", Token: []byte("x"), Expiry: time.Now().Add(time.Hour)}
	bad := Features{} // no domain: the whole record must be refused
	if err := db.RecordLogin(ctx, LoginRecord{Account: "a@b", Features: &bad, Token: &tok}); err == nil {
		t.Fatal("RecordLogin with an invalid features entry succeeded")
	}
	if _, ok, _ := db.FastTokenFor(ctx, "a@b"); ok {
		t.Fatal("token stored although the record failed")
	}
	if err := db.RecordLogin(ctx, LoginRecord{Account: "a@b", Token: &FastToken{Mechanism: "HT-SHA-256-NONE"}}); err == nil {
		t.Fatal("empty token accepted")
	}
	if err := db.RecordLogin(ctx, LoginRecord{Account: "a@b", Token: &tok, ScramKeys: &ScramKeys{Mechanism: "SCRAM-SHA-1"}}); err == nil {
		t.Fatal("SCRAM keys without keys accepted")
	}
	if _, ok, _ := db.FastTokenFor(ctx, "a@b"); ok {
		t.Fatal("token stored although the record failed")
	}
}

// TestRecordLoginScramKeys: the keys a login derived are stored with its
// record, as PutScramKeys stores them.
func TestRecordLoginScramKeys(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	k := ScramKeys{Mechanism: "SCRAM-SHA-1", Salt: []byte("salt"), Iterations: 10000, ClientKey: []byte("ck"), ServerKey: []byte("sk")}
	tok := FastToken{Mechanism: "HT-SHA-256-NONE", Token: []byte("x"), Expiry: time.Now().Add(time.Hour)}
	if err := db.RecordLogin(ctx, LoginRecord{Account: "a@b", Token: &tok, Pin: "SCRAM-SHA-1", ScramKeys: &k}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := db.ScramKeysFor(ctx, "a@b", "SCRAM-SHA-1", []byte("salt"), 10000)
	if err != nil || !ok || !bytes.Equal(got.ClientKey, k.ClientKey) || !bytes.Equal(got.ServerKey, k.ServerKey) {
		t.Fatalf("ScramKeysFor = %+v, %v, %v; want the recorded keys", got, ok, err)
	}
	if _, ok, _ := db.FastTokenFor(ctx, "a@b"); !ok {
		t.Fatal("the token of the same record is missing")
	}
}
