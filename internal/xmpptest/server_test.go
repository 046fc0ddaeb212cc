package xmpptest

import (
	"crypto/tls"
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
)

var testUsers = map[string]string{"alice": "secret", "bob": "hunter2"}

func newTestServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Users == nil {
		cfg.Users = testUsers
	}
	s := NewServer(cfg)
	t.Cleanup(s.Close)
	return s
}

// onlyConn returns the log of the server's single connection.
func onlyConn(t *testing.T, s *Server) *ConnLog {
	t.Helper()
	conns := s.Conns()
	if len(conns) != 1 {
		t.Fatalf("got %d connections, want 1", len(conns))
	}
	return conns[0]
}

// names lists events as "<in|out> local" for failure messages and checks.
func names(evs []Event) []string {
	var out []string
	for _, e := range evs {
		dir := "out"
		if e.In {
			dir = "in"
		}
		n := e.Name.Local
		if e.End {
			n = "/" + n
		}
		out = append(out, dir+" "+n)
	}
	return out
}

func TestSASL2PipelinedPlain(t *testing.T) {
	s := newTestServer(t, Config{})
	c := dialTLS(t, s)
	// Header and <authenticate/> in one write, before reading anything.
	c.write(streamHeader("alice@localhost") + sasl2Plain("alice", "secret", "pipebind"))

	hdr := c.header()
	var from string
	for _, a := range hdr.Attr {
		if a.Name.Local == "from" {
			from = a.Value
		}
	}
	if from != "localhost" {
		t.Errorf("header from = %q, want localhost", from)
	}
	f := c.expect(nsStream, "features")
	auth := f.child(nsSASL2, "authentication")
	if auth == nil {
		t.Fatalf("no SASL2 feature in %s", f.String())
	}
	var mechs []string
	for _, m := range auth.Children {
		if m.XMLName.Local == "mechanism" {
			mechs = append(mechs, m.Text)
		}
	}
	if !slices.Equal(mechs, []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"}) {
		t.Errorf("SASL2 mechanisms = %v", mechs)
	}
	inline := auth.child(nsSASL2, "inline")
	if inline.child(nsBind2, "bind").child(nsBind2, "inline") == nil || inline.child(nsSM, "sm") == nil {
		t.Errorf("SASL2 inline features missing: %s", auth.String())
	}
	if f.child(nsSASL, "mechanisms") == nil || f.child(nsSASLCB, "sasl-channel-binding") == nil {
		t.Errorf("classic mechanisms or channel-binding feature missing: %s", f.String())
	}

	succ := c.expect(nsSASL2, "success")
	jid := succ.child(nsSASL2, "authorization-identifier").Text
	if !strings.HasPrefix(jid, "alice@localhost/pipebind.") {
		t.Errorf("authorization-identifier = %q, want alice@localhost/pipebind.*", jid)
	}
	if succ.child(nsSASL2, "additional-data") != nil {
		t.Errorf("PLAIN success has additional-data: %s", succ.String())
	}
	enabled := succ.child(nsBind2, "bound").child(nsSM, "enabled")
	if enabled == nil || enabled.attr("id") == "" || enabled.attr("resume") != "true" || enabled.attr("max") != "300" {
		t.Errorf("bound has no proper SM <enabled/>: %s", succ.String())
	}
	f2 := c.expect(nsStream, "features")
	if f2.child(nsSM, "sm") == nil || f2.child(nsCSI, "csi") == nil {
		t.Errorf("post-auth features lack sm or csi: %s", f2.String())
	}
	if f2.child(nsBind, "bind") != nil || f2.child(nsBind2, "bind") != nil {
		t.Errorf("post-bind features offer bind: %s", f2.String())
	}

	l := onlyConn(t, s)
	if ev, ok := l.Received("authenticate"); !ok || ev.ServerWritesBefore != 0 {
		t.Errorf("authenticate: %+v, %v; want ServerWritesBefore 0", ev, ok)
	}
	if n := l.ClientFlights(); n != 1 {
		t.Errorf("ClientFlights = %d, want 1", n)
	}
	want := []string{"in stream", "in authenticate", "out stream", "out features", "out success", "out features"}
	if got := names(l.Events()); !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
	if ua := l.UserAgent(); ua != (UserAgent{ID: testUA, Software: "pipebind-test", Device: "ci"}) {
		t.Errorf("UserAgent = %+v", ua)
	}
	if f, ok := l.StreamFrom(); f != "alice@localhost" || !ok {
		t.Errorf("StreamFrom = %q, %v", f, ok)
	}
	if l.Mechanism() != "PLAIN" || l.BoundJID() != jid || !l.DirectTLS() {
		t.Errorf("Mechanism %q, BoundJID %q, DirectTLS %v", l.Mechanism(), l.BoundJID(), l.DirectTLS())
	}

	// SM: one stanza after enable, then an ack request.
	c.write("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq><r xmlns='urn:xmpp:sm:3'/>")
	if r := c.expect(nsClient, "iq"); r.attr("type") != "result" || r.attr("id") != "p1" {
		t.Errorf("ping reply: %s", r.String())
	}
	if a := c.expect(nsSM, "a"); a.attr("h") != "1" {
		t.Errorf("ack: %s, want h=1", a.String())
	}
	// A second enable fails.
	c.write("<enable xmlns='urn:xmpp:sm:3'/>")
	if fl := c.expect(nsSM, "failed"); fl.child(nsStanzas, "unexpected-request") == nil {
		t.Errorf("second enable: %s", fl.String())
	}
	c.close()
	waitDone(t, l)
	if err := l.Err(); err != nil {
		t.Errorf("Err after polite close = %v", err)
	}
}

