package xmpptest

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// smLogin logs in with SASL2 PLAIN, inline bind and SM with resumption,
// and returns the client, its full JID and the SM-ID.
func smLogin(t *testing.T, s *Server, user, pw, tag string) (*client, string, string) {
	t.Helper()
	c := dialTLS(t, s)
	c.write(streamHeader(user+"@localhost") + sasl2Plain(user, pw, tag))
	c.header()
	c.expect(nsStream, "features")
	succ := c.expect(nsSASL2, "success")
	en := succ.child(nsBind2, "bound").child(nsSM, "enabled")
	if en == nil || en.attr("resume") != "true" || en.attr("id") == "" {
		t.Fatalf("no resumable SM in %s", succ.String())
	}
	c.expect(nsStream, "features")
	return c, succ.child(nsSASL2, "authorization-identifier").Text, en.attr("id")
}

// connOf returns the log of the last connection bound to full.
func connOf(t *testing.T, s *Server, full string) *ConnLog {
	t.Helper()
	conns := s.Conns()
	for i := len(conns) - 1; i >= 0; i-- {
		if conns[i].BoundJID() == full {
			return conns[i]
		}
	}
	t.Fatalf("no connection bound to %s", full)
	return nil
}

func chat(to, id string) string {
	return "<message to='" + to + "' type='chat' id='" + id + "'><body>" + id + "</body></message>"
}

func resumeEl(previd string, h int) string {
	return "<resume xmlns='urn:xmpp:sm:3' previd='" + previd + "' h='" + strconv.Itoa(h) + "'/>"
}

// expectMessages reads messages and checks their ids, in order.
func expectMessages(t *testing.T, c *client, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if m := c.expect(nsClient, "message"); m.attr("id") != id {
			t.Fatalf("got message %s, want id %s", m.String(), id)
		}
	}
}

// expectAck sends <r/> and expects <a/> with h as the very next element.
func expectAck(t *testing.T, c *client, h int) {
	t.Helper()
	c.write("<r xmlns='urn:xmpp:sm:3'/>")
	if a := c.expect(nsSM, "a"); a.attr("h") != strconv.Itoa(h) {
		t.Fatalf("ack %s, want h=%d", a.String(), h)
	}
}

// expectNothingBefore pings the server and expects the result as the very
// next element: nothing else was queued for the client.
func expectNothingBefore(t *testing.T, c *client) {
	t.Helper()
	c.write("<iq type='get' id='probe'><ping xmlns='urn:xmpp:ping'/></iq>")
	if r := c.expect(nsClient, "iq"); r.attr("id") != "probe" {
		t.Fatalf("got %s, want the ping result", r.String())
	}
}

