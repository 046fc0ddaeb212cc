package login

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pipebind/pipebind/features"
)

// prosodyFeatures is what Prosody 13.0.1 sends before authentication over
// Direct TLS when the stream header has from= (captured by prosodytest).
const prosodyFeatures = `<stream:features xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client'><authentication xmlns='urn:xmpp:sasl:2'><mechanism>SCRAM-SHA-1</mechanism><mechanism>SCRAM-SHA-1-PLUS</mechanism><mechanism>OAUTHBEARER</mechanism><mechanism>PLAIN</mechanism><inline><bind xmlns='urn:xmpp:bind:0'><inline><feature var='urn:xmpp:carbons:2'/><feature var='urn:xmpp:csi:0'/><feature var='urn:xmpp:sm:3'/></inline></bind><fast xmlns='urn:xmpp:fast:0'><mechanism>HT-SHA-256-EXPR</mechanism><mechanism>HT-SHA-256-NONE</mechanism></fast><sm xmlns='urn:xmpp:sm:3'/></inline></authentication><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism><mechanism>SCRAM-SHA-1-PLUS</mechanism><mechanism>OAUTHBEARER</mechanism><mechanism>PLAIN</mechanism></mechanisms><sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-exporter'/></sasl-channel-binding><limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>262144</max-bytes><idle-seconds>840</idle-seconds></limits></stream:features>`

// draftFeatures is the example of XEP-0386 v0.3.0.
const draftFeatures = `<stream:features xmlns:stream='http://etherx.jabber.org/streams'>
  <bind xmlns='urn:xmpp:bind2:0'/>
  <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>
  <sm xmlns='urn:xmpp:sm:3'/>
</stream:features>`

