package xmpptest

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The client side of the HT-SHA-256-* mechanisms, written from
// draft-schmaus-kitten-sasl-ht and RFC 5929 / RFC 9266 for these tests,
// independently of the server's fast.go.

// testCBData is the channel-binding data of mech as the client sees the
// connection.
func testCBData(t *testing.T, c *client, mech string) []byte {
	t.Helper()
	cs := c.nc.(*tls.Conn).ConnectionState()
	switch mech {
	case "HT-SHA-256-NONE":
		return nil
	case "HT-SHA-256-EXPR":
		d, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
		if err != nil {
			t.Fatalf("tls-exporter: %v", err)
		}
		return d
	case "HT-SHA-256-ENDP":
		cert := cs.PeerCertificates[0]
		if cert.SignatureAlgorithm != x509.ECDSAWithSHA256 {
			t.Fatalf("test certificate signed with %v; this helper only knows ECDSA-SHA256", cert.SignatureAlgorithm)
		}
		h := sha256.Sum256(cert.Raw)
		return h[:]
	case "HT-SHA-256-UNIQ":
		return cs.TLSUnique
	}
	t.Fatalf("no channel binding for %s", mech)
	return nil
}

// childrenNamed returns the children with the given name.
func (e *rawEl) childrenNamed(space, local string) []rawEl {
	if e == nil {
		return nil
	}
	var out []rawEl
	for _, c := range e.Children {
		if c.XMLName.Space == space && c.XMLName.Local == local {
			out = append(out, c)
		}
	}
	return out
}

func testHMAC(token, label string, cb []byte) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte(label))
	m.Write(cb)
	return m.Sum(nil)
}

// fastAuthenticate is a SASL2 <authenticate/> with a FAST token: the
// initial response "user NUL Initiator", <fast/> with attrs (raw XML
// attributes, may be empty), the test user agent and an inline bind with
// SM resumption. extra is more inline XML.
func fastAuthenticate(t *testing.T, c *client, mech, user, token, attrs, extra string) string {
	t.Helper()
	ir := user + "\x00" + string(testHMAC(token, "Initiator", testCBData(t, c, mech)))
	return "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='" + mech + "'><initial-response>" + b64(ir) +
		"</initial-response><user-agent id='" + testUA + "'><software>pipebind-test</software></user-agent>" +
		"<fast xmlns='urn:xmpp:fast:0'" + attrs + "/>" +
		"<bind xmlns='urn:xmpp:bind:0'><tag>fast</tag><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>" +
		extra + "</authenticate>"
}

// withInline inserts extra XML into a SASL2 <authenticate/>.
func withInline(auth, extra string) string {
	return strings.TrimSuffix(auth, "</authenticate>") + extra + "</authenticate>"
}

func requestToken(mech string) string {
	return "<request-token xmlns='urn:xmpp:fast:0' mechanism='" + mech + "'/>"
}

// tokenOf returns the FAST <token/> of a <success/>, failing the test when
// it has none or a malformed one.
func tokenOf(t *testing.T, succ rawEl, now time.Time, lifetime time.Duration) string {
	t.Helper()
	tok := succ.child(nsFAST, "token")
	if tok == nil {
		t.Fatalf("no FAST token in %s", succ.String())
	}
	exp, err := time.Parse(time.RFC3339Nano, tok.attr("expiry"))
	if err != nil {
		t.Fatalf("expiry %q: %v", tok.attr("expiry"), err)
	}
	if d := exp.Sub(now.Add(lifetime)); d < -time.Minute || d > time.Minute {
		t.Errorf("expiry %v, want about %v", exp, now.Add(lifetime))
	}
	if tok.attr("token") == "" {
		t.Fatalf("empty token in %s", succ.String())
	}
	return tok.attr("token")
}

// passwordToken logs alice in with PLAIN, requesting a token for mech, and
// returns the token. The stream is closed politely.
func passwordToken(t *testing.T, s *Server, mech string) string {
	t.Helper()
	c := dialTLS(t, s)
	c.write(streamHeader("alice@localhost") + withInline(sasl2Plain("alice", "secret", "pw"), requestToken(mech)))
	c.header()
	c.expect(nsStream, "features")
	succ := c.expect(nsSASL2, "success")
	c.expect(nsStream, "features")
	tok := tokenOf(t, succ, time.Now(), defaultFASTLifetime)
	c.close()
	return tok
}

