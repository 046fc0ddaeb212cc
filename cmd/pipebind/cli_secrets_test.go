package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/internal/xmpptest"
)

// TestCLINoSecrets (issue 7, item 4; issue 16, item 5): probe (JSON,
// debug log and wire trace on), sync (with -trace) and cache show (text
// and JSON), with PLAIN, SCRAM (derived and cached keys) and FAST, and a
// probe with a wrong password: no output, standard or error,
// holds the password, the PLAIN payload, a SCRAM ClientKey or ServerKey or a
// FAST token (read back from the cache file), raw, hex or base64. The cache
// file and its -wal and -shm are 0600.
func TestCLINoSecrets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const password = "s3cret-cli-pw"
	// Without FAST, password logins: PLAIN, SCRAM derived and cached keys.
	// With FAST, a token obtained and used (it stands in for the password,
	// so it needs a server and cache of its own).
	noFAST := xmpptest.NewServer(xmpptest.Config{Users: map[string]string{"alice": password}, NoFAST: true})
	defer noFAST.Close()
	fast := xmpptest.NewServer(xmpptest.Config{Users: map[string]string{"alice": password}})
	defer fast.Close()
	dir := t.TempDir()
	var out bytes.Buffer // every byte the CLI printed, stdout and stderr
	runCLI := func(wantOK bool, args ...string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := run(ctx, args, &stdout, &stderr)
		out.Write(stdout.Bytes())
		out.Write(stderr.Bytes())
		if (code == 0) != wantOK {
			t.Fatalf("%v: exit %d: %s", args[0], code, stderr.String())
		}
	}
	secrets := map[string][]byte{
		"password":       []byte(password),
		"wrong password": []byte("a-wrong-cli-secret"),
		"PLAIN payload":  []byte(base64.StdEncoding.EncodeToString([]byte("\x00alice\x00" + password))),
	}
	var dbs []string
	for i, tc := range []struct {
		srv   *xmpptest.Server
		mechs []string
	}{
		{noFAST, []string{"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-256"}},
		{fast, []string{"SCRAM-SHA-256", "SCRAM-SHA-256", "SCRAM-SHA-256"}},
	} {
		tc.srv.InjectArchiveBulk("alice", "bob@localhost", 20, true)
		ca := filepath.Join(dir, fmt.Sprintf("ca%d.pem", i))
		if err := os.WriteFile(ca, tc.srv.CAPEM(), 0o600); err != nil {
			t.Fatal(err)
		}
		db := filepath.Join(dir, fmt.Sprintf("c%d.db", i))
		dbs = append(dbs, db)
		common := []string{"-addr", tc.srv.DirectTLSAddr(), "-tls", "direct", "-ca", ca, "-cache", db}
		t.Setenv("PIPEBIND_PASSWORD", password)
		for _, mech := range tc.mechs {
			runCLI(true, append(append([]string{"probe", "-json", "-v", "-trace", "-mech", mech}, common...), "alice@localhost")...)
		}
		runCLI(true, append(append([]string{"sync", "-json", "-v", "-trace"}, common...), "alice@localhost")...)
		runCLI(true, "cache", "-cache", db, "show")
		runCLI(true, "cache", "-cache", db, "-json", "show")
		// A wrong password, with a cache of its own (a token would stand
		// in for the password).
		t.Setenv("PIPEBIND_PASSWORD", "a-wrong-cli-secret")
		common[len(common)-1] = filepath.Join(dir, fmt.Sprintf("wrong%d.db", i))
		runCLI(false, append(append([]string{"probe", "-json", "-v", "-trace", "-mech", "SCRAM-SHA-256,PLAIN"}, common...), "alice@localhost")...)

		h, err := sql.Open("sqlite3", "file:"+db+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		rows, err := h.Query(`SELECT mechanism, client_key, server_key FROM scram_keys`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var mech string
			var ck, sk []byte
			if err := rows.Scan(&mech, &ck, &sk); err != nil {
				t.Fatal(err)
			}
			secrets[fmt.Sprint(i, mech, " ClientKey")], secrets[fmt.Sprint(i, mech, " ServerKey")] = ck, sk
		}
		rows.Close()
		h.Close()
		cdb, err := cache.Open(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		toks, err := cdb.ListFastTokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range toks {
			if tok, ok, err := cdb.FastTokenFor(ctx, st.Account); err != nil {
				t.Fatal(err)
			} else if ok {
				secrets[fmt.Sprint(i, " FAST token of ", st.Account)] = tok.Token
			}
		}
		cdb.Close()
	}
	// SCRAM-SHA-1 and -256 keys (two pairs, both servers), a FAST token.
	if len(secrets) < 3+4+2+1 {
		t.Fatalf("%d secrets collected: want the passwords, three SCRAM key pairs and a FAST token", len(secrets))
	}
	if !strings.Contains(out.String(), `"mechanism":"SCRAM-SHA-256"`) || !strings.Contains(out.String(), `"fast":true`) ||
		!strings.Contains(out.String(), "DBG") {
		t.Fatalf("the output lacks the probe's JSON or debug log:\n%s", &out)
	}
	// The trace is there, both directions, the login and the archive, its
	// SASL payloads redacted (and, below, no secret in any form).
	for _, want := range []string{"> <authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>[redacted",
		"> <authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-256'>", "> <authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-",
		"< <success xmlns='urn:xmpp:sasl:2'>", "< <failure xmlns='urn:xmpp:sasl:2'><not-authorized",
		"< <message", "urn:xmpp:mam:2", "> </stream:stream>"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the -trace output lacks %q", want)
		}
	}
	for name, v := range secrets {
		for form, s := range map[string]string{
			"":          string(v),
			" (base64)": base64.StdEncoding.EncodeToString(v),
			" (b64url)": base64.RawURLEncoding.EncodeToString(v),
			" (hex)":    hex.EncodeToString(v),
			" (HEX)":    strings.ToUpper(hex.EncodeToString(v)),
			" (%v)":     fmt.Sprint(v),
		} {
			if len(s) >= 8 && strings.Contains(out.String(), s) {
				t.Errorf("the CLI's output contains the %s%s", name, form)
			}
		}
	}
	for _, db := range dbs {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			fi, err := os.Stat(db + suffix)
			if err == nil && fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, want 0600", filepath.Base(db+suffix), fi.Mode().Perm())
			}
		}
	}
}