func TestParseFeatures(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want features.Features
	}{
		{"prosody", prosodyFeatures, features.Features{
			Version:         features.Version,
			SASLMechanisms:  []string{"OAUTHBEARER", "PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"},
			ChannelBindings: []string{"tls-exporter"},
			SASL2:           true,
			SASL2Mechanisms: []string{"OAUTHBEARER", "PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"},
			Bind2:           true,
			Bind2Inline:     []string{"urn:xmpp:carbons:2", "urn:xmpp:csi:0", "urn:xmpp:sm:3"},
			SMInline:        true,
			FASTMechanisms:  []string{"HT-SHA-256-EXPR", "HT-SHA-256-NONE"},
		}},
		{"draft", draftFeatures, features.Features{
			Version: features.Version, Bind2Draft: true, ClassicBind: true, SM: true,
		}},
		{"starttls", `<stream:features xmlns:stream='http://etherx.jabber.org/streams'><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>`,
			features.Features{Version: features.Version, StartTLS: true}},
		{"duplicates and blanks", `<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism> PLAIN </mechanism><mechanism>PLAIN</mechanism><mechanism></mechanism></mechanisms></stream:features>`,
			features.Features{Version: features.Version, SASLMechanisms: []string{"PLAIN"}}},
		{"wrong namespace is not a feature", `<stream:features xmlns:stream='http://etherx.jabber.org/streams'><authentication xmlns='urn:xmpp:sasl:1'><mechanism>PLAIN</mechanism></authentication></stream:features>`,
			features.Features{Version: features.Version}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFeatures([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseFeaturesErrors(t *testing.T) {
	for _, in := range []string{
		``,
		`<features/>`,
		`<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms`,
		`<stream:features xmlns:stream='http://etherx.jabber.org/streams'></wrong>`,
	} {
		if _, err := ParseFeatures([]byte(in)); !errors.Is(err, ErrProtocol) {
			t.Errorf("ParseFeatures(%q) = %v, want ErrProtocol", in, err)
		}
	}
	// A flood of mechanisms is bounded.
	flood := `<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` +
		strings.Repeat("<mechanism>X</mechanism>", 10) + func() string {
		var b strings.Builder
		for i := range 1000 {
			b.WriteString("<mechanism>M")
			b.WriteString(strings.Repeat("A", i%7))
			b.WriteString(string(rune('a' + i%26)))
			b.WriteString(string(rune('a' + i/26%26)))
			b.WriteString("</mechanism>")
		}
		return b.String()
	}() + `</mechanisms></stream:features>`
	f, err := ParseFeatures([]byte(flood))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.SASLMechanisms) > maxListed {
		t.Errorf("%d mechanisms kept, want at most %d", len(f.SASLMechanisms), maxListed)
	}
}

const prosodySuccess = `<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>alice@localhost/pipebind.Xy1</authorization-identifier><bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:sm:3' id='c2a5e0b4' resume='true' max='600' location='127.0.0.1'/><enabled xmlns='urn:xmpp:carbons:2'/></bound></success>`

func TestParseSASL2Success(t *testing.T) {
	s, err := ParseSASL2Success([]byte(prosodySuccess))
	if err != nil {
		t.Fatal(err)
	}
	if s.AuthorizationIdentifier.String() != "alice@localhost/pipebind.Xy1" {
		t.Errorf("authz %s", s.AuthorizationIdentifier)
	}
	want := &Bound{SM: SMState{Enabled: true, ID: "c2a5e0b4", Resumable: true, Max: 600, Location: "127.0.0.1"}, Carbons: true}
	if !reflect.DeepEqual(s.Bound, want) {
		t.Errorf("bound %+v, want %+v", s.Bound, want)
	}

	// XEP-0388 example with SCRAM additional data and no bind.
	s, err = ParseSASL2Success([]byte(`<success xmlns='urn:xmpp:sasl:2'><additional-data>dj1wTk5ERlZFUXh1WHhDb1NFaVc4R0VaKzFSU289</additional-data><authorization-identifier>user@example.org</authorization-identifier></success>`))
	if err != nil {
		t.Fatal(err)
	}
	if string(s.AdditionalData) != "v=pNNDFVEQxuXxCoSEiW8GEZ+1RSo=" || s.Bound != nil {
		t.Errorf("got %+v", s)
	}

	for name, in := range map[string]string{
		"no authz":      `<success xmlns='urn:xmpp:sasl:2'/>`,
		"bad jid":       `<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>@@/</authorization-identifier></success>`,
		"bad base64":    `<success xmlns='urn:xmpp:sasl:2'><additional-data>!!</additional-data><authorization-identifier>a@b</authorization-identifier></success>`,
		"negative max":  `<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>a@b/c</authorization-identifier><bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:sm:3' id='x' resume='true' max='-1'/></bound></success>`,
		"huge max":      `<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>a@b/c</authorization-identifier><bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:sm:3' id='x' max='99999999999999999999999'/></bound></success>`,
		"resume no id":  `<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>a@b/c</authorization-identifier><bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:sm:3' resume='true'/></bound></success>`,
		"wrong element": `<failure xmlns='urn:xmpp:sasl:2'/>`,
		"truncated":     `<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>a@b`,
	} {
		if _, err := ParseSASL2Success([]byte(in)); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: err = %v, want ErrProtocol", name, err)
		}
	}
}

func TestChooseMechanism(t *testing.T) {
	verified13 := tls.ConnectionState{Version: tls.VersionTLS13, VerifiedChains: [][]*x509.Certificate{{}}}
	unverified13 := tls.ConnectionState{Version: tls.VersionTLS13}
	verified12 := tls.ConnectionState{Version: tls.VersionTLS12, VerifiedChains: [][]*x509.Certificate{{}}}
	all := []string{"PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256"}
	for _, tc := range []struct {
		name    string
		prefs   []string
		offered []string
		cb      []string
		cs      tls.ConnectionState
		allow   bool
		want    string
	}{
		{"plus with exporter", DefaultMechanisms(), all, []string{"tls-exporter"}, verified13, false, "SCRAM-SHA-1-PLUS"},
		{"no plus without XEP-0440", DefaultMechanisms(), all, nil, verified13, false, "SCRAM-SHA-256"},
		{"no plus on TLS 1.2", DefaultMechanisms(), all, []string{"tls-exporter"}, verified12, false, "SCRAM-SHA-256"},
		{"plain verified", []string{"PLAIN"}, all, nil, verified13, false, "PLAIN"},
		{"plain unverified refused", []string{"PLAIN"}, all, nil, unverified13, false, ""},
		{"plain unverified allowed", []string{"PLAIN"}, all, nil, unverified13, true, "PLAIN"},
		{"never what is not offered", []string{"SCRAM-SHA-256"}, []string{"PLAIN"}, nil, verified13, false, ""},
		{"unknown mechanism skipped", []string{"OAUTHBEARER", "PLAIN"}, []string{"OAUTHBEARER", "PLAIN"}, nil, verified13, false, "PLAIN"},
	} {
		got, ok := chooseMechanism(tc.prefs, tc.offered, tc.cb, tc.cs, tc.allow)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: got %q %v, want %q", tc.name, got, ok, tc.want)
		}
	}
}

// TestDefaultMechanismsIsACopy: an importer that reorders the default
// preference changes its own copy, never the ranking behind the pin.
func TestDefaultMechanismsIsACopy(t *testing.T) {
	d := DefaultMechanisms()
	slices.Reverse(d)
	if !Stronger("SCRAM-SHA-512-PLUS", "PLAIN") || Stronger("PLAIN", "SCRAM-SHA-1") {
		t.Fatal("reordering the returned slice changed the ranking")
	}
	if got := DefaultMechanisms(); got[0] != "SCRAM-SHA-512-PLUS" || got[len(got)-1] != "PLAIN" {
		t.Fatalf("DefaultMechanisms() = %v after a caller reordered its copy", got)
	}
}

func TestErrorClassification(t *testing.T) {
	err := classify(context.Background(), "auth", PathSASL2, "example.org", &SASLError{Condition: "not-authorized", Text: "bad"})
	if !errors.Is(err, ErrAuth) || !errors.Is(err, &SASLError{Condition: "not-authorized"}) || errors.Is(err, &SASLError{Condition: "aborted"}) {
		t.Errorf("not-authorized: %v", err)
	}
	err = classify(context.Background(), "auth", PathSASL2, "example.org", &SASLError{Condition: "temporary-auth-failure"})
	if !errors.Is(err, ErrRefused) || errors.Is(err, ErrAuth) {
		t.Errorf("temporary-auth-failure: %v", err)
	}
	err = classify(context.Background(), "features", PathSASL2, "example.org", &StreamError{Condition: "host-unknown"})
	if !errors.Is(err, ErrRefused) || !errors.Is(err, &StreamError{Condition: "host-unknown"}) {
		t.Errorf("stream error: %v", err)
	}
	var le *Error
	if !errors.As(err, &le) || le.Step != "features" || le.Domain != "example.org" {
		t.Errorf("errors.As: %#v", le)
	}
	if s := err.Error(); !strings.Contains(s, "example.org") || !strings.Contains(s, "host-unknown") {
		t.Errorf("message %q", s)
	}
}

func TestParseSASL2SuccessFASTAndResume(t *testing.T) {
	s, err := ParseSASL2Success([]byte(`<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>alice@localhost/r</authorization-identifier><token xmlns='urn:xmpp:fast:0' expiry='2026-12-16T14:36:15.5Z' token='secret-1'/><resumed xmlns='urn:xmpp:sm:3' h='4294967295' previd='p1'/></success>`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Token == nil || string(s.Token.Secret) != "secret-1" || s.Token.Expiry.Nanosecond() != 5e8 {
		t.Fatalf("token %+v", s.Token)
	}
	if s.Resumed == nil || s.Resumed.PrevID != "p1" || s.Resumed.H != 4294967295 {
		t.Fatalf("resumed %+v", s.Resumed)
	}
	s, err = ParseSASL2Success([]byte(`<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>alice@localhost</authorization-identifier><failed xmlns='urn:xmpp:sm:3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed></success>`))
	if err != nil || s.ResumeFailed != "item-not-found" {
		t.Fatalf("failed resume: %q, %v", s.ResumeFailed, err)
	}
	// A token the client cannot keep is dropped, and says why: the
	// authentication itself succeeded (issue 14: a token over 4,096 bytes
	// used to fail the whole login).
	for _, drop := range []string{
		`<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>a@b</authorization-identifier><token xmlns='urn:xmpp:fast:0' expiry='tomorrow' token='x'/></success>`,
		`<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>a@b</authorization-identifier><token xmlns='urn:xmpp:fast:0' expiry='2026-12-16T14:36:15Z' token=''/></success>`,
		`<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>a@b</authorization-identifier><token xmlns='urn:xmpp:fast:0' expiry='2026-12-16T14:36:15Z' token='` + strings.Repeat("t", maxTokenLen+1) + `'/></success>`,
	} {
		s, err := ParseSASL2Success([]byte(drop))
		if err != nil || s.Token != nil || s.TokenDropped == "" {
			t.Errorf("%.120s: token %v, dropped %q, %v; want it dropped, no error", drop, s.Token, s.TokenDropped, err)
		}
	}
	for _, bad := range []string{
		`<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>a@b</authorization-identifier><resumed xmlns='urn:xmpp:sm:3' h='4294967296' previd='p'/></success>`,
		`<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>a@b</authorization-identifier><resumed xmlns='urn:xmpp:sm:3' h='1'/></success>`,
	} {
		if _, err := ParseSASL2Success([]byte(bad)); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v, want ErrProtocol", bad, err)
		}
	}
}
