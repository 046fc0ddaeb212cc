package prosodytest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	nsStream  = "http://etherx.jabber.org/streams"
	nsTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL2   = "urn:xmpp:sasl:2"
	nsBind2   = "urn:xmpp:bind:0"
	nsFAST    = "urn:xmpp:fast:0"
	ioTimeout = 5 * time.Second
)

// features is the part of <stream:features/> these tests look at.
type features struct {
	XMLName  xml.Name `xml:"http://etherx.jabber.org/streams features"`
	StartTLS *struct {
		Required *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-tls required"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
	Authentication *struct {
		Mechanisms []string `xml:"urn:xmpp:sasl:2 mechanism"`
		Inline     *struct {
			Bind *struct{} `xml:"urn:xmpp:bind:0 bind"`
			FAST *struct {
				Mechanisms []string `xml:"urn:xmpp:fast:0 mechanism"`
			} `xml:"urn:xmpp:fast:0 fast"`
		} `xml:"urn:xmpp:sasl:2 inline"`
	} `xml:"urn:xmpp:sasl:2 authentication"`
}

// stream is a raw client-side XMPP stream over conn; raw records every byte
// read, so failures (and -v runs) show the server's exact XML.
type stream struct {
	conn net.Conn
	raw  bytes.Buffer
	dec  *xml.Decoder
}

func newStream(t *testing.T, conn net.Conn) *stream {
	t.Helper()
	if err := conn.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		t.Fatal(err)
	}
	st := &stream{conn: conn}
	st.dec = xml.NewDecoder(io.TeeReader(conn, &st.raw))
	return st
}

func (st *stream) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(st.conn, s); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// open sends a stream header and returns the server's stream features, with
// the raw bytes of the <stream:features> element.
func (st *stream) open(t *testing.T, from string) (features, string) {
	t.Helper()
	hdr := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
		"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'"
	if from != "" {
		hdr += " from='" + from + "'"
	}
	st.send(t, hdr+">")
	start := st.next(t, nsStream, "stream")
	if v := attr(start, "", "version"); v != "1.0" {
		t.Fatalf("stream header version = %q", v)
	}
	st.next(t, nsStream, "features")
	var f features
	if err := st.dec.DecodeElement(&f, &xml.StartElement{Name: xml.Name{Space: nsStream, Local: "features"}}); err != nil {
		t.Fatalf("decode features: %v\nraw: %s", err, st.raw.String())
	}
	// The decoder reads ahead, so cut the element out of everything read.
	raw := st.raw.String()
	if i := strings.Index(raw, "<stream:features"); i >= 0 {
		raw = raw[i:]
	}
	if i := strings.Index(raw, "</stream:features>"); i >= 0 {
		raw = raw[:i+len("</stream:features>")]
	}
	return f, raw
}

// next reads tokens until a start element named {space}local.
func (st *stream) next(t *testing.T, space, local string) xml.StartElement {
	t.Helper()
	for {
		tok, err := st.dec.Token()
		if err != nil {
			t.Fatalf("reading for <%s>: %v\nraw so far: %s", local, err, st.raw.String())
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Space == space && se.Name.Local == local {
				return se
			}
			t.Fatalf("got <%s xmlns=%q>, want <%s xmlns=%q>\nraw so far: %s",
				se.Name.Local, se.Name.Space, local, space, st.raw.String())
		}
	}
}

