package login_test

// A deliberately minimal XEP-0386 v0.3.0 server, written from the spec text
// alone and sharing no code with internal/xmpptest: if pipebind's
// bind2-draft path works against both, it is not tuned to one server.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/features"
	"github.com/pipebind/pipebind/login"
)

type miniServer struct {
	ln       net.Listener
	tls      *tls.Config
	roots    *x509.CertPool
	unreads  string // the <unreads> element to send, or "" to elide it
	latestID string
	postOnly bool // advertise bind2:0 only after authentication

	mu      sync.Mutex
	flights []int // per connection, in accept order: client flights seen
	wg      sync.WaitGroup
}

func newMiniServer(t *testing.T) *miniServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "draft.test"},
		DNSNames: []string{"draft.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &miniServer{ln: ln, roots: roots, tls: &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		// One record per client write, so a burst arrives in one read.
		DynamicRecordSizingDisabled: true,
	}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			idx := len(s.flights)
			s.flights = append(s.flights, 0)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				fc := &flightConn{Conn: c}
				err := s.serve(tls.Server(fc, s.tls))
				if err != nil && err != io.EOF {
					t.Logf("mini server: %v", err)
				}
				s.mu.Lock()
				s.flights[idx] = fc.flights
				s.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

// flightConn counts client flights: reads that return data after the server
// wrote (the first read counts too). Counted below TLS, so the handshake's
// own flights are included; the test subtracts them.
type flightConn struct {
	net.Conn
	wrote   bool
	flights int
}

func (c *flightConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && (c.wrote || c.flights == 0) {
		c.flights++
		c.wrote = false
	}
	return n, err
}

func (c *flightConn) Write(p []byte) (int, error) {
	c.wrote = true
	return c.Conn.Write(p)
}