func TestSASL2SCRAM(t *testing.T) {
	for _, m := range []sasl.Mechanism{sasl.ScramSha256, sasl.ScramSha1} {
		t.Run(m.Name, func(t *testing.T) {
			s := newTestServer(t, Config{})
			neg := sasl.NewClient(m,
				sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte("alice"), []byte("secret"), nil }),
				sasl.RemoteMechanisms("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"))
			_, first, err := neg.Step(nil)
			if err != nil {
				t.Fatal(err)
			}
			c := dialTLS(t, s)
			c.write(streamHeader("alice@localhost") +
				"<authenticate xmlns='urn:xmpp:sasl:2' mechanism='" + m.Name + "'>" +
				"<initial-response>" + b64(string(first)) + "</initial-response>" +
				"<bind xmlns='urn:xmpp:bind:0'><tag>scram</tag></bind></authenticate>")
			c.header()
			c.expect(nsStream, "features")
			ch := c.expect(nsSASL2, "challenge")
			_, final, err := neg.Step(unb64(t, ch.Text))
			if err != nil {
				t.Fatalf("client final: %v", err)
			}
			c.write("<response xmlns='urn:xmpp:sasl:2'>" + b64(string(final)) + "</response>")
			succ := c.expect(nsSASL2, "success")
			ad := succ.child(nsSASL2, "additional-data")
			if ad == nil {
				t.Fatalf("no additional-data: %s", succ.String())
			}
			// The client checks the server signature (v=...).
			if _, _, err := neg.Step(unb64(t, ad.Text)); err != nil {
				t.Errorf("server signature: %v", err)
			}
			if succ.child(nsBind2, "bound") == nil {
				t.Errorf("no bound: %s", succ.String())
			}
			c.expect(nsStream, "features")

			l := onlyConn(t, s)
			if n := l.ClientFlights(); n != 2 {
				t.Errorf("ClientFlights = %d, want 2", n)
			}
			if ev, _ := l.Received("response"); ev.ServerWritesBefore != 3 {
				t.Errorf("response ServerWritesBefore = %d, want 3 (header, features, challenge)", ev.ServerWritesBefore)
			}
			if l.Mechanism() != m.Name {
				t.Errorf("Mechanism = %q", l.Mechanism())
			}
		})
	}
}