func attr(se xml.StartElement, space, local string) string {
	for _, a := range se.Attr {
		if a.Name.Space == space && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

func dialTLS(t *testing.T, s *Server) *tls.Conn {
	t.Helper()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: ioTimeout}, Config: s.TLSConfig()}
	c, err := d.DialContext(t.Context(), "tcp", s.DirectTLSAddr)
	if err != nil {
		t.Fatalf("direct TLS: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*tls.Conn)
}

// plainAuth runs a SASL2 PLAIN authentication on a fresh Direct TLS stream
// and returns the name of the server's answer (success or failure).
func plainAuth(t *testing.T, s *Server, user, password string) string {
	t.Helper()
	st := newStream(t, dialTLS(t, s))
	st.open(t, user+"@"+s.Domain)
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	st.send(t, fmt.Sprintf("<authenticate xmlns='%s' mechanism='PLAIN'><initial-response>%s</initial-response>"+
		"<user-agent id='d4565fa7-4d72-4749-b3d3-740edbf87770'><software>prosodytest</software></user-agent>"+
		"</authenticate>", nsSASL2, ir))
	for {
		tok, err := st.dec.Token()
		if err != nil {
			t.Fatalf("reading SASL2 answer: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Space != nsSASL2 {
				t.Fatalf("unexpected <%s xmlns=%q>", se.Name.Local, se.Name.Space)
			}
			return se.Name.Local
		}
	}
}

func TestIntegrationProsody(t *testing.T) {
	begin := time.Now()
	s := StartT(t, Options{})
	t.Logf("Start took %v (C2S %s, Direct TLS %s, dir %s)", time.Since(begin), s.C2SAddr, s.DirectTLSAddr, s.Dir)

	t.Run("DirectTLSFeatures", func(t *testing.T) {
		conn := dialTLS(t, s)
		st := newStream(t, conn)
		f, raw := st.open(t, "alice@localhost")
		t.Logf("TLS %s; pre-auth features with from=:\n%s", tls.VersionName(conn.ConnectionState().Version), raw)
		a := f.Authentication
		if a == nil {
			t.Fatalf("no <authentication xmlns='%s'> in features:\n%s", nsSASL2, raw)
		}
		if !slices.Contains(a.Mechanisms, "PLAIN") {
			t.Errorf("SASL2 mechanisms %q lack PLAIN", a.Mechanisms)
		}
		if a.Inline == nil || a.Inline.Bind == nil {
			t.Errorf("no inline <bind xmlns='%s'>:\n%s", nsBind2, raw)
		}
		if a.Inline == nil || a.Inline.FAST == nil {
			t.Errorf("no inline <fast xmlns='%s'>:\n%s", nsFAST, raw)
		}
		if f.StartTLS != nil {
			t.Errorf("STARTTLS offered inside Direct TLS")
		}
	})

	t.Run("STARTTLS", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", s.C2SAddr, ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		st := newStream(t, conn)
		f, raw := st.open(t, "")
		if f.StartTLS == nil {
			t.Fatalf("no <starttls xmlns='%s'> offered:\n%s", nsTLS, raw)
		}
		if f.StartTLS.Required == nil {
			t.Errorf("STARTTLS not <required/> although c2s_require_encryption = true:\n%s", raw)
		}
		if f.Authentication != nil {
			t.Errorf("SASL2 offered before TLS:\n%s", raw)
		}
		st.send(t, "<starttls xmlns='"+nsTLS+"'/>")
		st.next(t, nsTLS, "proceed")
		tc := tls.Client(conn, s.TLSConfig())
		if err := tc.HandshakeContext(t.Context()); err != nil {
			t.Fatalf("TLS handshake after <proceed/>: %v", err)
		}
	})

	t.Run("Users", func(t *testing.T) {
		for user, pw := range s.Users {
			if got := plainAuth(t, s, user, pw); got != "success" {
				t.Errorf("SASL2 PLAIN as %s: <%s/>", user, got)
			}
		}
		if got := plainAuth(t, s, "alice", "wrong"); got != "failure" {
			t.Errorf("SASL2 PLAIN with a wrong password: <%s/>, want <failure/>", got)
		}
	})

	t.Run("Register", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := s.Register(ctx, "carol", "carol-pw-3"); err != nil {
			t.Fatal(err)
		}
		if got := plainAuth(t, s, "carol", "carol-pw-3"); got != "success" {
			t.Errorf("SASL2 PLAIN as a newly registered user: <%s/>", got)
		}
	})

	t.Run("Restart", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		conn := dialTLS(t, s)
		begin := time.Now()
		if err := s.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("Restart took %v", time.Since(begin))
		// The connection open before the restart has been closed.
		if err := conn.SetReadDeadline(time.Now().Add(ioTimeout)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, conn); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
			t.Errorf("reading a connection from before the restart: %v, want EOF", err)
		}
		// Same ports, same accounts, including one Register added.
		for user, pw := range map[string]string{"alice": s.Users["alice"], "carol": "carol-pw-3"} {
			if got := plainAuth(t, s, user, pw); got != "success" {
				t.Errorf("SASL2 PLAIN as %s after the restart: <%s/>", user, got)
			}
		}
	})

	if t.Failed() {
		return // keep the server for StartT's log dump
	}
	dir := s.Dir
	begin = time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("Close took %v", time.Since(begin))
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for _, addr := range []string{s.C2SAddr, s.DirectTLSAddr} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Close", addr)
		}
	}
	if !strings.Contains(s.Log(), "Hello and welcome to Prosody") {
		t.Errorf("Log after Close lacks the startup line:\n%s", s.Log())
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Dir %s not removed: %v", dir, err)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && strings.Contains(op.Err.Error(), "connection reset")
}