// fastLogin authenticates alice with the token on a new connection and
// returns the <success/>.
func fastLogin(t *testing.T, s *Server, mech, token, attrs string) rawEl {
	t.Helper()
	c := dialTLS(t, s)
	c.write(streamHeader("alice@localhost"))
	c.header()
	c.expect(nsStream, "features")
	c.write(fastAuthenticate(t, c, mech, "alice", token, attrs, ""))
	succ := c.expect(nsSASL2, "success")
	want := testHMAC(token, "Responder", testCBData(t, c, mech))
	ad := succ.child(nsSASL2, "additional-data")
	if ad == nil || !hmac.Equal(unb64(t, ad.Text), want) {
		t.Fatalf("%s: additional-data is not the Responder hash: %s", mech, succ.String())
	}
	c.expect(nsStream, "features")
	c.close()
	return succ
}

// fastFailure sends a FAST <authenticate/> that must fail with cond, then
// proves the stream is still usable: a password <authenticate/> on the same
// stream succeeds (XEP-0388 §failure), and nothing inline of the failed
// request was processed.
func fastFailure(t *testing.T, s *Server, header, auth func(c *client) string, cond string) {
	t.Helper()
	c := dialTLS(t, s)
	c.write(header(c))
	c.header()
	c.expect(nsStream, "features")
	c.write(auth(c))
	f := c.expect(nsSASL2, "failure")
	if f.child(nsSASL, cond) == nil {
		t.Fatalf("failure %s, want %s", f.String(), cond)
	}
	if l := s.Conns()[len(s.Conns())-1]; l.BoundJID() != "" {
		t.Errorf("the failed request bound %q", l.BoundJID())
	}
	c.write(sasl2Plain("alice", "secret", "after"))
	succ := c.expect(nsSASL2, "success")
	if j := succ.child(nsSASL2, "authorization-identifier").Text; !strings.HasPrefix(j, "alice@localhost/after.") {
		t.Errorf("password login after the failure: %s", succ.String())
	}
	c.expect(nsStream, "features")
	c.close()
}

func TestFASTFeature(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      Config
		wantFAST []string // nil: no <fast/>
		wantSM   bool
	}{
		{"default", Config{}, defaultFASTMechanisms, true},
		{"configured", Config{FASTMechanisms: []string{"HT-SHA-256-EXPR", "HT-SHA-256-UNIQ"}}, []string{"HT-SHA-256-EXPR", "HT-SHA-256-UNIQ"}, true},
		{"off", Config{NoFAST: true, NoSMResume: true}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, tc.cfg)
			c := dialTLS(t, s)
			c.write(streamHeader("alice@localhost"))
			c.header()
			f := c.expect(nsStream, "features")
			inline := f.child(nsSASL2, "authentication").child(nsSASL2, "inline")
			if inline == nil {
				t.Fatalf("no SASL2 inline: %s", f.String())
			}
			fast := inline.child(nsFAST, "fast")
			var got []string
			for _, m := range fast.childrenNamed(nsFAST, "mechanism") {
				got = append(got, m.Text)
			}
			if (fast == nil) != (tc.wantFAST == nil) || !slices.Equal(got, tc.wantFAST) {
				t.Errorf("FAST mechanisms %v (present %v), want %v", got, fast != nil, tc.wantFAST)
			}
			if fast != nil && fast.attr("tls-0rtt") != "" {
				t.Errorf("tls-0rtt advertised without 0-RTT support: %s", fast.String())
			}
			if (inline.child(nsSM, "sm") != nil) != tc.wantSM {
				t.Errorf("inline sm present = %v, want %v", inline.child(nsSM, "sm") != nil, tc.wantSM)
			}
			// FAST mechanisms are not password mechanisms.
			for _, m := range f.child(nsSASL2, "authentication").childrenNamed(nsSASL2, "mechanism") {
				if strings.HasPrefix(m.Text, "HT-") {
					t.Errorf("%s listed as a SASL2 mechanism", m.Text)
				}
			}
			c.close()
		})
	}
}