func TestClassicPipelinedRestart(t *testing.T) {
	s := newTestServer(t, Config{})
	c := dialTLS(t, s)
	// Another stream prefix, double quotes and line breaks: the server must
	// not care. Auth, restart header, bind and carbons in one write.
	hdr := "<?xml version=\"1.0\"?>\n<s:stream xmlns:s=\"http://etherx.jabber.org/streams\"\n  version=\"1.0\" xmlns=\"jabber:client\" to=\"localhost\">\n"
	c.write(hdr +
		"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + b64("\x00alice\x00secret") + "</auth>" +
		hdr +
		"<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>laptop</resource></bind></iq>\n" +
		"<iq type='set' id='carbons1'><enable xmlns='urn:xmpp:carbons:2'/></iq>")

	c.header()
	c.expect(nsStream, "features")
	c.expect(nsSASL, "success")
	c.restart()
	c.header()
	f := c.expect(nsStream, "features")
	if f.child(nsBind, "bind") == nil || f.child(nsSM, "sm") == nil || f.child(nsCSI, "csi") == nil {
		t.Errorf("post-auth features: %s", f.String())
	}
	res := c.expect(nsClient, "iq")
	if res.attr("id") != "bind1" || res.attr("type") != "result" {
		t.Fatalf("bind reply: %s", res.String())
	}
	if j := res.child(nsBind, "bind").child(nsBind, "jid"); j == nil || j.Text != "alice@localhost/laptop" {
		t.Errorf("bound JID: %s", res.String())
	}
	if r := c.expect(nsClient, "iq"); r.attr("id") != "carbons1" || r.attr("type") != "result" {
		t.Errorf("carbons reply: %s", r.String())
	}

	l := onlyConn(t, s)
	if n := l.ClientFlights(); n != 1 {
		t.Errorf("ClientFlights = %d, want 1", n)
	}
	for _, e := range l.Events() {
		if e.In && e.ServerWritesBefore != 0 {
			t.Errorf("%v arrived after %d server writes, want 0", e.Name.Local, e.ServerWritesBefore)
		}
	}
	want := []string{"in stream", "in auth", "in stream", "in iq", "in iq",
		"out stream", "out features", "out success", "out stream", "out features", "out iq", "out iq"}
	if got := names(l.Events()); !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
	if l.BoundJID() != "alice@localhost/laptop" {
		t.Errorf("BoundJID = %q", l.BoundJID())
	}
	c.closeWith("</s:stream>")
}

func TestSASL2FailureThenRetry(t *testing.T) {
	s := newTestServer(t, Config{Mechanisms: []string{"PLAIN"}})
	c := dialTLS(t, s)
	c.write(streamHeader("alice@localhost") + sasl2Plain("alice", "wrong", "x"))
	c.header()
	c.expect(nsStream, "features")
	fail := c.expect(nsSASL2, "failure")
	if fail.child(nsSASL, "not-authorized") == nil || fail.child(nsSASL2, "text") == nil {
		t.Errorf("failure: %s", fail.String())
	}

	c.write("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-256'><initial-response>=</initial-response></authenticate>")
	if fail := c.expect(nsSASL2, "failure"); fail.child(nsSASL, "invalid-mechanism") == nil {
		t.Errorf("not-offered mechanism: %s", fail.String())
	}
	c.write("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>" + b64("nonsense") + "</initial-response></authenticate>")
	if fail := c.expect(nsSASL2, "failure"); fail.child(nsSASL, "malformed-request") == nil {
		t.Errorf("malformed PLAIN: %s", fail.String())
	}

	// Prefixed elements and a wrapped base64 are the same request.
	c.write("<s2:authenticate xmlns:s2='urn:xmpp:sasl:2' mechanism=\"PLAIN\">\n  <s2:initial-response>\n    " +
		b64("\x00alice\x00secret") + "\n  </s2:initial-response>\n" +
		"  <b:bind xmlns:b='urn:xmpp:bind:0'><b:tag>retry</b:tag></b:bind>\n</s2:authenticate>")
	succ := c.expect(nsSASL2, "success")
	if j := succ.child(nsSASL2, "authorization-identifier").Text; !strings.HasPrefix(j, "alice@localhost/retry.") {
		t.Errorf("authorization-identifier = %q", j)
	}
	c.expect(nsStream, "features")
	c.close()
}

