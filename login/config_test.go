package login

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/features"
)

// TestCheckMechanisms (issue 16, item 3): a mechanism this package does
// not implement is the caller's mistake, ErrConfig, found by Negotiate
// before it writes a byte; never the server's refusal.
func TestCheckMechanisms(t *testing.T) {
	for _, m := range DefaultMechanisms() {
		if !KnownMechanism(m) {
			t.Errorf("KnownMechanism(%s) = false", m)
		}
	}
	for _, m := range []string{"FOO-BAR", "HT-SHA-256-NONE", "scram-sha-1", ""} {
		if KnownMechanism(m) {
			t.Errorf("KnownMechanism(%q) = true", m)
		}
	}
	if err := CheckMechanisms(nil); err != nil {
		t.Errorf("CheckMechanisms(nil) = %v", err)
	}
	for _, list := range [][]string{{"PLAIN", "FOO-BAR"}, {}} {
		if err := CheckMechanisms(list); !errors.Is(err, ErrConfig) {
			t.Errorf("CheckMechanisms(%q) = %v, want ErrConfig", list, err)
		}
	}

	client, server := net.Pipe()
	defer server.Close()
	written := make(chan struct{})
	go func() {
		var b [1]byte
		if n, _ := server.Read(b[:]); n > 0 {
			close(written)
		}
	}()
	_, err := Negotiate(context.Background(), pipeTLS{client}, Config{
		JID: jid.MustParse("alice@example.org"), Password: "pw", Mechanisms: []string{"FOO-BAR"},
	})
	var le *Error
	if !errors.As(err, &le) || le.Step != StepConfig || !errors.Is(err, ErrConfig) || errors.Is(err, ErrRefused) ||
		!strings.Contains(err.Error(), `"FOO-BAR"`) {
		t.Fatalf("Negotiate: %v, want a config error naming FOO-BAR", err)
	}
	client.Close()
	select {
	case <-written:
		t.Error("Negotiate wrote to the connection before refusing its configuration")
	default:
	}
}

// TestErrorSaysStepOnce: a cause that already names the step (crypto/tls's
// "tls: ...") is not prefixed with it again ("tls: tls: ...").
func TestErrorSaysStepOnce(t *testing.T) {
	e := &Error{Step: StepTLS, Domain: "example.org", Kind: ErrTLS, Err: errors.New("tls: failed to verify certificate")}
	if got, want := e.Error(), "login to example.org: tls: failed to verify certificate"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e = &Error{Step: StepConnect, Domain: "example.org", Kind: ErrConnection, Err: errors.New("dial tcp: refused")}
	if got, want := e.Error(), "login to example.org: connect: dial tcp: refused"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// testNegotiation is a negotiation on a verified TLS 1.3 connection that
// is never used: for plan alone.
func testNegotiation(t *testing.T, cfg Config) *negotiation {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	cfg.JID = jid.MustParse("alice@example.org")
	n, err := newNegotiation(pipeTLS{client}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPinAndChosenMechanisms (issue 16, item 3): the pin refuses a weaker
// mechanism when the server no longer offers the pinned one (stripped
// features), not when the server still offers it and the caller's own
// Mechanisms left it out: that is the caller's choice, not a downgrade.
func TestPinAndChosenMechanisms(t *testing.T) {
	plus := features.Features{SASL2: true, Bind2: true, ChannelBindings: []string{"tls-exporter"},
		SASL2Mechanisms: []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1"}}
	stripped := plus
	stripped.SASL2Mechanisms = []string{"SCRAM-SHA-1"}
	for _, tc := range []struct {
		name      string
		mechs     []string
		f         features.Features
		want      string
		downgrade bool
	}{
		{"chosen by the caller", []string{"SCRAM-SHA-1"}, plus, "SCRAM-SHA-1", false},
		{"stripped by the server", nil, stripped, "", true},
		{"stripped, and chosen", []string{"SCRAM-SHA-1"}, stripped, "", true},
		{"pin kept", nil, plus, "SCRAM-SHA-256-PLUS", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := testNegotiation(t, Config{Password: "pw", Pin: "SCRAM-SHA-256-PLUS", Mechanisms: tc.mechs})
			p, err := n.plan(tc.f)
			var de *DowngradeError
			if errors.As(err, &de) != tc.downgrade || (!tc.downgrade && (err != nil || p.mech != tc.want)) {
				t.Errorf("plan: %q, %v; want %q, downgrade %v", p.mech, err, tc.want, tc.downgrade)
			}
		})
	}
}

// TestNoEmptyPassword (issue 16, item 8): without a password, a login that
// a FAST token cannot carry fails with ErrNeedPassword (and ErrAuth)
// before anything is sent: an empty password never reaches the server.
func TestNoEmptyPassword(t *testing.T) {
	f := features.Features{SASL2: true, Bind2: true, SASL2Mechanisms: []string{"SCRAM-SHA-256", "PLAIN"},
		FASTMechanisms: []string{"HT-SHA-256-NONE"}}
	n := testNegotiation(t, Config{})
	if _, err := n.plan(f); !errors.Is(err, ErrNeedPassword) || !errors.Is(err, ErrAuth) {
		t.Errorf("plan without a password: %v, want ErrNeedPassword", err)
	}
	tok := &Token{Mechanism: "HT-SHA-256-NONE", Secret: []byte("secret-token")}
	n = testNegotiation(t, Config{Token: tok, UserAgent: UserAgent{ID: "ua"}})
	if p, err := n.plan(f); err != nil || !p.fast {
		t.Errorf("plan with a token and no password: %+v, %v", p, err)
	}
}