func TestFASTTokenRoundTrip(t *testing.T) {
	for _, mech := range defaultFASTMechanisms {
		t.Run(mech, func(t *testing.T) {
			s := newTestServer(t, Config{})
			tok := passwordToken(t, s, mech)
			if n := s.FASTTokenCount("alice"); n != 1 {
				t.Errorf("FASTTokenCount = %d, want 1", n)
			}
			succ := fastLogin(t, s, mech, tok, "")
			if j := succ.child(nsSASL2, "authorization-identifier").Text; !strings.HasPrefix(j, "alice@localhost/fast.") {
				t.Errorf("authorization-identifier %q", j)
			}
			if succ.child(nsBind2, "bound").child(nsSM, "enabled") == nil {
				t.Errorf("inline bind not processed: %s", succ.String())
			}
			if succ.child(nsFAST, "token") != nil {
				t.Errorf("token rotated without FASTRotate: %s", succ.String())
			}
			conns := s.Conns()
			if m := conns[len(conns)-1].Mechanism(); m != mech {
				t.Errorf("Mechanism = %q", m)
			}
			// The token keeps working.
			fastLogin(t, s, mech, tok, "")
			want := LoginStats{Password: 1, FAST: 2, TokensIssued: 1}
			if got := s.Logins("alice"); got != want {
				t.Errorf("Logins = %+v, want %+v", got, want)
			}
		})
	}
}

func TestFASTFailures(t *testing.T) {
	s := newTestServer(t, Config{FASTMechanisms: []string{"HT-SHA-256-NONE", "HT-SHA-256-EXPR", "HT-SHA-256-UNIQ", "HT-SHA-256-FUTURE"}})
	tok := passwordToken(t, s, "HT-SHA-256-EXPR")
	hdr := func(*client) string { return streamHeader("alice@localhost") }
	for _, tc := range []struct {
		name   string
		header func(c *client) string
		auth   func(c *client) string
		cond   string
	}{
		{"wrong token", hdr, func(c *client) string {
			return fastAuthenticate(t, c, "HT-SHA-256-EXPR", "alice", tok+"x", "", "")
		}, "not-authorized"},
		{"other mechanism than requested", hdr, func(c *client) string {
			return fastAuthenticate(t, c, "HT-SHA-256-NONE", "alice", tok, "", "")
		}, "not-authorized"},
		{"wrong channel binding", hdr, func(c *client) string {
			ir := "alice\x00" + string(testHMAC(tok, "Initiator", []byte("not the exporter")))
			return strings.Replace(fastAuthenticate(t, c, "HT-SHA-256-EXPR", "alice", tok, "", ""),
				b64("alice\x00"+string(testHMAC(tok, "Initiator", testCBData(t, c, "HT-SHA-256-EXPR")))), b64(ir), 1)
		}, "not-authorized"},
		{"other user", func(*client) string { return streamHeader("bob@localhost") }, func(c *client) string {
			return fastAuthenticate(t, c, "HT-SHA-256-EXPR", "bob", tok, "", "")
		}, "not-authorized"},
		{"stream from is someone else", func(*client) string { return streamHeader("bob@localhost") }, func(c *client) string {
			return fastAuthenticate(t, c, "HT-SHA-256-EXPR", "alice", tok, "", "")
		}, "not-authorized"},
		{"no stream from", func(*client) string {
			return strings.Replace(streamHeader("alice@localhost"), "from='alice@localhost'", "", 1)
		}, func(c *client) string {
			return fastAuthenticate(t, c, "HT-SHA-256-EXPR", "alice", tok, "", "")
		}, "malformed-request"},
		{"no fast element", hdr, func(c *client) string {
			return strings.Replace(fastAuthenticate(t, c, "HT-SHA-256-EXPR", "alice", tok, "", ""), "<fast xmlns='urn:xmpp:fast:0'/>", "", 1)
		}, "malformed-request"},
		{"no user-agent id", hdr, func(c *client) string {
			return strings.Replace(fastAuthenticate(t, c, "HT-SHA-256-EXPR", "alice", tok, "", ""), " id='"+testUA+"'", "", 1)
		}, "malformed-request"},
		{"bad count", hdr, func(c *client) string {
			return fastAuthenticate(t, c, "HT-SHA-256-EXPR", "alice", tok, " count='-3'", "")
		}, "malformed-request"},
		{"no initiator hash", hdr, func(*client) string {
			return "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-EXPR'><initial-response>" + b64("alice") +
				"</initial-response><user-agent id='" + testUA + "'/><fast xmlns='urn:xmpp:fast:0'/></authenticate>"
		}, "malformed-request"},
		{"not offered", hdr, func(c *client) string {
			return fastAuthenticate(t, c, "HT-SHA-256-ENDP", "alice", tok, "", "")
		}, "invalid-mechanism"},
		{"offered, not implemented", hdr, func(c *client) string {
			return strings.Replace(fastAuthenticate(t, c, "HT-SHA-256-NONE", "alice", tok, "", ""), "HT-SHA-256-NONE", "HT-SHA-256-FUTURE", 1)
		}, "invalid-mechanism"},
		{"tls-unique on TLS 1.3", hdr, func(c *client) string {
			return fastAuthenticate(t, c, "HT-SHA-256-UNIQ", "alice", tok, "", "")
		}, "malformed-request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Logins("alice").FASTFailed
			fastFailure(t, s, tc.header, tc.auth, tc.cond)
			if tc.header(nil) == hdr(nil) {
				if got := s.Logins("alice").FASTFailed; got != before+1 {
					t.Errorf("FASTFailed = %d, want %d", got, before+1)
				}
			}
		})
	}
	// None of that hurt the token.
	fastLogin(t, s, "HT-SHA-256-EXPR", tok, "")
}

