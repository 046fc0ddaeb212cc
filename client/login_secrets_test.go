package client_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/testcert"
	"github.com/pipebind/pipebind/internal/xmpptest"
)

// tap is a TLS-terminating proxy in front of the in-process server: it
// records the plaintext of both directions, so that a test knows every SASL
// payload, key proof and token the login exchanged.
type tap struct {
	ln     net.Listener
	pki    *testcert.PKI
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
	fromC  bytes.Buffer // client to server
	fromS  bytes.Buffer // server to client
	closed bool
}

func newTap(t *testing.T, s *xmpptest.Server) *tap {
	t.Helper()
	pki, err := testcert.New("tap", s.Domain())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tap{ln: ln, pki: pki}
	srvCfg := &tls.Config{Certificates: []tls.Certificate{pki.Server}, NextProtos: []string{"xmpp-client"}, MinVersion: tls.VersionTLS12}
	upCfg := s.TLSConfig()
	upCfg.NextProtos = []string{"xmpp-client"}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := tls.Dial("tcp", s.DirectTLSAddr(), upCfg)
			if err != nil {
				c.Close()
				continue
			}
			down := tls.Server(c, srvCfg)
			if !p.track(down, up) {
				return
			}
			p.wg.Add(2)
			go p.pipe(up, down, &p.fromC)
			go p.pipe(down, up, &p.fromS)
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *tap) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	p.conns = append(p.conns, cs...)
	return true
}

// pipe copies src to dst, recording the plaintext in rec.
func (p *tap) pipe(dst, src net.Conn, rec *bytes.Buffer) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			rec.Write(buf[:n])
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

func (p *tap) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// clientTLS trusts the tap's certificate.
func (p *tap) clientTLS(domain string) *tls.Config {
	return &tls.Config{RootCAs: p.pki.Pool, ServerName: domain, MinVersion: tls.VersionTLS12}
}

// recorded returns the plaintext seen so far: client to server, server to
// client.
func (p *tap) recorded() (fromClient, fromServer []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.fromC.Bytes()), bytes.Clone(p.fromS.Bytes())
}

// secrets collects what must never be printed, each with how it is named in
// a failure (never the value).
type secrets map[string]string

// add records v (and the forms it may be printed in) under name. Values
// shorter than 8 bytes are too likely to appear by chance and are skipped.
func (s secrets) add(name string, v []byte) {
	if len(v) < 8 {
		return
	}
	s[name] = string(v)
	s[name+" (base64)"] = base64.StdEncoding.EncodeToString(v)
	s[name+" (base64url)"] = base64.RawURLEncoding.EncodeToString(v)
	s[name+" (hex)"] = hex.EncodeToString(v)
	s[name+" (HEX)"] = strings.ToUpper(hex.EncodeToString(v))
}

// scan fails t for every secret found in text.
func (s secrets) scan(t *testing.T, where, text string) {
	t.Helper()
	for name, v := range s {
		if strings.Contains(text, v) {
			t.Errorf("%s contains the %s", where, name)
		}
	}
}

// saslPayloads returns the base64 text of every SASL element in a recorded
// stream (SASL2 and RFC 6120, both directions), and the FAST tokens the
// server issued.
func saslPayloads(t *testing.T, stream []byte) (payloads []string, tokens []string) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(stream))
	d.Strict = false
	var in string // the SASL element being read
	for {
		tok, err := d.Token()
		if err != nil {
			return payloads, tokens
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			switch tok.Name.Local {
			case "initial-response", "response", "challenge", "additional-data", "auth", "success":
				in = tok.Name.Local
			case "token":
				in = ""
				for _, a := range tok.Attr {
					if a.Name.Local == "token" {
						tokens = append(tokens, a.Value)
					}
				}
			default:
				in = "" // only text directly inside a SASL element
			}
		case xml.CharData:
			if in != "" && len(bytes.TrimSpace(tok)) > 0 {
				payloads = append(payloads, string(bytes.TrimSpace(tok)))
			}
		case xml.EndElement:
			in = ""
		}
	}
}

