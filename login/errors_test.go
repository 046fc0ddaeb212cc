package login

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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
