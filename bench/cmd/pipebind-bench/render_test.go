package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden reports in testdata/render from the renderer")

// TestRenderGolden renders the Markdown report (BENCHMARKS.md) of saved
// runs and compares it with the golden files next to them. run.json is
// the -json output of a short real run (its command is inside); the
// others are cut from it, with numbers changed so that together they
// reach every branch of the report: each target missed in each way, no
// peers, no floor, no target group, each catch-up outcome. After a change
// to the report's text, rerun with -update and read the diff.
func TestRenderGolden(t *testing.T) {
	runs, err := filepath.Glob(filepath.Join("testdata", "render", "*.json"))
	if err != nil || len(runs) == 0 {
		t.Fatalf("no saved runs in testdata/render (%v)", err)
	}
	for _, file := range runs {
		t.Run(filepath.Base(file), func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var rep benchReport
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatal(err)
			}
			got := renderMarkdown(&rep)
			golden := strings.TrimSuffix(file, ".json") + ".md"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				g, w := strings.Split(got, "\n"), strings.Split(string(want), "\n")
				for i := range max(len(g), len(w)) {
					if i >= len(g) || i >= len(w) || g[i] != w[i] {
						t.Fatalf("%s differs from the rendered report from line %d (-update rewrites it):\ngot:  %.300s\nwant: %.300s", golden, i+1, at(g, i), at(w, i))
					}
				}
			}
		})
	}
}

// at is line i of lines, or a mark past their end.
func at(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "(end of the report)"
}
