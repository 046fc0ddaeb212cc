package wire

import (
	"encoding/xml"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

// header is a server's stream header, as the login reads it.
const header = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' from='example.org' id='x'>`

// decodeAll decodes everything c yields and returns the tokens (copied) and
// the error that ended it.
func decodeAll(c *Conn) ([]xml.Token, error) { return rawTokens(xml.NewDecoder(c)) }

func readerConn(s string) *Conn { return New(readConn{strings.NewReader(s)}, Options{}) }

// TestStreamHeader: the stream header opens the stream; its children are
// top-level elements, each bounded on its own, and stanzas count only after
// EndLogin.
func TestStreamHeader(t *testing.T) {
	nested := "<iq type='get' id='q'>" + strings.Repeat("<a>", DefaultMaxDepth-2) + strings.Repeat("</a>", DefaultMaxDepth-2) + "</iq>"
	in := header + "<stream:features/>" + strings.Repeat(nested, 3) + "</stream:stream>"
	c := readerConn(in)
	if _, err := decodeAll(c); err != io.EOF {
		t.Fatalf("a stream of stanzas each under the depth limit: %v, want io.EOF", err)
	}
	if got := c.StanzasIn(); got != 0 {
		t.Errorf("StanzasIn = %d during the login, want 0", got)
	}

	c = readerConn(header + "<stream:features/>")
	d := xml.NewDecoder(c)
	for i := 0; i < 3; i++ { // the declaration, the header, the features
		if _, err := d.Token(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Token(); err != nil { // </stream:features>
		t.Fatal(err)
	}
	c.EndLogin()
	c.Conn = readConn{strings.NewReader("<message/><presence/><iq type='result' id='1'/><r xmlns='urn:xmpp:sm:3'/>")}
	if _, err := d.Token(); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := d.Token(); err != nil {
			break
		}
	}
	if got := c.StanzasIn(); got != 3 {
		t.Errorf("StanzasIn = %d after message, presence, iq and <r/>, want 3", got)
	}
}

// TestSpaceBetweenElements: white space between top-level elements never
// reaches the decoder (so a flood of it is not buffered anywhere), and
// other text there is ErrText.
func TestSpaceBetweenElements(t *testing.T) {
	flood := strings.Repeat(" \n\t\r", 1<<20) // 4 MiB
	c := readerConn(header + flood + "<iq type='result' id='1'/>" + flood + "<message/>")
	c.EndLogin() // the login's cap would stop the flood first
	toks, err := decodeAll(c)
	if err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
	for _, tok := range toks {
		if cd, ok := tok.(xml.CharData); ok {
			t.Fatalf("the decoder saw %d bytes of text between elements", len(cd))
		}
	}
	inside := readerConn(header + "<message><body> a </body></message>")
	toks, _ = decodeAll(inside)
	if !slicesContainText(toks, " a ") {
		t.Errorf("text inside a stanza was lost: %v", toks)
	}

	for _, in := range []string{
		header + "x",
		header + "<message/>" + strings.Repeat("y", 100) + "<message/>",
		"garbage" + header,
	} {
		if _, err := decodeAll(readerConn(in)); !errors.Is(err, ErrText) || !errors.Is(err, ErrProtocol) {
			t.Errorf("%.40q...: %v, want ErrText (ErrProtocol)", in, err)
		}
	}
}

func slicesContainText(toks []xml.Token, s string) bool {
	for _, tok := range toks {
		if cd, ok := tok.(xml.CharData); ok && string(cd) == s {
			return true
		}
	}
	return false
}

// TestRestrictedXML: a DTD before or inside the stream is refused (RFC 6120
// §11.1); comments and CDATA inside stanzas are read.
func TestRestrictedXML(t *testing.T) {
	for _, in := range []string{
		`<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY x "y">]>` + header,
		header + `<!DOCTYPE x>`,
		header + `<message><!ENTITY a "b"></message>`,
	} {
		if _, err := decodeAll(readerConn(in)); !errors.Is(err, ErrRestrictedXML) {
			t.Errorf("%.60q: %v, want ErrRestrictedXML", in, err)
		}
	}
	ok := header + `<!-- hi --><message><!-- a --><body><![CDATA[<b>]]></body></message>`
	if _, err := decodeAll(readerConn(ok)); err != io.EOF {
		t.Errorf("comments and CDATA: %v, want io.EOF", err)
	}
}

// TestRefusalStreamError: input that breaks the rules ends the stream with
// the stream error RFC 6120 names for it, sent once.
func TestRefusalStreamError(t *testing.T) {
	for _, tc := range []struct {
		in, cond string
		want     error
	}{
		{header + `<!DOCTYPE x [<!ENTITY a "b">]>`, "restricted-xml", ErrRestrictedXML},
		{header + `<message/>text`, "bad-format", ErrText},
		{header + strings.Repeat("<a>", DefaultMaxDepth+1), "policy-violation", ErrTooLarge},
	} {
		client, server := net.Pipe()
		go func() {
			_, _ = io.WriteString(server, tc.in)
		}()
		got := make(chan string, 1)
		go func() {
			b, _ := io.ReadAll(server)
			got <- string(b)
		}()
		c := New(client, Options{})
		_, err := decodeAll(c)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.cond, err, tc.want)
		}
		client.Close()
		want := "<stream:error><" + tc.cond + " xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"
		if s := <-got; s != want {
			t.Errorf("the client wrote %q, want %q", s, want)
		}
		server.Close()
	}
}

