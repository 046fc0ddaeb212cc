package xmpptest

import (
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"hash"
	"net"
	"slices"
	"strings"
	"testing"

	"mellium.im/sasl"

	clientlogin "github.com/pipebind/pipebind/login"
)

// TestScramServerSSDPHash checks the server's XEP-0474 hash against the
// XEP's own example and against the client's independent implementation.
func TestScramServerSSDPHash(t *testing.T) {
	// XEP-0474 §Full Example: SHA-1 of
	// 'SCRAM-SHA-1\x1eSCRAM-SHA-1-PLUS\x1ftls-exporter\x1etls-server-end-point'.
	if got := ssdpHash(sha1.New, []string{"SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"}, []string{"tls-server-end-point", "tls-exporter"}); got != "G6k/rBLDqgOhRRaCuuatSDFkJ08=" {
		t.Errorf("XEP example: %s", got)
	}
	for _, tc := range []struct {
		name  string
		h     func() hash.Hash
		mechs []string
		cbs   []string
	}{
		{"default", sha256.New, defaultMechanisms, []string{"tls-exporter"}},
		{"no XEP-0440", sha256.New, defaultMechanisms, nil},
		{"empty XEP-0440", sha1.New, defaultMechanisms, []string{}},
		{"plus and 512", sha512.New, []string{"SCRAM-SHA-512-PLUS", "SCRAM-SHA-512", "SCRAM-SHA-256-PLUS", "PLAIN", "SCRAM-SHA-1"}, []string{"tls-server-end-point", "tls-exporter"}},
		{"octet order", sha256.New, []string{"b", "B", "a-", "a", "A"}, []string{"z", "Z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := ssdpHash(tc.h, tc.mechs, tc.cbs), clientlogin.SSDPHash(tc.h, tc.mechs, tc.cbs); got != want {
				t.Errorf("server %s, client %s", got, want)
			}
		})
	}
	// The lists are not modified (the hash sorts copies).
	mechs := []string{"SCRAM-SHA-256", "PLAIN", "SCRAM-SHA-1"}
	ssdpHash(sha256.New, mechs, nil)
	if !slices.Equal(mechs, []string{"SCRAM-SHA-256", "PLAIN", "SCRAM-SHA-1"}) {
		t.Errorf("ssdpHash sorted its argument: %v", mechs)
	}
}

// TestScramServerRFCVectors runs the server against the exchanges of RFC
// 5802 §5 (SHA-1) and RFC 7677 §3 (SHA-256), with their salt and server
// nonce: every server message must be the RFC's, byte for byte.
func TestScramServerRFCVectors(t *testing.T) {
	for _, tc := range []struct {
		mech                     string
		h                        func() hash.Hash
		salt, snonce             string
		clientFirst, serverFirst string
		clientFinal, serverFinal string
	}{
		{
			"SCRAM-SHA-1", sha1.New, "QSXCR+Q6sek8bf92", "3rfcNHYJY1ZVvWVs7j",
			"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
			"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
			"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
			"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
		},
		{
			"SCRAM-SHA-256", sha256.New, "W22ZaJ0SNY7soEsUEjb6gQ==", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
			"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
			"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
			"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
			"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		},
	} {
		t.Run(tc.mech, func(t *testing.T) {
			a := rfcAuth(t, tc.mech, tc.h, tc.salt, tc.snonce)
			out, done, serr := a.next([]byte(tc.clientFirst))
			if serr != nil || done || string(out) != tc.serverFirst {
				t.Fatalf("server-first = %q, %v, %v; want %q", out, done, serr, tc.serverFirst)
			}
			out, done, serr = a.next([]byte(tc.clientFinal))
			if serr != nil || !done || string(out) != tc.serverFinal {
				t.Fatalf("server-final = %q, %v, %v; want %q", out, done, serr, tc.serverFinal)
			}
			if local, authzid := a.identity(); local != "user" || authzid != "" {
				t.Errorf("identity = %q, %q", local, authzid)
			}

			// The same exchange with one bit of the proof flipped fails.
			b := rfcAuth(t, tc.mech, tc.h, tc.salt, tc.snonce)
			if _, _, serr := b.next([]byte(tc.clientFirst)); serr != nil {
				t.Fatal(serr)
			}
			i := strings.LastIndex(tc.clientFinal, "p=") + 2
			proof, _ := base64.StdEncoding.DecodeString(tc.clientFinal[i:])
			proof[0] ^= 1
			bad := tc.clientFinal[:i] + base64.StdEncoding.EncodeToString(proof)
			if _, _, serr := b.next([]byte(bad)); serr == nil || serr.cond != "not-authorized" {
				t.Errorf("flipped proof: %v", serr)
			}
		})
	}
}

// rfcAuth returns a SCRAM exchange for the user "user" (password "pencil")
// whose salt and server nonce are the RFC example's. The connection is not
// served: only the authenticator runs.
func rfcAuth(t *testing.T, mech string, h func() hash.Hash, salt64, snonce string) *scramAuth {
	t.Helper()
	s := NewUnstartedServer(Config{Users: map[string]string{"user": "pencil"}, Mechanisms: []string{mech}})
	t.Cleanup(s.Close)
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		t.Fatal(err)
	}
	salted, err := pbkdf2.Key(h, "pencil", salt, 4096, h().Size())
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.scram[scramKey{"user", mech, 4096}] = &scramEntry{password: "pencil", salt: salt, salted: salted}
	cfg := s.cfg
	s.mu.Unlock()
	a, p := net.Pipe()
	t.Cleanup(func() { _ = a.Close(); _ = p.Close() })
	c := newConn(s, cfg, a, modeSecured)
	auth, serr := c.newAuthenticator(mech)
	if serr != nil {
		t.Fatal(serr)
	}
	sa := auth.(*scramAuth)
	sa.serverNonce = func() string { return snonce }
	return sa
}