func TestRouting(t *testing.T) {
	s := newTestServer(t, Config{})
	a1, a1JID := login(t, s, "alice", "secret", "one")
	a2, a2JID := login(t, s, "alice", "secret", "two")
	bob, bobJID := login(t, s, "bob", "hunter2", "phone")

	// alice/one -> bob (bare): bob gets it stamped; alice/two a sent carbon.
	a1.write("<message to='bob@localhost' type='chat' id='m1' from='mallory@evil'><body>hi bob</body>" +
		"<stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='bob@localhost'/></message>")
	m := bob.expect(nsClient, "message")
	if m.attr("from") != a1JID || m.attr("id") != "m1" || m.child(nsClient, "body").Text != "hi bob" {
		t.Errorf("bob got %s", m.String())
	}
	var sids []*rawEl
	for i := range m.Children {
		if m.Children[i].XMLName == name(nsSID, "stanza-id") {
			sids = append(sids, &m.Children[i])
		}
	}
	if len(sids) != 1 || sids[0].attr("by") != "bob@localhost" || sids[0].attr("id") == "" || sids[0].attr("id") == "forged" {
		t.Errorf("stanza-id: %s", m.String())
	}
	sent := a2.expect(nsClient, "message")
	fwd := sent.child(nsCarbons, "sent").child(nsForward, "forwarded").child(nsClient, "message")
	if sent.attr("from") != "alice@localhost" || sent.attr("to") != a2JID || fwd == nil || fwd.attr("from") != a1JID {
		t.Errorf("sent carbon: %s", sent.String())
	}

	// bob -> alice/one (full): alice/two gets a received carbon.
	bob.write("<message to='" + a1JID + "' type='chat' id='m2'><body>hi alice</body></message>")
	if m := a1.expect(nsClient, "message"); m.attr("from") != bobJID || m.child(nsSID, "stanza-id").attr("by") != "alice@localhost" {
		t.Errorf("alice/one got %s", m.String())
	}
	rcv := a2.expect(nsClient, "message")
	if fwd := rcv.child(nsCarbons, "received").child(nsForward, "forwarded").child(nsClient, "message"); fwd == nil || fwd.attr("from") != bobJID {
		t.Errorf("received carbon: %s", rcv.String())
	}

	// IQ bob -> alice/one and the result back.
	bob.write("<iq type='get' id='q1' to='" + a1JID + "'><query xmlns='urn:example:q'/></iq>")
	q := a1.expect(nsClient, "iq")
	if q.attr("from") != bobJID || q.child("urn:example:q", "query") == nil {
		t.Errorf("alice got %s", q.String())
	}
	a1.write("<iq type='result' id='q1' to='" + bobJID + "'/>")
	if r := bob.expect(nsClient, "iq"); r.attr("type") != "result" || r.attr("id") != "q1" || r.attr("from") != a1JID {
		t.Errorf("bob got %s", r.String())
	}

	// Unknown IQ to the server; message to an unknown user.
	bob.write("<iq type='get' id='q2'><query xmlns='jabber:iq:version'/></iq>" +
		"<message to='nobody@localhost' id='m3' type='chat'><body>?</body></message>")
	if e := bob.expect(nsClient, "iq"); e.attr("type") != "error" || e.child(nsClient, "error").child(nsStanzas, "service-unavailable") == nil {
		t.Errorf("unknown IQ: %s", e.String())
	}
	if e := bob.expect(nsClient, "message"); e.attr("type") != "error" || e.attr("id") != "m3" {
		t.Errorf("message to unknown user: %s", e.String())
	}

	for _, c := range []*client{a1, a2, bob} {
		c.close()
	}
	if n := len(s.Conns()); n != 3 {
		t.Errorf("Conns = %d, want 3", n)
	}
}