// fakeClock is a Config.Now that tests move.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestFASTExpiry(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	s := newTestServer(t, Config{Now: clock.Now, FASTTokenLifetime: 10 * time.Hour})
	c := dialTLS(t, s)
	c.write(streamHeader("alice@localhost") + withInline(sasl2Plain("alice", "secret", "pw"), requestToken("HT-SHA-256-NONE")))
	c.header()
	c.expect(nsStream, "features")
	tok := tokenOf(t, c.expect(nsSASL2, "success"), clock.Now(), 10*time.Hour)
	c.expect(nsStream, "features")
	c.close()

	// Past half of its lifetime the token is rotated, unasked.
	clock.advance(6 * time.Hour)
	succ := fastLogin(t, s, "HT-SHA-256-NONE", tok, "")
	tokenOf(t, succ, clock.Now(), 10*time.Hour)

	// Past its expiry the old token fails with credentials-expired, and
	// then not at all: it was removed.
	clock.advance(5 * time.Hour)
	auth := func(c *client) string { return fastAuthenticate(t, c, "HT-SHA-256-NONE", "alice", tok, "", "") }
	hdr := func(*client) string { return streamHeader("alice@localhost") }
	fastFailure(t, s, hdr, auth, "credentials-expired")
	fastFailure(t, s, hdr, auth, "not-authorized")
	if n := s.FASTTokenCount("alice"); n != 1 {
		t.Errorf("FASTTokenCount = %d, want 1 (the rotated token)", n)
	}
}

func TestFASTRotation(t *testing.T) {
	s := newTestServer(t, Config{FASTRotate: true})
	const mech = "HT-SHA-256-EXPR"
	a := passwordToken(t, s, mech)
	b := tokenOf(t, fastLogin(t, s, mech, a, ""), time.Now(), defaultFASTLifetime)
	if b == a {
		t.Fatal("rotation returned the same token")
	}
	// The client lost b: a still works (b was never used), and rotation
	// replaces the unused b with c.
	c := tokenOf(t, fastLogin(t, s, mech, a, ""), time.Now(), defaultFASTLifetime)
	hdr := func(*client) string { return streamHeader("alice@localhost") }
	with := func(tok string) func(c *client) string {
		return func(c *client) string { return fastAuthenticate(t, c, mech, "alice", tok, "", "") }
	}
	fastFailure(t, s, hdr, with(b), "not-authorized")
	// Using c invalidates a, whose expiry is earlier.
	fastLogin(t, s, mech, c, "")
	fastFailure(t, s, hdr, with(a), "not-authorized")
	if got := s.Logins("alice"); got.TokensIssued != 4 || got.FAST != 3 || got.FASTFailed != 2 {
		t.Errorf("Logins = %+v", got)
	}
}