// scramResult is what a SCRAM login over SASL2 showed.
type scramResult struct {
	features    rawEl
	serverFirst string // "" when the server failed the first message
	failure     *rawEl // the server's <failure/>, nil after <success/>
	clientErr   error  // the client's error (server-first or server-final)
}

// scramOpts changes what scramLogin's client does.
type scramOpts struct {
	cb string // channel-binding type of a -PLUS mechanism
	// edit, if not nil, may change the client's message of each step (1:
	// client-first, 2: client-final) before it is sent.
	edit func(step int, msg []byte) []byte
	// bindTo, if not nil, is the TLS connection the client binds to
	// instead of its own (a relay by a man in the middle).
	bindTo *tls.ConnectionState
}

// scramLogin logs in over SASL2 with the login package's SCRAM client,
// which checks the SSDP hash against the live features and verifies the
// server signature.
func scramLogin(t *testing.T, s *Server, mech string, o scramOpts) scramResult {
	t.Helper()
	cb, edit := o.cb, o.edit
	c := dialTLS(t, s)
	cs := c.nc.(*tls.Conn).ConnectionState()
	if o.bindTo != nil {
		cs = *o.bindTo
	}
	c.write(streamHeader("alice@localhost"))
	c.header()
	var r scramResult
	r.features = c.expect(nsStream, "features")
	var mechs, cbs []string
	if a := r.features.child(nsSASL2, "authentication"); a != nil {
		for _, m := range a.Children {
			if m.XMLName.Local == "mechanism" {
				mechs = append(mechs, m.Text)
			}
		}
	}
	if l := r.features.child(nsSASLCB, "sasl-channel-binding"); l != nil {
		for _, ch := range l.Children {
			cbs = append(cbs, ch.attr("type"))
		}
	}
	m, ok := clientlogin.NewScramOptions(mech, clientlogin.ScramOptions{ChannelBinding: cb, Advertised: mechs, ChannelBindings: cbs})
	if !ok {
		t.Fatalf("clientlogin.NewScramOptions(%s, %s) not ok", mech, cb)
	}
	neg := sasl.NewClient(m,
		sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte("alice"), []byte("secret"), nil }),
		sasl.RemoteMechanisms(mechs...), sasl.TLSState(cs))
	if edit == nil {
		edit = func(_ int, msg []byte) []byte { return msg }
	}
	_, first, err := neg.Step(nil)
	if err != nil {
		t.Fatalf("client-first: %v", err)
	}
	c.write("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='" + mech + "'><initial-response>" +
		b64(string(edit(1, first))) + "</initial-response></authenticate>")
	ch := c.next()
	if ch.XMLName.Local == "failure" {
		r.failure = &ch
		return r
	}
	if ch.XMLName.Local != "challenge" {
		t.Fatalf("got %s, want a challenge", ch.String())
	}
	r.serverFirst = string(unb64(t, ch.Text))
	_, final, err := neg.Step([]byte(r.serverFirst))
	if err != nil {
		r.clientErr = err
		c.write("<abort xmlns='urn:xmpp:sasl:2'/>")
		f := c.expect(nsSASL2, "failure")
		r.failure = &f
		return r
	}
	c.write("<response xmlns='urn:xmpp:sasl:2'>" + b64(string(edit(2, final))) + "</response>")
	res := c.next()
	if res.XMLName.Local == "failure" {
		r.failure = &res
		return r
	}
	ad := res.child(nsSASL2, "additional-data")
	if res.XMLName.Local != "success" || ad == nil {
		t.Fatalf("got %s, want <success/> with additional data", res.String())
	}
	_, _, r.clientErr = neg.Step(unb64(t, ad.Text))
	c.expect(nsStream, "features")
	c.close()
	return r
}