func TestStartTLS(t *testing.T) {
	s := newTestServer(t, Config{})
	nc, err := net.DialTimeout("tcp", s.StartTLSAddr(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	plain := newClient(t, nc)
	plain.write(streamHeader("alice@localhost"))
	plain.header()
	f := plain.expect(nsStream, "features")
	if f.child(nsTLS, "starttls").child(nsTLS, "required") == nil || f.child(nsSASL, "mechanisms") != nil || f.child(nsSASL2, "authentication") != nil {
		t.Fatalf("pre-TLS features: %s", f.String())
	}
	plain.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	plain.expect(nsTLS, "proceed")

	tc := tls.Client(nc, s.TLSConfig())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, tc)
	c.write(streamHeader("alice@localhost") + sasl2Plain("alice", "secret", "tls"))
	c.header()
	c.expect(nsStream, "features")
	c.expect(nsSASL2, "success")
	c.expect(nsStream, "features")

	l := onlyConn(t, s)
	if l.DirectTLS() {
		t.Error("DirectTLS = true on the STARTTLS listener")
	}
	if st, ok := l.TLSState(); !ok || st.Version != tls.VersionTLS13 {
		t.Errorf("TLS state %v, version %x", ok, st.Version)
	}
	if got := names(l.Events()); len(got) == 0 || got[0] != "in stream" {
		t.Errorf("events start with %v, want the post-TLS header", got)
	}
	if ev, _ := l.Received("authenticate"); ev.ServerWritesBefore != 0 {
		t.Errorf("authenticate ServerWritesBefore = %d, want 0", ev.ServerWritesBefore)
	}
	if n := l.ClientFlights(); n != 1 {
		t.Errorf("ClientFlights = %d, want 1", n)
	}
	c.close()
	waitDone(t, l)
}

func TestSetConfig(t *testing.T) {
	s := newTestServer(t, Config{})
	s.SetConfig(func(c *Config) { c.NoSASL2 = true })
	s.AddUser("carol", "pw")
	c := dialTLS(t, s)
	c.write(streamHeader("carol@localhost"))
	c.header()
	f := c.expect(nsStream, "features")
	if f.child(nsSASL2, "authentication") != nil || f.child(nsSASL, "mechanisms") == nil {
		t.Errorf("classic-only features: %s", f.String())
	}
	// A cached-SASL2 client on a classic-only server: stream error.
	c.write(sasl2Plain("carol", "pw", "x"))
	e := c.expect(nsStream, "error")
	if e.child(nsStreamError, "unsupported-stanza-type") == nil {
		t.Errorf("stream error: %s", e.String())
	}
	if _, ok := c.tryNext(); ok {
		t.Error("stream not closed after the error")
	}

	s.SetConfig(func(c *Config) { c.NoSASL2, c.NoBind2 = false, true })
	c2 := dialTLS(t, s)
	c2.write(streamHeader("carol@localhost") + sasl2Plain("carol", "pw", "ignored"))
	c2.header()
	f = c2.expect(nsStream, "features")
	if inl := f.child(nsSASL2, "authentication").child(nsSASL2, "inline"); inl == nil || inl.child(nsBind2, "bind") != nil {
		t.Errorf("NoBind2 features: %s", f.String())
	}
	succ := c2.expect(nsSASL2, "success")
	if j := succ.child(nsSASL2, "authorization-identifier").Text; j != "carol@localhost" || succ.child(nsBind2, "bound") != nil {
		t.Errorf("success without Bind 2: %s", succ.String())
	}
	if f := c2.expect(nsStream, "features"); f.child(nsBind, "bind") == nil {
		t.Errorf("features should offer legacy bind: %s", f.String())
	}
	c2.close()

	s.SetConfig(func(c *Config) { c.NoDirectTLS = true })
	d := &tls.Dialer{Config: s.TLSConfig()}
	if nc, err := d.Dial("tcp", s.DirectTLSAddr()); err == nil {
		nc.Close()
		t.Error("TLS handshake succeeded on a disabled listener")
	}
}

func TestClose(t *testing.T) {
	s := NewServer(Config{Users: testUsers})
	c, _ := login(t, s, "alice", "secret", "x")
	l := s.Conns()[0]
	s.Close()
	waitDone(t, l)
	if tok, err := c.dec.Token(); err == nil {
		t.Errorf("read after Close returned %v, want an error", tok)
	}
	s.Close() // idempotent
}

func TestEventOrderHelpers(t *testing.T) {
	l := newConnLog(true, "test")
	l.arrived(10, time.Now())
	l.recordOut(streamName, false, time.Now())
	l.recordOut(name(nsStream, "features"), false, time.Now())
	// An element that arrived in the first chunk but was decoded after two
	// server writes is listed before them.
	l.recordIn(name(nsSASL2, "authenticate"), false, 5)
	want := []string{"in authenticate", "out stream", "out features"}
	if got := names(l.Events()); !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
}

// TestCloseLeavesNoGoroutines: every goroutine the server started has
// returned when Close returns, including connections stuck mid-handshake.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	s := NewServer(Config{Users: testUsers})
	c, _ := login(t, s, "alice", "secret", "x")
	idle, err := net.Dial("tcp", s.DirectTLSAddr()) // never handshakes
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	plain, err := net.Dial("tcp", s.StartTLSAddr()) // never sends a header
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	c.write("<message to='alice@localhost' type='chat'><body>self</body></message>")
	c.expect(nsClient, "message")
	s.Close()
	// Client-side helpers (the TLS dialer's) may still be exiting: look
	// for the server's own frames rather than counting.
	// A goroutine that has called wg.Done may still be returning (its
	// deferred Done runs before it exits), so allow it a moment.
	buf := make([]byte, 1<<20)
	frames := []string{"xmpptest.(*conn)", "xmpptest.(*Server)", "xmpptest.(*arrivalReader)", "xmpptest.(*latencyConn)"}
	var stacks, survivor string
	for deadline := time.Now().Add(time.Second); ; time.Sleep(10 * time.Millisecond) {
		stacks, survivor = string(buf[:runtime.Stack(buf, true)]), ""
		for _, frame := range frames {
			if strings.Contains(stacks, frame) {
				survivor = frame
			}
		}
		if survivor == "" || time.Now().After(deadline) {
			break
		}
	}
	if survivor != "" {
		t.Errorf("a server goroutine (%s) survived Close:\n%s", survivor, stacks)
	}
	for _, l := range s.Conns() {
		select {
		case <-l.Done():
		default:
			t.Error("a ConnLog is not done after Close")
		}
	}
}

