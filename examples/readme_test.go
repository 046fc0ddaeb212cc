// Package examples holds programs to copy (echobot) and the test that the
// README's Go example compiles as it is written.
package examples

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADMEExampleCompiles (issue 16, item 9): the README's Go API example
// is a whole program that builds against this module as it is, so no name
// in it is left undefined.
func TestREADMEExampleCompiles(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	i := strings.Index(text, "## The Go API")
	if i < 0 {
		t.Fatal("README has no Go API section")
	}
	start := strings.Index(text[i:], "```go\npackage main\n")
	if start < 0 {
		t.Fatal("the Go API section has no complete program (```go, then package main)")
	}
	src := text[i+start+len("```go\n"):]
	src = src[:strings.Index(src, "```")]

	// Built as examples/readme/main.go through an overlay: nothing is
	// written into the tree.
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "main.go")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	overlay, err := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(root, "examples", "readme", "main.go"): file}})
	if err != nil {
		t.Fatal(err)
	}
	ov := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(ov, overlay, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-overlay", ov, "-o", os.DevNull, "./examples/readme")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the README's example does not build: %v\n%s\n%s", err, out, src)
	}
}