// ssdpAttr returns the value of the "h" attribute of a server-first-message.
func ssdpAttr(serverFirst string) (string, bool) {
	for f := range strings.SplitSeq(serverFirst, ",") {
		if v, ok := strings.CutPrefix(f, "h="); ok {
			return v, true
		}
	}
	return "", false
}

// TestScramServerMechanisms logs in with every SCRAM variant, with and
// without SSDP; the client checks the hash and the server signature.
func TestScramServerMechanisms(t *testing.T) {
	all := []string{"SCRAM-SHA-512-PLUS", "SCRAM-SHA-512", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "PLAIN"}
	for _, ssdp := range []bool{false, true} {
		s := newTestServer(t, Config{Mechanisms: all, SSDP: ssdp})
		for _, tc := range []struct {
			mech, cb string
			h        func() hash.Hash
		}{
			{"SCRAM-SHA-1", "", sha1.New},
			{"SCRAM-SHA-256", "", sha256.New},
			{"SCRAM-SHA-512", "", sha512.New},
			{"SCRAM-SHA-1-PLUS", clientlogin.CBTLSExporter, sha1.New},
			{"SCRAM-SHA-256-PLUS", clientlogin.CBTLSExporter, sha256.New},
			{"SCRAM-SHA-256-PLUS", clientlogin.CBTLSServerEndPoint, sha256.New},
			{"SCRAM-SHA-512-PLUS", clientlogin.CBTLSServerEndPoint, sha512.New},
		} {
			name := tc.mech + "/" + tc.cb
			if ssdp {
				name += "/ssdp"
			}
			t.Run(name, func(t *testing.T) {
				n := len(s.Conns())
				r := scramLogin(t, s, tc.mech, scramOpts{cb: tc.cb})
				if r.failure != nil || r.clientErr != nil {
					t.Fatalf("failure %v, client error %v", r.failure, r.clientErr)
				}
				h, ok := ssdpAttr(r.serverFirst)
				if ok != ssdp {
					t.Fatalf("server-first %q: h= present %v, want %v", r.serverFirst, ok, ssdp)
				}
				if ssdp {
					want := clientlogin.SSDPHash(tc.h, all, []string{"tls-exporter"})
					if h != want {
						t.Errorf("h=%s, want %s", h, want)
					}
				}
				if l := s.Conns()[n]; l.Mechanism() != tc.mech {
					t.Errorf("logged mechanism %q", l.Mechanism())
				}
			})
		}
	}
}

// TestScramServerClassic: the classic SASL profile carries the same
// exchange, SSDP included, with the server signature in <success/>.
func TestScramServerClassic(t *testing.T) {
	s := newTestServer(t, Config{SSDP: true})
	m, _ := clientlogin.NewScramOptions("SCRAM-SHA-256", clientlogin.ScramOptions{Advertised: defaultMechanisms, ChannelBindings: []string{"tls-exporter"}})
	c := dialTLS(t, s)
	neg := sasl.NewClient(m,
		sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte("alice@localhost"), []byte("secret"), nil }),
		sasl.RemoteMechanisms(defaultMechanisms...))
	_, first, err := neg.Step(nil)
	if err != nil {
		t.Fatal(err)
	}
	c.write(streamHeader("alice@localhost") + "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>" + b64(string(first)) + "</auth>")
	c.header()
	c.expect(nsStream, "features")
	ch := c.expect(nsSASL, "challenge")
	if _, ok := ssdpAttr(string(unb64(t, ch.Text))); !ok {
		t.Errorf("classic server-first without h=")
	}
	_, final, err := neg.Step(unb64(t, ch.Text))
	if err != nil {
		t.Fatalf("client-final: %v", err)
	}
	c.write("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + b64(string(final)) + "</response>")
	succ := c.expect(nsSASL, "success")
	if _, _, err := neg.Step(unb64(t, succ.Text)); err != nil {
		t.Errorf("server signature: %v", err)
	}
	c.restart()
	c.write(streamHeader("alice@localhost"))
	c.header()
	c.expect(nsStream, "features")
	c.close()
}