func TestStreamErrors(t *testing.T) {
	big := "<message to='bob@localhost'><body>" + strings.Repeat("a", maxElementBytes) + "</body></message>"
	for _, tc := range []struct {
		name, header, input, cond string
	}{
		{"too large", streamHeader("alice@localhost"), big, "policy-violation"},
		{"stanza before auth", streamHeader("alice@localhost"), "<message to='bob@localhost'/>", "not-authorized"},
		{"not well-formed", streamHeader("alice@localhost"), "<a><b></a>", "not-well-formed"},
		{"text at stream level", streamHeader("alice@localhost"), "hello<x/>", "bad-format"},
		{"wrong stream namespace", "<stream:stream xmlns:stream='urn:wrong' xmlns='jabber:client' version='1.0'>", "", "invalid-namespace"},
		{"unknown host", "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client' to='example.org' version='1.0'>", "", "host-unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, Config{})
			c := dialTLS(t, s)
			_, _ = io.WriteString(c.nc, tc.header+tc.input) // the server may close before reading it all
			c.header()
			for {
				e := c.next()
				if e.XMLName == name(nsStream, "features") {
					continue
				}
				if e.XMLName != name(nsStream, "error") || e.child(nsStreamError, tc.cond) == nil {
					t.Fatalf("got %s, want stream error %s", e.String(), tc.cond)
				}
				break
			}
			if _, ok := c.tryNext(); ok {
				t.Error("stream continues after the error")
			}
			l := onlyConn(t, s)
			waitDone(t, l)
			if l.Err() == nil {
				t.Error("Err() = nil after a stream error")
			}
		})
	}
}