// TestIntegrationAccounts registers accounts the way Start does (account
// files written directly, with the password Prosody hashes at the first
// login, SASLprep included) and logs in as each, twice: the second login
// checks the keys Prosody derived.
func TestIntegrationAccounts(t *testing.T) {
	users := map[string]string{
		"dave":     "shared-pw",
		"erin":     "shared-pw",
		"frank.k":  "frank-pw",
		"gräfin":   "gräfin-pw",
		"heinrich": "pässwörd",
		"bot-0":    "bot-pw-0",
		"ida":      "I\u2163-pw", // Ⅳ, which SASLprep (NFKC) makes IV
	}
	s := StartT(t, Options{Users: users})
	for user, pw := range users {
		if s.Users[user] != pw {
			t.Errorf("Users[%q] = %q, want %q", user, s.Users[user], pw)
		}
		for i := range 2 {
			if got := plainAuth(t, s, user, pw); got != "success" {
				t.Errorf("SASL2 PLAIN as %s, login %d: <%s/>", user, i+1, got)
			}
		}
	}
	if got := plainAuth(t, s, "ida", "IIV-pw"); got != "success" {
		t.Errorf("SASL2 PLAIN as ida with the SASLprep form of her password: <%s/>", got)
	}
	if s2, err := Start(t.Context(), Options{Users: map[string]string{"Zoe": "zoe-pw"}}); err == nil {
		s2.Close()
		t.Error("Start registered a user name in upper case, which Prosody would never find")
	}
	if got := plainAuth(t, s, "dave", "frank-pw"); got != "failure" {
		t.Errorf("SASL2 PLAIN as dave with frank's password: <%s/>, want <failure/>", got)
	}
}

func TestStorageEncode(t *testing.T) {
	for in, want := range map[string]string{
		"localhost":   "localhost",
		"example.org": "example%2eorg",
		"bot-0":       "bot%2d0",
		"gräfin":      "gr%c3%a4fin",
	} {
		if got := storageEncode(in); got != want {
			t.Errorf("storageEncode(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestIntegrationStartErrors checks that a taken port is retried and that a
// prosody that dies at start is reported with its log.
func TestIntegrationStartErrors(t *testing.T) {
	t.Run("PortTaken", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		taken := l.Addr().(*net.TCPAddr).Port
		calls := 0
		pickPorts = func(n int) ([]int, error) {
			calls++
			ports, err := freePorts(n)
			if calls == 1 && err == nil {
				ports[0] = taken
			}
			return ports, err
		}
		defer func() { pickPorts = freePorts }()
		s := StartT(t, Options{Users: map[string]string{}})
		if calls != 2 {
			t.Errorf("ports picked %d times, want 2", calls)
		}
		if s.C2SAddr == l.Addr().String() {
			t.Errorf("C2SAddr %s is the taken port", s.C2SAddr)
		}
	})
	t.Run("BadConfig", func(t *testing.T) {
		_, err := Start(t.Context(), Options{ExtraConfig: "this is not lua"})
		if err == nil || !strings.Contains(err.Error(), "exited during start") {
			t.Fatalf("Start with a broken config: %v", err)
		}
		if strings.Contains(err.Error(), "alice-pw-1") {
			t.Errorf("error leaks a password: %v", err)
		}
		t.Logf("error: %v", err)
	})
}