// TestNoSecretsAtDebugLevel (issue 7, item 4) logs in at debug level with
// PLAIN, SCRAM-SHA-1 and SCRAM-SHA-256 (derived and cached keys), obtains
// and uses a FAST token, and fails a login; then scans the log, every error
// string, the printed Info and the wire trace (Config.WireTrace) for the
// password, every SASL payload of the
// recorded exchange (base64 and decoded), the SCRAM ClientKey and ServerKey
// and the FAST tokens (raw, hex, base64), read from the cache file. The
// cache file, -wal and -shm must be 0600.
func TestNoSecretsAtDebugLevel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// HT-SHA-256-NONE only: a channel-bound token cannot pass the tap,
	// whose TLS is not the server's.
	s := newTestServer(t, xmpptest.Config{FASTMechanisms: []string{"HT-SHA-256-NONE"}})
	p := newTap(t, s)
	logs := newLogBuffer()
	path := filepath.Join(t.TempDir(), "cache.db")
	cfg := testConfig(t, s, "alice", nil)
	cfg.Addr, cfg.TLSConfig = p.ln.Addr().String(), p.clientTLS(s.Domain())
	cfg.CachePath, cfg.Logger = path, logs.logger()
	cfg.NoSync = true
	var traceMu sync.Mutex
	var traced bytes.Buffer // the wire trace (issue 16: -trace)
	cfg.WireTrace = func(in bool, el []byte) {
		traceMu.Lock()
		defer traceMu.Unlock()
		fmt.Fprintf(&traced, "%v %s\n", in, el)
	}

	var printed []string // error strings and Info as an application would print them
	login := func(cfg client.Config) client.Info {
		t.Helper()
		c, err := client.Dial(ctx, cfg)
		if err != nil {
			t.Fatalf("login with %v: %v", cfg.Mechanisms, err)
		}
		info := c.Info()
		// The files exist while a client holds the cache.
		for _, suffix := range []string{"", "-wal", "-shm"} {
			fi, err := os.Stat(path + suffix)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			if err == nil && fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, want 0600", filepath.Base(path+suffix), fi.Mode().Perm())
			}
		}
		c.Close()
		printed = append(printed, fmt.Sprintf("%+v", info), fmt.Sprintf("%v", c.Err()))
		return info
	}
	cfg.NoFAST = true
	for _, mechs := range [][]string{{"PLAIN"}, {"SCRAM-SHA-1"}, {"SCRAM-SHA-256"}, {"SCRAM-SHA-256"}} {
		cfg.Mechanisms = mechs
		login(cfg)
	}
	// FAST: the password login obtains a token, the next logins use it.
	cfg.NoFAST, cfg.Mechanisms = false, []string{"SCRAM-SHA-256"}
	var fastUsed bool
	for range 3 {
		info := login(cfg)
		fastUsed = fastUsed || info.FAST
	}
	if !fastUsed {
		t.Error("no login used the FAST token")
	}
	// A wrong password: its error string too.
	bad := cfg
	bad.Password, bad.CachePath, bad.Mechanisms = "a-wrong-secret", "", []string{"SCRAM-SHA-256", "PLAIN"}
	if _, err := client.Dial(ctx, bad); err == nil {
		t.Fatal("a wrong password was accepted")
	} else {
		printed = append(printed, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
	}

	// What must not be printed.
	sec := secrets{}
	sec.add("password", []byte("alice-pw"))
	sec.add("wrong password", []byte("a-wrong-secret"))
	fromClient, fromServer := p.recorded()
	for _, stream := range [][]byte{fromClient, fromServer} {
		payloads, tokens := saslPayloads(t, stream)
		for i, b64 := range payloads {
			sec.add(fmt.Sprintf("SASL payload %d", i), []byte(b64))
			if raw, err := base64.StdEncoding.DecodeString(b64); err == nil {
				sec.add(fmt.Sprintf("SASL payload %d (decoded)", i), raw)
				// SCRAM's client-final: the proof, alone.
				for _, attr := range strings.Split(string(raw), ",") {
					if v, ok := strings.CutPrefix(attr, "p="); ok {
						sec.add(fmt.Sprintf("SCRAM proof %d", i), []byte(v))
					}
				}
			}
		}
		for i, tok := range tokens {
			sec.add(fmt.Sprintf("issued FAST token %d", i), []byte(tok))
		}
	}
	h, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := h.Query(`SELECT mechanism, client_key, server_key FROM scram_keys`)
	if err != nil {
		t.Fatal(err)
	}
	keys := 0
	for rows.Next() {
		var mech string
		var ck, sk []byte
		if err := rows.Scan(&mech, &ck, &sk); err != nil {
			t.Fatal(err)
		}
		sec.add(mech+" ClientKey", ck)
		sec.add(mech+" ServerKey", sk)
		keys++
	}
	rows.Close()
	h.Close()
	db, err := cache.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := db.ListFastTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range tokens {
		tok, ok, err := db.FastTokenFor(ctx, st.Account)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			sec.add("stored FAST token of "+st.Account, tok.Token)
		}
	}
	db.Close()

	// The secrets were really collected, and the tap saw them: the scan
	// below can fail.
	if keys < 2 || len(tokens) == 0 {
		t.Fatalf("%d SCRAM key rows and %d FAST tokens in the cache, want 2 and 1", keys, len(tokens))
	}
	plain := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00alice-pw"))
	if !bytes.Contains(fromClient, []byte(plain)) {
		t.Fatal("the tap did not record the PLAIN payload")
	}
	proofs := 0
	for name := range sec {
		if strings.HasPrefix(name, "SCRAM proof ") && !strings.Contains(name, "(") {
			proofs++
		}
	}
	if proofs < 3 { // SCRAM-SHA-1, SCRAM-SHA-256 derived, cached, and the wrong password
		t.Fatalf("%d SCRAM proofs recorded, want at least 3", proofs)
	}
	if !strings.Contains(logs.String(), `"level":"debug"`) {
		t.Fatal("no debug log captured")
	}
	sec.scan(t, "the debug log", logs.String())
	sec.scan(t, "the printed errors and Info", strings.Join(printed, "\n"))
	traceMu.Lock()
	wire := traced.String()
	traceMu.Unlock()
	if !strings.Contains(wire, "<authenticate") || !strings.Contains(wire, "[redacted") || !strings.Contains(wire, "<success") {
		t.Fatalf("the wire trace lacks the login: %.300q", wire)
	}
	sec.scan(t, "the wire trace", wire)
	t.Logf("%d secret forms checked against %d bytes of log", len(sec), len(logs.String()))
}