// TestLimitsDuringLogin: the depth and size limits hold from the first
// byte, not only after the login.
func TestLimitsDuringLogin(t *testing.T) {
	deep := header + "<stream:features>" + strings.Repeat("<x>", 10*DefaultMaxDepth)
	if _, err := decodeAll(readerConn(deep)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("deep features: %v, want ErrTooLarge", err)
	}
	big := header + "<stream:features><x a='" + strings.Repeat("z", DefaultMaxBytes) + "'/></stream:features>"
	c := New(readConn{strings.NewReader(big)}, Options{MaxLoginBytes: 4 * DefaultMaxBytes})
	if _, err := decodeAll(c); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("big features: %v, want ErrTooLarge", err)
	}
}

// TestDropStrayFeatures: one <stream:features> among the next elements is
// dropped; everything else reaches the decoder and counts.
func TestDropStrayFeatures(t *testing.T) {
	c := readerConn("<message id='1'/> <stream:features><sm xmlns='urn:xmpp:sm:3'/></stream:features><stream:featuresx/><message id='2'/>")
	c.EndLogin()
	c.DropStrayFeatures()
	toks, err := decodeAll(c)
	if err != io.EOF {
		t.Fatal(err)
	}
	var names []string
	for _, tok := range toks {
		if s, ok := tok.(xml.StartElement); ok {
			names = append(names, s.Name.Local)
		}
	}
	if got := strings.Join(names, " "); got != "message featuresx message" {
		t.Errorf("the decoder saw %q", got)
	}
	if got := c.StanzasIn(); got != 2 {
		t.Errorf("StanzasIn = %d, want 2", got)
	}
}