func TestSMInlineResume(t *testing.T) {
	s := newTestServer(t, Config{})
	a, aJID, smID := smLogin(t, s, "alice", "secret", "phone")
	bob, bobJID := login(t, s, "bob", "hunter2", "pc")

	bob.write(chat(aJID, "m1") + chat(aJID, "m2") + chat(aJID, "m3"))
	expectMessages(t, a, "m1", "m2", "m3")
	a.write("<a xmlns='urn:xmpp:sm:3' h='1'/>" + chat(bobJID, "a1") + chat(bobJID, "a2"))
	expectAck(t, a, 2)
	expectMessages(t, bob, "a1", "a2")

	la := connOf(t, s, aJID)
	if !s.CutConnection(la) {
		t.Fatal("CutConnection = false")
	}
	waitDone(t, la)
	if la.Err() == nil {
		t.Error("Err = nil after a cut connection")
	}
	// Routed while detached: numbered and queued.
	bob.write(chat(aJID, "m4") + chat(aJID, "m5"))
	expectAck(t, bob, 5)
	want := SMSession{ID: smID, JID: aJID, Resumable: true, Detached: true, InboundH: 2, Sent: 5, AckedH: 1, Unacked: 4}
	if got, ok := s.SMSession(aJID); !ok || got != want {
		t.Errorf("SMSession = %+v, %v; want %+v", got, ok, want)
	}

	// Resume, having received m1..m3; the inline bind must be ignored.
	a2 := dialTLS(t, s)
	a2.write(streamHeader("alice@localhost") + withInline(sasl2Plain("alice", "secret", "ignored"), resumeEl(smID, 3)))
	a2.header()
	a2.expect(nsStream, "features")
	succ := a2.expect(nsSASL2, "success")
	r := succ.child(nsSM, "resumed")
	if r == nil || r.attr("previd") != smID || r.attr("h") != "2" {
		t.Fatalf("success without the right <resumed/>: %s", succ.String())
	}
	if succ.child(nsBind2, "bound") != nil || succ.child(nsSM, "failed") != nil {
		t.Errorf("resumed and bound: %s", succ.String())
	}
	if j := succ.child(nsSASL2, "authorization-identifier").Text; j != aJID {
		t.Errorf("authorization-identifier %q, want %q", j, aJID)
	}
	// No features: the retransmitted stanzas come right after <success/>,
	// then the session goes on with the resumed counters.
	expectMessages(t, a2, "m4", "m5")
	expectAck(t, a2, 2)
	a2.write("<a xmlns='urn:xmpp:sm:3' h='5'/>" + chat(bobJID, "a3"))
	expectMessages(t, bob, "a3")
	bob.write(chat(aJID, "m6"))
	expectMessages(t, a2, "m6")
	expectAck(t, a2, 3)
	expectNothingBefore(t, bob)

	l2 := connOf(t, s, aJID)
	if l2 == la {
		t.Fatal("the resumed session is still on the old connection")
	}
	var after []string
	for i, n := range names(l2.Events()) {
		if n == "out success" {
			after = names(l2.Events())[i+1:]
			break
		}
	}
	if len(after) < 2 || after[0] != "out message" || after[1] != "out message" || slices.Contains(after, "out features") {
		t.Errorf("after success: %v", after)
	}
	want = SMSession{ID: smID, JID: aJID, Resumable: true, InboundH: 3, Sent: 6, AckedH: 5, Unacked: 1}
	if got, ok := s.SMSession(aJID); !ok || got != want {
		t.Errorf("SMSession = %+v, %v; want %+v", got, ok, want)
	}
	for _, id := range []string{"m1", "m4", "a1", "a3"} {
		if n := s.HandledCount(id); n != 1 {
			t.Errorf("HandledCount(%s) = %d", id, n)
		}
	}
	if got := s.Logins("alice"); got != (LoginStats{Password: 2, Resumed: 1}) {
		t.Errorf("Logins = %+v", got)
	}
	a2.close()
	waitDone(t, l2)
	if _, ok := s.SMSession(aJID); ok {
		t.Error("session kept after </stream:stream>")
	}
}

// The client's last stanza was cut off by the connection loss: the server
// reports h=2, the client resends only the third, and each stanza reaches
// the server and the recipient once.
func TestSMResumeExactlyOnce(t *testing.T) {
	s := newTestServer(t, Config{})
	a, aJID, smID := smLogin(t, s, "alice", "secret", "phone")
	bob, bobJID := login(t, s, "bob", "hunter2", "pc")
	m3 := chat(bobJID, "x3")
	a.write(chat(bobJID, "x1") + chat(bobJID, "x2") + m3[:len(m3)/2])
	_ = a.nc.Close() // TLS close_notify, then FIN: no </stream:stream>
	la := connOf(t, s, aJID)
	waitDone(t, la)
	expectMessages(t, bob, "x1", "x2")

	a2 := dialTLS(t, s)
	a2.write(streamHeader("alice@localhost") + withInline(sasl2Plain("alice", "secret", "x"), resumeEl(smID, 0)))
	a2.header()
	a2.expect(nsStream, "features")
	succ := a2.expect(nsSASL2, "success")
	r := succ.child(nsSM, "resumed")
	if r == nil || r.attr("h") != "2" {
		t.Fatalf("resumed: %s", succ.String())
	}
	a2.write(m3) // what h=2 says the server did not get
	expectAck(t, a2, 3)
	expectMessages(t, bob, "x3")
	expectNothingBefore(t, bob)
	for _, id := range []string{"x1", "x2", "x3"} {
		if n := s.HandledCount(id); n != 1 {
			t.Errorf("HandledCount(%s) = %d, want 1", id, n)
		}
	}
	a2.close()
}

