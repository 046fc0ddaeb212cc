package login

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	plain := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00hunter2"))
	for _, tc := range []struct {
		in, secret, keep string
	}{
		{`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + plain + `</auth>`, plain, "mechanism='PLAIN'"},
		{`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>` + plain + `</initial-response><bind xmlns='urn:xmpp:bind:0'><tag>pipebind</tag></bind></authenticate>`, plain, "<tag>pipebind</tag>"},
		{`<response xmlns='urn:xmpp:sasl:2'>Yz1iaXdzLHI9cHJvb2Y=</response>`, "Yz1iaXdzLHI9cHJvb2Y=", "<response"},
		{`<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>cj1ub25jZSxzPXNhbHQsaT00MDk2</challenge>`, "cj1ub25jZSxzPXNhbHQsaT00MDk2", "</challenge>"},
		{`<success xmlns='urn:xmpp:sasl:2'><additional-data>dj1zaWduYXR1cmU=</additional-data><authorization-identifier>alice@example.org/r</authorization-identifier><token xmlns='urn:xmpp:fast:0' expiry='2026-12-16T14:36:15Z' token='s3cr3t-t0ken'/></success>`, "s3cr3t-t0ken", "alice@example.org/r"},
		{`<success xmlns='urn:xmpp:sasl:2'><additional-data>dj1zaWduYXR1cmU=</additional-data></success>`, "dj1zaWduYXR1cmU=", "<additional-data>"},
	} {
		got := string(Redact([]byte(tc.in)))
		if strings.Contains(got, tc.secret) || !strings.Contains(got, tc.keep) || !strings.Contains(got, "[redacted") {
			t.Errorf("Redact(%.60q...) = %q", tc.in, got)
		}
	}
	for _, same := range []string{
		`<?xml version='1.0'?>`,
		`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org'>`,
		`<message to='bob@example.org'><body>auth success response</body></message>`,
		`<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`,
		`</stream:stream>`,
	} {
		if got := string(Redact([]byte(same))); got != same {
			t.Errorf("Redact(%q) = %q, want it unchanged", same, got)
		}
	}
	if got := string(Redact([]byte("<auth>abc</au"))); strings.Contains(got, "abc") {
		t.Errorf("unreadable input kept its text: %q", got)
	}
}

// FuzzRedact: whatever the element around it, a secret in a SASL payload or
// a FAST token attribute never survives Redact, and Redact never panics.
func FuzzRedact(f *testing.F) {
	f.Add("auth", "", "c2VjcmV0")
	f.Add("initial-response", "<bind/>", "AGEAYg==")
	f.Add("token", "", "tok")
	f.Fuzz(func(t *testing.T, name, extra, secret string) {
		if len(secret) < 4 || strings.ContainsAny(secret, "<>&'\"\x00 \t\r\n") || !isName(name) {
			return
		}
		var el string
		if name == "token" {
			el = `<success xmlns='urn:xmpp:sasl:2'>` + extra + `<token xmlns='urn:xmpp:fast:0' token='` + secret + `'/></success>`
		} else if secretText[name] {
			el = `<authenticate><` + name + `>` + secret + `</` + name + `>` + extra + `</authenticate>`
		} else {
			return
		}
		got := string(Redact([]byte(el)))
		if strings.Contains(got, secret) && !strings.Contains(extra, secret) {
			t.Fatalf("Redact(%q) = %q kept the secret", el, got)
		}
	})
}

func isName(s string) bool {
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r == '-' && i > 0) {
			return false
		}
	}
	return s != ""
}
