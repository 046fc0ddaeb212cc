package xmpptest

import (
	"io"
	"net"
	"testing"
	"time"
)

// pipeConn is an in-memory net.Conn with a half-close: the fuzz client
// closes its writer to signal the end of input and keeps draining output.
type pipeConn struct {
	r *io.PipeReader
	w *io.PipeWriter
}

func (p *pipeConn) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeConn) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *pipeConn) Close() error {
	_ = p.r.Close()
	return p.w.Close()
}
func (p *pipeConn) LocalAddr() net.Addr              { return pipeAddr{} }
func (p *pipeConn) RemoteAddr() net.Addr             { return pipeAddr{} }
func (p *pipeConn) SetDeadline(time.Time) error      { return nil }
func (p *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (p *pipeConn) SetWriteDeadline(time.Time) error { return nil }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// FuzzServerInput feeds arbitrary bytes after a valid stream header to a
// connection treated as already secured (no TLS, for speed). Not checking
// anything other than no panic and no hang: the connection must end once
// the input does.
func FuzzServerInput(f *testing.F) {
	seeds := []string{
		sasl2Plain("alice", "secret", "fuzz") + "<r xmlns='urn:xmpp:sm:3'/><message to='bob@localhost' type='chat'><body>x</body></message>",
		sasl2Plain("alice", "secret", "") + "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
		"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + b64("\x00alice\x00secret") + "</auth>" +
			streamHeader("alice@localhost") + "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>" +
			"<enable xmlns='urn:xmpp:sm:3'/><iq type='get' id='d' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
		"<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-256'><initial-response>" + b64("n,,n=alice,r=abcdefgh") + "</initial-response></authenticate>" +
			"<response xmlns='urn:xmpp:sasl:2'>" + b64("c=biws,r=abcdefgh,p=AAAA") + "</response>",
		"<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-1'/><response xmlns='urn:xmpp:sasl:2'>=</response><abort xmlns='urn:xmpp:sasl:2'/>",
		"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>" + b64("p=tls-exporter,,n=bob,r=x") + "</auth>",
		"<message><body>before auth</body></message>",
		"<!DOCTYPE x><a/>",
		"<a><b><c><d></c></b></a>",
		"</stream:stream>",
		"  \n\t ",
		"<x:y xmlns:x='urn:x' a='1' b=\"2\">&amp;&lt;&#x41;</x:y>",
		"\xff\xfe<",
		// FAST (fast.go) and resumption (sm.go).
		"<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'><initial-response>" + b64("alice\x000123456789abcdef0123456789abcdef") +
			"</initial-response><user-agent id='" + testUA + "'/><fast xmlns='urn:xmpp:fast:0' count='7' invalidate='true'/>" +
			"<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/></authenticate>" + sasl2Plain("alice", "secret", "x"),
		"<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-EXPR'><initial-response>" + b64("alice\x00x") +
			"</initial-response><user-agent id='u'/><fast xmlns='urn:xmpp:fast:0' count='x'/></authenticate>",
		withInline(sasl2Plain("alice", "secret", "r"), "<resume xmlns='urn:xmpp:sm:3' previd='abc' h='4294967295'/>"+requestToken("HT-SHA-256-NONE")) +
			"<a xmlns='urn:xmpp:sm:3' h='0'/><message to='alice@localhost' id='self'><body>x</body></message><a xmlns='urn:xmpp:sm:3' h='7'/>",
		sasl2Plain("alice", "secret", "r") + "<a xmlns='urn:xmpp:sm:3'/>",
		"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + b64("\x00alice\x00secret") + "</auth>" +
			streamHeader("alice@localhost") + "<resume xmlns='urn:xmpp:sm:3' previd='' h='-1'/><enable xmlns='urn:xmpp:sm:3' resume='1' max='0'/>",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	// One server for all inputs (cheap iterations); inputs run one at a time
	// per process, and each input's session ends before the next starts.
	s := NewUnstartedServer(Config{Users: testUsers, ScramIterations: 16})
	f.Cleanup(s.Close)

	f.Fuzz(func(t *testing.T, data []byte) {
		defer func() {
			// Keep memory flat over millions of inputs.
			s.mu.Lock()
			s.logs = nil
			s.mu.Unlock()
			s.ExpireSMSessions("") // sessions detached by the end of input
		}()
		sr, cw := io.Pipe()
		cr, sw := io.Pipe()
		l := s.serve(&pipeConn{r: sr, w: sw}, modeSecured)
		if l == nil {
			t.Fatal("server refused the connection")
		}
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			_, _ = io.Copy(io.Discard, cr)
		}()
		_, _ = cw.Write([]byte(streamHeader("alice@localhost")))
		_, _ = cw.Write(data)
		_ = cw.Close()
		timeout := time.After(testTimeout)
		select {
		case <-l.Done():
		case <-timeout:
			t.Fatal("connection did not end after its input")
		}
		select {
		case <-drained:
		case <-timeout:
			t.Fatal("server output did not end")
		}
	})
}