// resumeAttempt logs in as user with an inline resume and bind, and
// returns the <success/>; the stream stays open.
func resumeAttempt(t *testing.T, s *Server, user, pw, previd string, h int) (*client, rawEl) {
	t.Helper()
	c := dialTLS(t, s)
	c.write(streamHeader(user+"@localhost") + withInline(sasl2Plain(user, pw, "fresh"), resumeEl(previd, h)))
	c.header()
	c.expect(nsStream, "features")
	succ := c.expect(nsSASL2, "success")
	c.expect(nsStream, "features") // a failed resumption is followed by features
	return c, succ
}

// checkFailedResume checks a <success/> with a failed resumption and a
// fresh bind. wantH is the 'h' expected on <failed/>, or "" for none.
func checkFailedResume(t *testing.T, succ rawEl, cond, wantH string) {
	t.Helper()
	f := succ.child(nsSM, "failed")
	if f == nil || f.child(nsStanzas, cond) == nil || f.attr("h") != wantH {
		t.Errorf("want <failed h=%q><%s/></failed>: %s", wantH, cond, succ.String())
	}
	b := succ.child(nsBind2, "bound")
	if b == nil || b.child(nsSM, "enabled") == nil || succ.child(nsSM, "resumed") != nil {
		t.Errorf("no fresh bind: %s", succ.String())
	}
	if j := succ.child(nsSASL2, "authorization-identifier").Text; !strings.Contains(j, "/fresh.") {
		t.Errorf("authorization-identifier %q", j)
	}
}

func TestSMResumeFailures(t *testing.T) {
	t.Run("unknown", func(t *testing.T) {
		s := newTestServer(t, Config{})
		c, succ := resumeAttempt(t, s, "alice", "secret", "nope", 0)
		checkFailedResume(t, succ, "item-not-found", "")
		c.close()
		if got := s.Logins("alice"); got.ResumeFailed != 1 || got.Resumed != 0 {
			t.Errorf("Logins = %+v", got)
		}
	})
	t.Run("other user", func(t *testing.T) {
		s := newTestServer(t, Config{})
		a, aJID, smID := smLogin(t, s, "alice", "secret", "x")
		a.write(chat("bob@localhost", "h1"))
		expectAck(t, a, 1)
		s.CutConnection(connOf(t, s, aJID))
		waitDone(t, connOf(t, s, aJID))
		c, succ := resumeAttempt(t, s, "bob", "hunter2", smID, 0)
		checkFailedResume(t, succ, "item-not-found", "")
		c.close()
		// Alice's session is untouched.
		c, succ = resumeAttempt2(t, s, smID, 0)
		if r := succ.child(nsSM, "resumed"); r == nil || r.attr("h") != "1" {
			t.Errorf("alice's resumption: %s", succ.String())
		}
		c.close()
	})
	t.Run("expired", func(t *testing.T) {
		s := newTestServer(t, Config{})
		a, aJID, smID := smLogin(t, s, "alice", "secret", "x")
		a.write(chat("bob@localhost", "e1") + chat("bob@localhost", "e2"))
		expectAck(t, a, 2)
		s.CutConnection(connOf(t, s, aJID))
		waitDone(t, connOf(t, s, aJID))
		if n := s.ExpireSMSessions("bob"); n != 0 {
			t.Errorf("ExpireSMSessions(bob) = %d", n)
		}
		if n := s.ExpireSMSessions("alice"); n != 1 {
			t.Errorf("ExpireSMSessions(alice) = %d", n)
		}
		if _, ok := s.SMSession(aJID); ok {
			t.Error("expired session still listed")
		}
		c, succ := resumeAttempt(t, s, "alice", "secret", smID, 0)
		checkFailedResume(t, succ, "item-not-found", "2")
		c.close()
	})
	t.Run("timeout", func(t *testing.T) {
		clock := &fakeClock{now: time.Now()}
		s := newTestServer(t, Config{Now: clock.Now, SMResumeTimeout: time.Minute})
		a, aJID, smID := smLogin(t, s, "alice", "secret", "x")
		_ = a
		s.CutConnection(connOf(t, s, aJID))
		waitDone(t, connOf(t, s, aJID))
		clock.advance(59 * time.Second)
		if got, ok := s.SMSession(aJID); !ok || !got.Detached {
			t.Fatalf("SMSession before the timeout = %+v, %v", got, ok)
		}
		clock.advance(time.Second)
		c, succ := resumeAttempt(t, s, "alice", "secret", smID, 0)
		checkFailedResume(t, succ, "item-not-found", "0")
		c.close()
	})
	t.Run("clean close", func(t *testing.T) {
		s := newTestServer(t, Config{})
		a, aJID, smID := smLogin(t, s, "alice", "secret", "x")
		a.close()
		waitDone(t, connOf(t, s, aJID))
		c, succ := resumeAttempt(t, s, "alice", "secret", smID, 0)
		checkFailedResume(t, succ, "item-not-found", "")
		c.close()
	})
	t.Run("malformed", func(t *testing.T) {
		s := newTestServer(t, Config{})
		c := dialTLS(t, s)
		c.write(streamHeader("alice@localhost") + withInline(sasl2Plain("alice", "secret", "fresh"), "<resume xmlns='urn:xmpp:sm:3' h='x'/>"))
		c.header()
		c.expect(nsStream, "features")
		checkFailedResume(t, c.expect(nsSASL2, "success"), "bad-request", "")
		c.expect(nsStream, "features")
		c.close()
	})
	t.Run("no resumption", func(t *testing.T) {
		s := newTestServer(t, Config{NoSMResume: true})
		c := dialTLS(t, s)
		c.write(streamHeader("alice@localhost") + withInline(sasl2Plain("alice", "secret", "fresh"), resumeEl("x", 0)))
		c.header()
		c.expect(nsStream, "features")
		succ := c.expect(nsSASL2, "success")
		if f := succ.child(nsSM, "failed"); f == nil || f.child(nsStanzas, "feature-not-implemented") == nil {
			t.Errorf("resume with NoSMResume: %s", succ.String())
		}
		if en := succ.child(nsBind2, "bound").child(nsSM, "enabled"); en == nil || en.attr("resume") != "" || en.attr("max") != "" {
			t.Errorf("enabled with NoSMResume: %s", succ.String())
		}
		c.expect(nsStream, "features")
		// A lost connection ends the session.
		j := succ.child(nsSASL2, "authorization-identifier").Text
		s.CutConnection(connOf(t, s, j))
		waitDone(t, connOf(t, s, j))
		if _, ok := s.SMSession(j); ok {
			t.Error("session kept without resumption")
		}
	})
}