func TestFASTFailNextAndInvalidate(t *testing.T) {
	s := newTestServer(t, Config{})
	const mech = "HT-SHA-256-NONE"
	tok := passwordToken(t, s, mech)
	hdr := func(*client) string { return streamHeader("alice@localhost") }
	with := func(attrs, extra string) func(c *client) string {
		return func(c *client) string { return fastAuthenticate(t, c, mech, "alice", tok, attrs, extra) }
	}

	s.FailNextFAST("alice", "credentials-expired")
	fastFailure(t, s, hdr, with("", ""), "credentials-expired")
	fastLogin(t, s, mech, tok, "") // once only; the token was kept
	s.FailNextFAST("alice", "not-authorized")
	fastFailure(t, s, hdr, with("", ""), "not-authorized")
	s.FailNextFAST("alice", "not-authorized")
	s.FailNextFAST("alice", "") // cancelled
	fastLogin(t, s, mech, tok, "")

	// The replay counter must grow.
	fastLogin(t, s, mech, tok, " count='5'")
	fastFailure(t, s, hdr, with(" count='5'", ""), "not-authorized")
	fastFailure(t, s, hdr, with(" count='4'", ""), "not-authorized")
	fastLogin(t, s, mech, tok, " count='6'")

	// invalidate='true': success without a new token, then the token is dead.
	if succ := fastLogin(t, s, mech, tok, " count='7' invalidate='true'"); succ.child(nsFAST, "token") != nil {
		t.Errorf("token issued after invalidate: %s", succ.String())
	}
	fastFailure(t, s, hdr, with("", ""), "not-authorized")
	if n := s.FASTTokenCount("alice"); n != 0 {
		t.Errorf("FASTTokenCount = %d after invalidate", n)
	}

	// invalidate with <request-token/> gets a new token.
	tok = passwordToken(t, s, mech)
	c := dialTLS(t, s)
	c.write(streamHeader("alice@localhost"))
	c.header()
	c.expect(nsStream, "features")
	c.write(fastAuthenticate(t, c, mech, "alice", tok, " invalidate='1'", requestToken(mech)))
	next := tokenOf(t, c.expect(nsSASL2, "success"), time.Now(), defaultFASTLifetime)
	c.expect(nsStream, "features")
	c.close()
	fastFailure(t, s, hdr, with("", ""), "not-authorized")
	fastLogin(t, s, mech, next, "")

	if n := s.InvalidateFASTTokens("alice"); n != 1 {
		t.Errorf("InvalidateFASTTokens = %d, want 1", n)
	}
	tok = next
	fastFailure(t, s, hdr, with("", ""), "not-authorized")
}

// A token request for a mechanism the server does not offer, or without a
// <user-agent/> id, gets no token; the login itself succeeds.
func TestFASTRequestIgnored(t *testing.T) {
	s := newTestServer(t, Config{FASTMechanisms: []string{"HT-SHA-256-NONE"}})
	for _, auth := range []string{
		withInline(sasl2Plain("alice", "secret", "x"), requestToken("HT-SHA-256-EXPR")),
		strings.Replace(withInline(sasl2Plain("alice", "secret", "x"), requestToken("HT-SHA-256-NONE")), " id='"+testUA+"'", "", 1),
	} {
		c := dialTLS(t, s)
		c.write(streamHeader("alice@localhost") + auth)
		c.header()
		c.expect(nsStream, "features")
		if succ := c.expect(nsSASL2, "success"); succ.child(nsFAST, "token") != nil {
			t.Errorf("token issued: %s", succ.String())
		}
		c.expect(nsStream, "features")
		c.close()
	}
	if got := s.Logins("alice"); got.TokensIssued != 0 || got.Password != 2 {
		t.Errorf("Logins = %+v", got)
	}
}
