package xmpptest

import (
	"slices"
	"strings"
	"testing"

	"mellium.im/sasl"
)

const nsBind2DraftT = "urn:xmpp:bind2:0"

// bind2DraftBurst is the whole classic login with the draft bind, for one
// Write: header, PLAIN <auth/>, restart header, <bind/>.
func bind2DraftBurst() string {
	return streamHeader("alice@localhost") +
		"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + b64("\x00alice\x00secret") + "</auth>" +
		streamHeader("alice@localhost") +
		"<bind xmlns='urn:xmpp:bind2:0'/>"
}

// bind2DraftLogin writes the burst and reads up to <bound/>, returning the
// pre- and post-auth features and <bound/>.
func bind2DraftLogin(t *testing.T, s *Server) (c *client, pre, post, bound rawEl) {
	t.Helper()
	c = dialTLS(t, s)
	c.write(bind2DraftBurst())
	c.header()
	pre = c.expect(nsStream, "features")
	c.expect(nsSASL, "success")
	c.restart()
	c.header()
	post = c.expect(nsStream, "features")
	bound = c.expect(nsBind2DraftT, "bound")
	return c, pre, post, bound
}

func TestBind2DraftPipelined(t *testing.T) {
	s := newTestServer(t, Config{Bind2Draft: true, AfterBound: "<message from='localhost' to='alice@localhost' id='after'><body>hi</body></message>"})
	first := s.InjectArchive("alice", "bob@localhost", "one", true)
	s.InjectArchive("alice", "bob@localhost", "two", true)
	s.InjectArchive("alice", "carol@localhost", "sent", false)
	last := s.InjectArchive("alice", "bob@localhost", "three", true)
	s.SetReadMarker("alice", "bob@localhost", first)

	c, pre, post, bound := bind2DraftLogin(t, s)
	if pre.child(nsBind2DraftT, "bind") == nil || pre.child(nsSASL, "mechanisms") == nil {
		t.Errorf("pre-auth features: %s", pre.String())
	}
	if post.child(nsBind2DraftT, "bind") == nil || post.child(nsBind, "bind") == nil || post.child(nsSM, "sm") == nil {
		t.Errorf("post-auth features: %s", post.String())
	}
	j := bound.child(nsBind2DraftT, "jid")
	if j == nil || !strings.HasPrefix(j.Text, "alice@localhost/") || len(j.Text) == len("alice@localhost/") {
		t.Fatalf("bound jid: %s", bound.String())
	}
	if l := bound.child(nsBind2DraftT, "latest-id"); l == nil || l.Text != last {
		t.Errorf("latest-id: %s, want %s", bound.String(), last)
	}
	us := bound.child(nsBind2DraftT, "unreads")
	if us == nil || len(us.Children) != 1 {
		t.Fatalf("unreads: %s", bound.String())
	}
	u := us.Children[0]
	if u.XMLName.Local != "unread" || u.attr("jid") != "bob@localhost" || u.attr("read-id") != first || u.attr("unread-count") != "2" {
		t.Errorf("unread: %s", u.String())
	}
	if m := c.expect(nsClient, "message"); m.attr("id") != "after" {
		t.Errorf("after bound: %s", m.String())
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
	want := []string{"in stream", "in auth", "in stream", "in bind",
		"out stream", "out features", "out success", "out stream", "out features", "out bound", "out message"}
	if got := names(l.Events()); !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
	if !l.Bind2Draft() || l.BoundJID() != j.Text {
		t.Errorf("Bind2Draft = %v, BoundJID = %q", l.Bind2Draft(), l.BoundJID())
	}

	// Bound: messages are routed, carbons are on, and routed messages are
	// archived for both parties.
	b, _ := login(t, s, "bob", "hunter2", "phone")
	b.write("<message to='alice@localhost' type='chat' id='m1'><body>hello</body></message>")
	m := c.expect(nsClient, "message")
	sid := m.child(nsSID, "stanza-id")
	if m.attr("id") != "m1" || sid == nil {
		t.Fatalf("routed: %s", m.String())
	}
	arch := s.Archive("alice")
	if got := arch[len(arch)-1]; got != (ArchivedMessage{StanzaID: sid.attr("id"), Peer: "bob@localhost", Incoming: true, Body: "hello"}) {
		t.Errorf("alice's archive tail = %+v", got)
	}
	if ba := s.Archive("bob"); len(ba) != 1 || ba[0].Incoming || ba[0].StanzaID != sid.attr("id") || ba[0].Peer != "alice@localhost" {
		t.Errorf("bob's archive = %+v", ba)
	}
	c.close()
	b.close()
}

func TestBind2DraftNoUnreads(t *testing.T) {
	s := newTestServer(t, Config{Bind2Draft: true, NoUnreads: true})
	s.InjectArchive("alice", "bob@localhost", "one", true)
	c, _, _, bound := bind2DraftLogin(t, s)
	if bound.child(nsBind2DraftT, "unreads") != nil || bound.child(nsBind2DraftT, "latest-id") == nil {
		t.Errorf("bound: %s", bound.String())
	}
	c.close()
}

func TestBind2DraftEmptyArchive(t *testing.T) {
	s := newTestServer(t, Config{Bind2Draft: true, Bind2DraftPostAuthOnly: true})
	c, pre, post, bound := bind2DraftLogin(t, s)
	if pre.child(nsBind2DraftT, "bind") != nil || post.child(nsBind2DraftT, "bind") == nil {
		t.Errorf("features: %s / %s", pre.String(), post.String())
	}
	if bound.child(nsBind2DraftT, "latest-id") != nil {
		t.Errorf("latest-id with an empty archive: %s", bound.String())
	}
	us := bound.child(nsBind2DraftT, "unreads")
	if us == nil || len(us.Children) != 0 {
		t.Errorf("unreads: %s", bound.String())
	}
	c.close()
}

func TestBind2DraftOff(t *testing.T) {
	s := newTestServer(t, Config{})
	c := dialTLS(t, s)
	c.write(bind2DraftBurst())
	c.header()
	if f := c.expect(nsStream, "features"); f.child(nsBind2DraftT, "bind") != nil {
		t.Errorf("advertised while off: %s", f.String())
	}
	c.expect(nsSASL, "success")
	c.restart()
	c.header()
	if f := c.expect(nsStream, "features"); f.child(nsBind2DraftT, "bind") != nil {
		t.Errorf("advertised while off: %s", f.String())
	}
	if e := c.expect(nsStream, "error"); e.child(nsStreamError, "unsupported-stanza-type") == nil {
		t.Errorf("error: %s", e.String())
	}
}

// Classic SCRAM: the restart header and the draft <bind/> ride behind the
// final <response/>.
func TestBind2DraftAfterSCRAM(t *testing.T) {
	s := newTestServer(t, Config{Bind2Draft: true})
	neg := sasl.NewClient(sasl.ScramSha256,
		sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte("alice"), []byte("secret"), nil }),
		sasl.RemoteMechanisms("SCRAM-SHA-256"))
	_, first, err := neg.Step(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := dialTLS(t, s)
	c.write(streamHeader("alice@localhost") +
		"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>" + b64(string(first)) + "</auth>")
	c.header()
	c.expect(nsStream, "features")
	ch := c.expect(nsSASL, "challenge")
	_, final, err := neg.Step(unb64(t, ch.Text))
	if err != nil {
		t.Fatal(err)
	}
	c.write("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + b64(string(final)) + "</response>" +
		streamHeader("alice@localhost") + "<bind xmlns='urn:xmpp:bind2:0'/>")
	succ := c.expect(nsSASL, "success")
	if _, _, err := neg.Step(unb64(t, succ.Text)); err != nil {
		t.Errorf("server signature: %v", err)
	}
	c.restart()
	c.header()
	c.expect(nsStream, "features")
	bound := c.expect(nsBind2DraftT, "bound")
	if j := bound.child(nsBind2DraftT, "jid"); j == nil || !strings.HasPrefix(j.Text, "alice@localhost/") {
		t.Errorf("bound: %s", bound.String())
	}
	l := onlyConn(t, s)
	if n := l.ClientFlights(); n != 2 {
		t.Errorf("ClientFlights = %d, want 2", n)
	}
	if ev, _ := l.Received("bind"); ev.ServerWritesBefore != 3 {
		t.Errorf("bind ServerWritesBefore = %d, want 3", ev.ServerWritesBefore)
	}
	c.close()
}