// resumeAttempt2 resumes alice's session (expecting success).
func resumeAttempt2(t *testing.T, s *Server, previd string, h int) (*client, rawEl) {
	t.Helper()
	c := dialTLS(t, s)
	c.write(streamHeader("alice@localhost") + withInline(sasl2Plain("alice", "secret", "x"), resumeEl(previd, h)))
	c.header()
	c.expect(nsStream, "features")
	return c, c.expect(nsSASL2, "success")
}

func TestSMClientMax(t *testing.T) {
	s := newTestServer(t, Config{SMResumeTimeout: 90 * time.Second})
	for _, tc := range []struct{ attr, want string }{{"", "90"}, {" max='30'", "30"}, {" max='600'", "90"}, {" max='zero'", "90"}} {
		c := dialTLS(t, s)
		auth := strings.Replace(sasl2Plain("alice", "secret", "m"), "resume='true'", "resume='true'"+tc.attr, 1)
		c.write(streamHeader("alice@localhost") + auth)
		c.header()
		c.expect(nsStream, "features")
		succ := c.expect(nsSASL2, "success")
		if en := succ.child(nsBind2, "bound").child(nsSM, "enabled"); en == nil || en.attr("max") != tc.want {
			t.Errorf("client%s: %s, want max=%s", tc.attr, succ.String(), tc.want)
		}
		c.expect(nsStream, "features")
		c.close()
	}
}

func TestSMResumeReplacesOpenStream(t *testing.T) {
	s := newTestServer(t, Config{})
	a, aJID, smID := smLogin(t, s, "alice", "secret", "x")
	bob, _ := login(t, s, "bob", "hunter2", "pc")
	bob.write(chat(aJID, "c1"))
	expectMessages(t, a, "c1")
	la := connOf(t, s, aJID)

	a2, succ := resumeAttempt2(t, s, smID, 1)
	if r := succ.child(nsSM, "resumed"); r == nil || r.attr("h") != "0" {
		t.Fatalf("resumed: %s", succ.String())
	}
	// The old stream got a conflict stream error and was closed.
	e := a.expect(nsStream, "error")
	if e.child(nsStreamError, "conflict") == nil {
		t.Errorf("old stream: %s", e.String())
	}
	waitDone(t, la)
	bob.write(chat(aJID, "c2"))
	expectMessages(t, a2, "c2")
	a2.close()
}

