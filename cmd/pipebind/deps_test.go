package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestNoHarnessLinked: the user's pipebind binary links neither package
// testing nor a test harness. Of pipebind's internal packages it may link
// only the demo's in-process server and that server's certificates, which
// must therefore not import testing either, and login's PBKDF2 counter
// (kdfcount: one atomic, internal so that it is not API); a harness
// (Prosody, ejabberd, a path emulator) belongs to tests and to
// bench/cmd/pipebind-bench.
func TestNoHarnessLinked(t *testing.T) {
	const internal = "github.com/pipebind/pipebind/internal/"
	linkable := []string{internal + "xmpptest", internal + "testcert", internal + "kdfcount"}
	cmd := exec.Command("go", "list", "-deps", ".")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, stderr.String())
	}
	deps := strings.Fields(string(out))
	// The list is the real one: the command itself and the demo's server.
	for _, want := range []string{"github.com/pipebind/pipebind/cmd/pipebind", internal + "xmpptest"} {
		if !slices.Contains(deps, want) {
			t.Fatalf("go list -deps does not name %s:\n%s", want, out)
		}
	}
	for _, p := range deps {
		switch {
		case p == "testing" || strings.HasPrefix(p, "testing/"):
			t.Errorf("the pipebind command links %s", p)
		case strings.HasPrefix(p, internal) && !slices.Contains(linkable, p):
			t.Errorf("the pipebind command links the test harness %s", p)
		}
	}
}
