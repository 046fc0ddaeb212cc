package xmpptest

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// This file is a raw test client: TLS plus encoding/xml, independent of the
// server's own element code, so the tests check the wire and not the
// implementation against itself.

const testTimeout = 10 * time.Second

// rawEl is a decoded element as the client sees it.
type rawEl struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []rawEl    `xml:",any"`
	Text     string     `xml:",chardata"`
}

func (e *rawEl) attr(local string) string {
	for _, a := range e.Attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

func (e *rawEl) child(space, local string) *rawEl {
	if e == nil {
		return nil
	}
	for i := range e.Children {
		if e.Children[i].XMLName.Space == space && e.Children[i].XMLName.Local == local {
			return &e.Children[i]
		}
	}
	return nil
}

func (e *rawEl) String() string {
	b, _ := xml.Marshal(e)
	return string(b)
}

type client struct {
	t   testing.TB
	nc  net.Conn
	br  *bufio.Reader
	dec *xml.Decoder
}

// newClient wraps a connection; every read and write must finish within
// testTimeout.
func newClient(t testing.TB, nc net.Conn) *client {
	t.Helper()
	_ = nc.SetDeadline(time.Now().Add(testTimeout))
	c := &client{t: t, nc: nc, br: bufio.NewReader(nc)}
	c.restart()
	t.Cleanup(func() { _ = nc.Close() })
	return c
}

func dialTLS(t testing.TB, s *Server) *client {
	t.Helper()
	d := &tls.Dialer{Config: s.TLSConfig(), NetDialer: &net.Dialer{Timeout: testTimeout}}
	nc, err := d.Dial("tcp", s.DirectTLSAddr())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return newClient(t, nc)
}

// restart starts a new decoder on the same buffered reader, as after a
// stream restart.
func (c *client) restart() { c.dec = xml.NewDecoder(c.br) }

func (c *client) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// header reads the server's stream header.
func (c *client) header() xml.StartElement {
	c.t.Helper()
	for {
		tok, err := c.dec.Token()
		if err != nil {
			c.t.Fatalf("reading stream header: %v", err)
		}
		if st, ok := tok.(xml.StartElement); ok {
			if st.Name != streamName {
				c.t.Fatalf("got %v, want stream header", st.Name)
			}
			return st.Copy()
		}
	}
}

// next reads the next top-level element; it fails the test at the end of
// the stream.
func (c *client) next() rawEl {
	c.t.Helper()
	e, ok := c.tryNext()
	if !ok {
		c.t.Fatal("stream ended")
	}
	return e
}

// tryNext reads the next top-level element, or reports the closing tag.
func (c *client) tryNext() (rawEl, bool) {
	c.t.Helper()
	for {
		tok, err := c.dec.Token()
		if err != nil {
			c.t.Fatalf("reading: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var e rawEl
			if err := c.dec.DecodeElement(&e, &t); err != nil {
				c.t.Fatalf("decoding %v: %v", t.Name, err)
			}
			return e, true
		case xml.EndElement:
			return rawEl{}, false
		}
	}
}

// expect reads the next element and checks its name.
func (c *client) expect(space, local string) rawEl {
	c.t.Helper()
	e := c.next()
	if e.XMLName.Space != space || e.XMLName.Local != local {
		c.t.Fatalf("got %s, want {%s}%s", e.String(), space, local)
	}
	return e
}

// close ends the stream politely and waits for the server's closing tag.
func (c *client) close() {
	c.t.Helper()
	c.closeWith("</stream:stream>")
}

// closeWith ends the stream with the given closing tag (its prefix must
// match the header's).
func (c *client) closeWith(tag string) {
	c.t.Helper()
	c.write(tag)
	if e, ok := c.tryNext(); ok {
		c.t.Fatalf("got %s, want </stream:stream>", e.String())
	}
}

func waitDone(t testing.TB, l *ConnLog) {
	t.Helper()
	select {
	case <-l.Done():
	case <-time.After(testTimeout):
		t.Fatal("connection did not end")
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func unb64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		t.Fatalf("base64 %q: %v", s, err)
	}
	return b
}

const testUA = "d4565fa7-4d72-4749-b3d3-740edbf87770"

func streamHeader(from string) string {
	return "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
		"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' from='" + from +
		"' version='1.0' xml:lang='en'>"
}

// sasl2Plain is a SASL2 PLAIN <authenticate/> with inline bind (carbons,
// SM with resumption, CSI inactive) when tag is not empty.
func sasl2Plain(user, pw, tag string) string {
	s := "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>" +
		b64("\x00"+user+"\x00"+pw) + "</initial-response>" +
		"<user-agent id='" + testUA + "'><software>pipebind-test</software><device>ci</device></user-agent>"
	if tag != "" {
		s += "<bind xmlns='urn:xmpp:bind:0'><tag>" + tag + "</tag>" +
			"<enable xmlns='urn:xmpp:carbons:2'/><enable xmlns='urn:xmpp:sm:3' resume='true'/>" +
			"<inactive xmlns='urn:xmpp:csi:0'/></bind>"
	}
	return s + "</authenticate>"
}

// login pipelines a SASL2 PLAIN login with inline bind and returns the
// client and its full JID.
func login(t testing.TB, s *Server, user, pw, tag string) (*client, string) {
	t.Helper()
	c := dialTLS(t, s)
	c.write(streamHeader(user+"@localhost") + sasl2Plain(user, pw, tag))
	c.header()
	c.expect(nsStream, "features")
	succ := c.expect(nsSASL2, "success")
	c.expect(nsStream, "features")
	return c, succ.child(nsSASL2, "authorization-identifier").Text
}