// TestScramServerSSDPHashLists: lists that differ from the features (what
// a man in the middle stripping -PLUS or channel-binding types causes)
// make the client fail with clientlogin.ErrDowngrade before it sends a proof.
func TestScramServerSSDPHashLists(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lists func(mechs, cbs []string) ([]string, []string)
		want  error
	}{
		{"identity", func(m, c []string) ([]string, []string) { return m, c }, nil},
		{"reordered", func(m, c []string) ([]string, []string) { slices.Reverse(m); return m, c }, nil},
		{"plus stripped", func(m, c []string) ([]string, []string) { return append(m, "SCRAM-SHA-256-PLUS"), c }, clientlogin.ErrDowngrade},
		{"channel binding stripped", func(m, c []string) ([]string, []string) { return m, append(c, "tls-server-end-point") }, clientlogin.ErrDowngrade},
		{"no XEP-0440", func(m, _ []string) ([]string, []string) { return m, nil }, clientlogin.ErrDowngrade},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, Config{SSDP: true, SSDPHashLists: tc.lists})
			r := scramLogin(t, s, "SCRAM-SHA-256", scramOpts{})
			if !errors.Is(r.clientErr, tc.want) || (tc.want == nil) != (r.clientErr == nil) {
				t.Fatalf("client error %v, want %v", r.clientErr, tc.want)
			}
			if (tc.want == nil) != (r.failure == nil) {
				t.Errorf("failure %v", r.failure)
			}
			if got := s.Logins("alice").Password; got != btoi(tc.want == nil) {
				t.Errorf("%d password logins", got)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestScramServerRefusals: the server validates each message (RFC 5802
// §5.1, §6, §7) and fails the exchange with a SASL condition.
func TestScramServerRefusals(t *testing.T) {
	replace := func(step int, old, new string) func(int, []byte) []byte {
		return func(st int, msg []byte) []byte {
			if st != step {
				return msg
			}
			return []byte(strings.Replace(string(msg), old, new, 1))
		}
	}
	flipProof := func(st int, msg []byte) []byte {
		if st != 2 {
			return msg
		}
		i := strings.LastIndex(string(msg), "p=") + 2
		p, _ := base64.StdEncoding.DecodeString(string(msg[i:]))
		p[len(p)-1] ^= 0x80
		return append(msg[:i:i], base64.StdEncoding.EncodeToString(p)...)
	}
	withPlus := []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN"}
	other := NewServer(Config{Users: testUsers})
	t.Cleanup(other.Close)
	oc := dialTLS(t, other)
	ocs := oc.nc.(*tls.Conn).ConnectionState()
	otherConn := &ocs
	wantText := map[string]string{"nonce changed": "nonce", "mandatory extension": "mandatory extension"}
	noPlus := []string{"SCRAM-SHA-256", "PLAIN"}
	for _, tc := range []struct {
		name       string
		mechs      []string
		mech, cb   string
		edit       func(int, []byte) []byte
		step, cond string // step: "first" or "final"
		bindTo     *tls.ConnectionState
	}{
		{"wrong proof", noPlus, "SCRAM-SHA-256", "", flipProof, "final", "not-authorized", nil},
		{"plus wrong proof", withPlus, "SCRAM-SHA-256-PLUS", clientlogin.CBTLSExporter, flipProof, "final", "not-authorized", nil},
		{"y while plus offered", withPlus, "SCRAM-SHA-256", "", replace(1, "n,", "y,"), "first", "not-authorized", nil},
		{"y without plus", noPlus, "SCRAM-SHA-256", "", nil, "", "", nil}, // the client itself sends y here
		{"n with plus mechanism", withPlus, "SCRAM-SHA-256-PLUS", clientlogin.CBTLSExporter, replace(1, "p=tls-exporter,", "n,"), "first", "malformed-request", nil},
		{"p without plus mechanism", noPlus, "SCRAM-SHA-256", "", replace(1, "y,", "p=tls-exporter,"), "first", "malformed-request", nil},
		{"unknown channel binding", withPlus, "SCRAM-SHA-256-PLUS", clientlogin.CBTLSExporter, replace(1, "p=tls-exporter", "p=tls-bogus"), "first", "not-authorized", nil},
		{"channel binding swapped", withPlus, "SCRAM-SHA-256-PLUS", clientlogin.CBTLSExporter, func(st int, msg []byte) []byte {
			if st != 2 {
				return msg
			}
			// c= of a bind to no data: gs2-header only.
			return []byte("c=" + b64("p=tls-exporter,,") + string(msg[strings.Index(string(msg), ",r="):]))
		}, "final", "not-authorized", nil},
		// The client binds to another TLS connection to the same server
		// (a relay): its proof is consistent, the binding data is not.
		{"relayed channel binding", withPlus, "SCRAM-SHA-256-PLUS", clientlogin.CBTLSExporter, nil, "final", "not-authorized", otherConn},
		{"mandatory extension", noPlus, "SCRAM-SHA-256", "", replace(1, "n=alice", "m=ext,n=alice"), "first", "malformed-request", nil},
		{"bad saslname", noPlus, "SCRAM-SHA-256", "", replace(1, "n=alice", "n=al=ZZice"), "first", "malformed-request", nil},
		{"nonce not printable", noPlus, "SCRAM-SHA-256", "", replace(1, ",r=", ",r= "), "first", "malformed-request", nil},
		{"unknown user", noPlus, "SCRAM-SHA-256", "", replace(1, "n=alice", "n=mallory"), "first", "not-authorized", nil},
		{"foreign authzid", noPlus, "SCRAM-SHA-256", "", replace(1, "y,,", "y,a=bob@localhost,"), "first", "invalid-authzid", nil},
		{"nonce changed", noPlus, "SCRAM-SHA-256", "", func(st int, msg []byte) []byte {
			if st != 2 {
				return msg
			}
			return []byte(strings.Replace(string(msg), ",p=", "X,p=", 1)) // the nonce ends right before the proof
		}, "final", "not-authorized", nil},
		// An extension is part of the AuthMessage: one added in transit
		// breaks the proof.
		{"extension injected", noPlus, "SCRAM-SHA-256", "", replace(2, ",p=", ",x=1,p="), "final", "not-authorized", nil},
		{"extension after proof", noPlus, "SCRAM-SHA-256", "", func(st int, msg []byte) []byte {
			if st != 2 {
				return msg
			}
			return append(msg, ",x=1"...)
		}, "final", "malformed-request", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, Config{Mechanisms: tc.mechs})
			r := scramLogin(t, s, tc.mech, scramOpts{cb: tc.cb, edit: tc.edit, bindTo: tc.bindTo})
			if tc.cond == "" {
				if r.failure != nil || r.clientErr != nil {
					t.Fatalf("failure %v, client error %v", r.failure, r.clientErr)
				}
				return
			}
			if r.failure == nil || r.failure.child(nsSASL, tc.cond) == nil {
				t.Fatalf("failure %v, want %s", r.failure, tc.cond)
			}
			// Checks that a later one would also catch (a changed nonce
			// breaks the proof too): the text tells which one refused.
			if want, ok := wantText[tc.name]; ok {
				if txt := r.failure.child(nsSASL2, "text"); txt == nil || !strings.Contains(txt.Text, want) {
					t.Errorf("failure %v, want a text with %q", r.failure, want)
				}
			}
			if got := r.serverFirst != ""; got != (tc.step == "final") {
				t.Errorf("failed after server-first %v, want at %s", got, tc.step)
			}
			if got := s.Logins("alice").Password; got != 0 {
				t.Errorf("%d password logins after a refusal", got)
			}
		})
	}
}

// TestScramServerSharedSalt: SCRAM-SHA-256 and its -PLUS variant give the
// same salt (the keys a client caches serve both), and the salted password
// is derived once.
func TestScramServerSharedSalt(t *testing.T) {
	s := newTestServer(t, Config{Mechanisms: []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}, ScramIterations: 5000})
	salts := map[string]bool{}
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"} {
		r := scramLogin(t, s, mech, scramOpts{})
		if r.failure != nil || r.clientErr != nil {
			t.Fatalf("%s: failure %v, client error %v", mech, r.failure, r.clientErr)
		}
		for f := range strings.SplitSeq(r.serverFirst, ",") {
			if v, ok := strings.CutPrefix(f, "s="); ok {
				salts[v] = true
			}
			if f == "i=5000" {
				salts["iterations ok"] = true
			}
		}
	}
	if len(salts) != 2 || !salts["iterations ok"] {
		t.Errorf("salts and iteration counts seen: %v", salts)
	}
	s.mu.Lock()
	n := len(s.scram)
	s.mu.Unlock()
	if n != 1 {
		t.Errorf("%d salted-password entries, want 1", n)
	}
}