// TestStanzasOut: after EndLogin every written stanza reaches OnStanzaOut,
// whole and in order, however the writes cut it; nonzas do not.
func TestStanzasOut(t *testing.T) {
	var got []string
	var kinds []Kind
	c := New(discardConn{}, Options{OnStanzaOut: func(raw []byte, k Kind) {
		got, kinds = append(got, string(raw)), append(kinds, k)
	}})
	if _, err := c.Write([]byte("<iq type='set' id='login'/>")); err != nil {
		t.Fatal(err)
	}
	c.EndLogin()
	out := "<message to='a@b'><body>x/>y</body></message><r xmlns='urn:xmpp:sm:3'/><presence/><c:iq xmlns:c='jabber:client' id='i'/>"
	for _, part := range []string{out[:3], out[3:40], out[40:]} {
		if _, err := c.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"<message to='a@b'><body>x/>y</body></message>", "<presence/>", "<c:iq xmlns:c='jabber:client' id='i'/>"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("captured %q, want %q", got, want)
	}
	if kinds[0] != KindMessage || kinds[1] != KindPresence || kinds[2] != KindIQ {
		t.Errorf("kinds %v", kinds)
	}
	if st, msgs := c.StanzasOut(); st != 3 || msgs != 1 {
		t.Errorf("StanzasOut = %d, %d; want 3, 1", st, msgs)
	}
}

// TestMetering: a write followed by an answer is a round trip; a last write
// nobody answered is not; after EndLogin nothing is metered.
func TestMetering(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	c := New(client, Options{})
	go func() {
		buf := make([]byte, 64)
		for _, answer := range []string{header, "<stream:features/>"} {
			if _, err := server.Read(buf); err != nil {
				return
			}
			if _, err := server.Write([]byte(answer)); err != nil {
				return
			}
		}
		_, _ = io.Copy(io.Discard, server)
	}()
	buf := make([]byte, 512)
	for _, q := range []string{"<stream:stream>", "<auth/>"} {
		if _, err := c.Write([]byte(q)); err != nil {
			t.Fatal(err)
		}
		if _, err := (netReader{c}).Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Write([]byte("<presence/>")); err != nil {
		t.Fatal(err)
	}
	m := c.EndLogin()
	if m.RoundTrips() != 2 || m.BytesOut != int64(len("<stream:stream><auth/><presence/>")) || m.BytesIn != int64(len(header+"<stream:features/>")) {
		t.Errorf("metering %+v: want 2 round trips and every byte", m)
	}
	if _, err := c.Write([]byte("<message/>")); err != nil {
		t.Fatal(err)
	}
	if got := c.Metering(); got.BytesOut != 0 {
		t.Errorf("metered after EndLogin: %+v", got)
	}
}

// discardConn is a net.Conn whose writes succeed.
type discardConn struct{ readConn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }

// TestTrace: the trace sees each top-level unit once, in each direction,
// from the first byte (the login's too) to the stream's end; white space
// between units is not traced.
func TestTrace(t *testing.T) {
	var in, out []string
	c := New(readConn{strings.NewReader(header + "\n<stream:features/> <message id='t'/><iq id='i'/></stream:stream>")}, Options{
		Trace: func(inbound bool, el []byte) {
			if inbound {
				in = append(in, string(el))
			} else {
				out = append(out, string(el))
			}
		},
	})
	c.Conn = discardConn{c.Conn.(readConn)}
	c.SetInboundTap(func(raw []byte) bool { return strings.Contains(string(raw), "'t'") })
	if _, err := c.Write([]byte("<?xml version='1.0'?><stream:stream to='example.org'>")); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(c)
	for range 4 { // declaration, header, features start and end
		if _, err := d.Token(); err != nil {
			t.Fatal(err)
		}
	}
	c.EndLogin()
	if _, err := c.Write([]byte(" <presence/>")); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := d.Token(); err != nil {
			break
		}
	}
	wantIn := []string{"<?xml version='1.0'?>", header[len("<?xml version='1.0'?>"):], "<stream:features/>", "<message id='t'/>", "<iq id='i'/>", "</stream:stream>"}
	wantOut := []string{"<?xml version='1.0'?>", "<stream:stream to='example.org'>", "<presence/>"}
	if strings.Join(in, "|") != strings.Join(wantIn, "|") {
		t.Errorf("traced in %q\nwant %q", in, wantIn)
	}
	if strings.Join(out, "|") != strings.Join(wantOut, "|") {
		t.Errorf("traced out %q\nwant %q", out, wantOut)
	}
}