func TestSMAcksAndRequests(t *testing.T) {
	s := newTestServer(t, Config{SMRequestEvery: 2})
	a, aJID, _ := smLogin(t, s, "alice", "secret", "x")
	bob, _ := login(t, s, "bob", "hunter2", "pc")
	bob.write(chat(aJID, "r1") + chat(aJID, "r2") + chat(aJID, "r3"))
	expectMessages(t, a, "r1", "r2")
	a.expect(nsSM, "r")
	expectMessages(t, a, "r3")
	a.write("<a xmlns='urn:xmpp:sm:3' h='2'/>")
	expectAck(t, a, 0)
	if got, _ := s.SMSession(aJID); got.Sent != 3 || got.AckedH != 2 || got.Unacked != 1 {
		t.Errorf("SMSession = %+v", got)
	}

	a.write("<a xmlns='urn:xmpp:sm:3' h='9'/>")
	e := a.expect(nsStream, "error")
	hc := e.child(nsSM, "handled-count-too-high")
	if e.child(nsStreamError, "undefined-condition") == nil || hc == nil || hc.attr("h") != "9" || hc.attr("send-count") != "3" {
		t.Errorf("too-high ack: %s", e.String())
	}
	if _, ok := a.tryNext(); ok {
		t.Error("stream continues")
	}
	la := connOf(t, s, aJID)
	waitDone(t, la)
	if _, ok := s.SMSession(aJID); ok {
		t.Error("session kept after a stream error")
	}

	// (alice again: bob's new session could get carbons of bob's messages)
	a2, _, _ := smLogin(t, s, "alice", "secret", "y")
	a2.write("<a xmlns='urn:xmpp:sm:3'/>")
	if e := a2.expect(nsStream, "error"); e.child(nsStreamError, "invalid-xml") == nil {
		t.Errorf("ack without h: %s", e.String())
	}
}

func TestSMTopLevelResume(t *testing.T) {
	s := newTestServer(t, Config{})
	classic := func(c *client, tail string) {
		c.write(streamHeader("alice@localhost") +
			"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + b64("\x00alice\x00secret") + "</auth>" +
			streamHeader("alice@localhost") + tail)
		c.header()
		c.expect(nsStream, "features")
		c.expect(nsSASL, "success")
		c.restart()
		c.header()
		c.expect(nsStream, "features")
	}
	a := dialTLS(t, s)
	classic(a, "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>"+
		"<enable xmlns='urn:xmpp:sm:3' resume='1'/>")
	a.expect(nsClient, "iq")
	en := a.expect(nsSM, "enabled")
	if en.attr("resume") != "true" || en.attr("id") == "" {
		t.Fatalf("enabled: %s", en.String())
	}
	bob, _ := login(t, s, "bob", "hunter2", "pc")
	bob.write(chat("alice@localhost/r", "t1"))
	expectMessages(t, a, "t1")
	s.CutConnection(connOf(t, s, "alice@localhost/r"))
	waitDone(t, connOf(t, s, "alice@localhost/r"))

	a2 := dialTLS(t, s)
	classic(a2, resumeEl(en.attr("id"), 0))
	r := a2.expect(nsSM, "resumed")
	if r.attr("previd") != en.attr("id") || r.attr("h") != "0" {
		t.Errorf("resumed: %s", r.String())
	}
	expectMessages(t, a2, "t1")
	expectAck(t, a2, 0)
	a2.write(chat("bob@localhost", "t2"))
	expectMessages(t, bob, "t2")
	// Resuming a bound stream is refused.
	a2.write(resumeEl(en.attr("id"), 1))
	if f := a2.expect(nsSM, "failed"); f.child(nsStanzas, "unexpected-request") == nil {
		t.Errorf("resume when bound: %s", f.String())
	}
	a2.close()
}

