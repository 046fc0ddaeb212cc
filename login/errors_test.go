package login

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
)

// stepConstants returns every constant of type Step declared in this
// package's non-test files, by name, read from the source so that a step
// added later is checked without a list to keep up to date.
func stepConstants(t *testing.T) map[string]Step {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	steps := make(map[string]Step)
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Step" {
					continue
				}
				for i, name := range vs.Names {
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: want a string literal", name.Name)
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					steps[name.Name] = Step(v)
				}
			}
		}
	}
	return steps
}

// TestStepStrings: every step constant prints a distinct, non-empty text,
// the one error messages carried before steps were typed.
func TestStepStrings(t *testing.T) {
	steps := stepConstants(t)
	if len(steps) < 12 {
		t.Fatalf("found %d Step constants, want at least 12: %v", len(steps), steps)
	}
	seen := make(map[string]string)
	for name, s := range steps {
		str := s.String()
		if str == "" {
			t.Errorf("%s prints nothing", name)
		}
		if other, dup := seen[str]; dup {
			t.Errorf("%s and %s both print %q", name, other, str)
		}
		seen[str] = name
	}
	for _, want := range []string{"lookup", "connect", "starttls", "tls", "config", "write", "stream header",
		"features", "auth", "restart", "bind", "enable"} {
		if _, ok := seen[want]; !ok {
			t.Errorf("no step prints %q", want)
		}
	}
}

// TestErrorPrintsStep: the step appears in the message as it always did.
func TestErrorPrintsStep(t *testing.T) {
	err := classify(context.Background(), StepStreamHeader, PathSASL2, "example.org", errors.New("boom"))
	if got, want := err.Error(), "login to example.org (sasl2): stream header: boom"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var le *Error
	if !errors.As(err, &le) || le.Step != StepStreamHeader {
		t.Errorf("Step = %v", le)
	}
}

// pipeTLS is one end of a net.Pipe that passes for an established TLS
// connection (a verified TLS 1.3 one).
type pipeTLS struct{ net.Conn }

func (pipeTLS) ConnectionState() tls.ConnectionState {
	return tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true, VerifiedChains: [][]*x509.Certificate{{}}}
}

// TestPeerClosesDuringLogin: the server closing the connection at any
// point of the login is ErrConnection (safe to retry), never ErrProtocol,
// whether the close falls between elements or inside one.
func TestPeerClosesDuringLogin(t *testing.T) {
	const header = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' from='example.org' id='s'>`
	for _, sent := range []string{
		"",
		header,
		header + "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechan",
		header + "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>",
	} {
		client, server := net.Pipe()
		go func() {
			buf := make([]byte, 4096)
			_, _ = server.Read(buf) // the client's header
			_, _ = io.WriteString(server, sent)
			server.Close()
		}()
		_, err := Negotiate(context.Background(), pipeTLS{client}, Config{JID: jid.MustParse("alice@example.org"), Password: "pw"})
		client.Close()
		if !errors.Is(err, ErrConnection) || errors.Is(err, ErrProtocol) {
			t.Errorf("closed after %.60q...: %v, want ErrConnection", sent, err)
		}
	}
}