const miniHeader = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='draft.test' id='%d' version='1.0'>`

// serve follows XEP-0386 v0.3.0: stream header, features advertising
// bind2:0, SASL PLAIN, restart, and <bind/> answered with <bound>. It reads
// through one bufio.Reader so whatever the client pipelined survives the
// restart.
func (s *miniServer) serve(c *tls.Conn) error {
	br := bufio.NewReader(c)
	d := xml.NewDecoder(br)
	if err := expectHeader(d); err != nil {
		return err
	}
	bind2 := "<bind xmlns='urn:xmpp:bind2:0'/>"
	pre := bind2
	if s.postOnly {
		pre = ""
	}
	fmt.Fprintf(c, miniHeader+"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>%s</stream:features>", 1, pre)
	var auth struct {
		Mechanism string `xml:"mechanism,attr"`
		Data      string `xml:",chardata"`
	}
	if err := nextElement(d, "auth", &auth); err != nil {
		return err
	}
	payload, _ := base64.StdEncoding.DecodeString(auth.Data)
	if auth.Mechanism != "PLAIN" || string(payload) != "\x00alice\x00pw" {
		fmt.Fprint(c, "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure></stream:stream>")
		return nil
	}
	fmt.Fprint(c, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
	d = xml.NewDecoder(br) // the restart: a new parser on the same bytes
	if err := expectHeader(d); err != nil {
		return err
	}
	fmt.Fprintf(c, miniHeader+"<stream:features>%s<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>", 2, bind2)
	if err := nextElement(d, "bind", nil); err != nil {
		return err
	}
	latest := ""
	if s.latestID != "" {
		latest = "<latest-id>" + s.latestID + "</latest-id>"
	}
	// <bound> and a message in ONE write: the client must not lose the
	// message that arrives in the same record.
	fmt.Fprintf(c, "<bound xmlns='urn:xmpp:bind2:0'><jid>alice@draft.test/r4nd0m</jid>%s%s</bound>"+
		"<message from='bob@draft.test/x' to='alice@draft.test/r4nd0m' type='chat' id='m1'><body>right behind bound</body></message>", latest, s.unreads)
	for {
		if _, err := d.Token(); err != nil {
			return err
		}
	}
}

func expectHeader(d *xml.Decoder) error {
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "stream" {
				return fmt.Errorf("expected a stream header, got %s", se.Name.Local)
			}
			return nil
		}
	}
}

func nextElement(d *xml.Decoder, local string, v any) error {
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != local {
				return fmt.Errorf("expected <%s>, got <%s>", local, se.Name.Local)
			}
			if v == nil {
				return d.Skip()
			}
			return d.DecodeElement(v, &se)
		}
	}
}

func (s *miniServer) dial(t *testing.T, ctx context.Context) *tls.Conn {
	t.Helper()
	var d tls.Dialer
	d.Config = &tls.Config{RootCAs: s.roots, ServerName: "draft.test"}
	c, err := d.DialContext(ctx, "tcp", s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*tls.Conn)
}

func TestDraftAgainstMinimalServer(t *testing.T) {
	for _, tc := range []struct {
		name     string
		unreads  string
		latestID string
		postOnly bool
		want     string // JSON of Draft.Unreads
	}{
		{"unreads", `<unreads><unread jid='bob@draft.test' read-id='m0' unread-count='2'/></unreads>`, "m9", false, `[{"jid":"bob@draft.test","read_id":"m0","count":2}]`},
		{"no unreads tracked", "", "m9", false, `null`},
		{"zero unreads", "<unreads/>", "", false, `[]`},
		{"advertised after auth only", "<unreads/>", "m1", true, `[]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newMiniServer(t)
			srv.unreads, srv.latestID, srv.postOnly = tc.unreads, tc.latestID, tc.postOnly
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var cached *features.Features
			for i, want := range []struct {
				rt   int
				path login.Path
			}{{2, login.PathBind2Draft}, {1, login.PathBind2Draft}} {
				if i == 0 && tc.postOnly {
					// Cold against a server that shows bind2:0 only after the
					// restart: features, auth, restart, then the draft bind
					// (still one less than classic's bind + carbons).
					want.rt = 4
				}
				conn := srv.dial(t, ctx)
				st, err := login.Negotiate(ctx, conn, login.Config{
					JID: jid.MustParse("alice@draft.test"), Password: "pw", Features: cached, Mechanisms: []string{"PLAIN"},
				})
				if err != nil {
					t.Fatalf("login %d: %v", i, err)
				}
				sess, res := st.Session, &st.Result
				if res.Path != want.path || res.RoundTrips != want.rt || res.JID.String() != "alice@draft.test/r4nd0m" || res.Draft == nil {
					t.Fatalf("login %d: path %s, %d round trips, jid %s, draft %v; want %s in %d", i, res.Path, res.RoundTrips, res.JID, res.Draft, want.path, want.rt)
				}
				if res.Draft.LatestID != tc.latestID {
					t.Errorf("latest-id %q, want %q", res.Draft.LatestID, tc.latestID)
				}
				got, _ := json.Marshal(res.Draft.Unreads)
				if string(got) != tc.want {
					t.Errorf("unreads %s, want %s", got, tc.want)
				}
				// The message written in the same record as </bound> reaches
				// the application through the handed-over session.
				msgs := make(chan string, 1)
				go sess.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
					if start.Name.Local == "message" && start.Name.Space == "jabber:client" {
						var m struct {
							Body string `xml:"body"`
						}
						if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r)).Decode(&m); err == nil {
							msgs <- m.Body
						}
					}
					return nil
				}))
				select {
				case body := <-msgs:
					if body != "right behind bound" {
						t.Errorf("message body %q", body)
					}
				case <-ctx.Done():
					t.Fatalf("login %d: the message behind <bound> was lost", i)
				}
				conn.Close()
				f := res.Features
				if cs := conn.ConnectionState(); f.TLSGroup == 0 || f.TLSGroup != uint16(cs.CurveID) {
					t.Errorf("login %d: features record TLS group %d, the handshake negotiated %v", i, f.TLSGroup, cs.CurveID)
				}
				cached = &f
			}
			srv.ln.Close()
			srv.wg.Wait()
			// Server-side flights include the TLS 1.3 handshake's client
			// flights (ClientHello, Finished): 2 more than the login's.
			srv.mu.Lock()
			defer srv.mu.Unlock()
			wantCold := 2
			if tc.postOnly {
				wantCold = 4
			}
			if len(srv.flights) != 2 || srv.flights[0]-2 != wantCold || srv.flights[1]-2 != 1 {
				t.Errorf("server saw client flights %v (handshake included), want [%d 3]", srv.flights, wantCold+2)
			}
		})
	}
}