func TestSMResumeAckTooHigh(t *testing.T) {
	s := newTestServer(t, Config{})
	a, aJID, smID := smLogin(t, s, "alice", "secret", "x")
	_ = a
	s.CutConnection(connOf(t, s, aJID))
	waitDone(t, connOf(t, s, aJID))
	c := dialTLS(t, s)
	c.write(streamHeader("alice@localhost") + withInline(sasl2Plain("alice", "secret", "x"), resumeEl(smID, 4)))
	c.header()
	c.expect(nsStream, "features")
	e := c.expect(nsStream, "error")
	if hc := e.child(nsSM, "handled-count-too-high"); hc == nil || hc.attr("h") != "4" || hc.attr("send-count") != "0" {
		t.Errorf("stream error: %s", e.String())
	}
	// The session is still there for a correct resumption.
	c2, succ := resumeAttempt2(t, s, smID, 0)
	if succ.child(nsSM, "resumed") == nil {
		t.Errorf("second resumption: %s", succ.String())
	}
	c2.close()
}

// Config.SMResumeFeatures: Prosody's order, success, the retransmitted
// stanzas, then features.
func TestSMResumeFeatures(t *testing.T) {
	s := newTestServer(t, Config{SMResumeFeatures: true})
	_, aJID, smID := smLogin(t, s, "alice", "secret", "x")
	bob, _ := login(t, s, "bob", "hunter2", "pc")
	s.CutConnection(connOf(t, s, aJID))
	waitDone(t, connOf(t, s, aJID))
	bob.write(chat(aJID, "f1"))
	expectAck(t, bob, 1)
	c, succ := resumeAttempt2(t, s, smID, 0)
	if succ.child(nsSM, "resumed") == nil {
		t.Fatalf("not resumed: %s", succ.String())
	}
	expectMessages(t, c, "f1")
	c.expect(nsStream, "features")
	c.close()
}

// FAST and resumption in one <authenticate/>: the reconnect a client makes.
func TestFASTWithInlineResume(t *testing.T) {
	s := newTestServer(t, Config{})
	const mech = "HT-SHA-256-EXPR"
	a := dialTLS(t, s)
	a.write(streamHeader("alice@localhost") + withInline(sasl2Plain("alice", "secret", "x"), requestToken(mech)))
	a.header()
	a.expect(nsStream, "features")
	succ := a.expect(nsSASL2, "success")
	a.expect(nsStream, "features")
	tok := tokenOf(t, succ, time.Now(), defaultFASTLifetime)
	smID := succ.child(nsBind2, "bound").child(nsSM, "enabled").attr("id")
	aJID := succ.child(nsSASL2, "authorization-identifier").Text
	s.CutConnection(connOf(t, s, aJID))
	waitDone(t, connOf(t, s, aJID))

	c := dialTLS(t, s)
	c.write(streamHeader("alice@localhost"))
	c.header()
	c.expect(nsStream, "features")
	c.write(fastAuthenticate(t, c, mech, "alice", tok, " count='1'", resumeEl(smID, 0)))
	succ = c.expect(nsSASL2, "success")
	if succ.child(nsSM, "resumed") == nil || succ.child(nsBind2, "bound") != nil || succ.child(nsSASL2, "additional-data") == nil {
		t.Errorf("FAST resumption: %s", succ.String())
	}
	expectAck(t, c, 0)
	if got := s.Logins("alice"); got != (LoginStats{Password: 1, FAST: 1, TokensIssued: 1, Resumed: 1}) {
		t.Errorf("Logins = %+v", got)
	}
	c.close()
}

// A stanza routed to a session's old connection after a resumption moved
// the session goes on to the new connection (here not ready yet, so it is
// queued there).
func TestDeliverFollowsResumption(t *testing.T) {
	s := NewUnstartedServer(Config{Users: testUsers})
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	old := newConn(s, s.cfg, a, modeSecured)
	moved := newConn(s, s.cfg, b, modeSecured)
	old.movedTo = moved
	old.deliver(newElement(nsClient, "message", "id", "late"))
	if len(old.pending) != 0 || len(moved.pending) != 1 || !strings.Contains(string(moved.pending[0].data), "id='late'") {
		t.Errorf("old pending %d, moved pending %d", len(old.pending), len(moved.pending))
	}
}
