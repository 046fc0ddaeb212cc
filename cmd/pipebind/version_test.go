package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// TestVersion (issue 16, item 9): pipebind version reports the module
// version and the VCS revision the toolchain recorded (a tagged go install
// records vX.Y.Z; a build in a checkout, the revision and whether the tree
// was modified), or the version given at link time.
func TestVersion(t *testing.T) {
	v := versionFrom(&debug.BuildInfo{
		Main: debug.Module{Path: "github.com/pipebind/pipebind", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"},
			{Key: "vcs.time", Value: "2025-06-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}},
	}, "")
	if got := v.String(); !strings.HasPrefix(got, "pipebind v1.2.3 (0123456789ab+modified, 2025-06-01T10:00:00Z) go") {
		t.Errorf("String() = %q", got)
	}
	if v := versionFrom(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, ""); v.Version != "devel" || v.Revision != "" {
		t.Errorf("a build without VCS data: %+v", v)
	}
	if v := versionFrom(nil, "v9.9.9"); v.Version != "v9.9.9" {
		t.Errorf("link-time version: %+v", v)
	}

	// The binary, as built from this checkout, and with a link-time
	// version: the module, the version, and the revision when the
	// toolchain could record one (it cannot in a git worktree).
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, args := range [][]string{{"version"}, {"--version"}, {"-json", "version"}} {
		r := runBin(t, ctx, nil, args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, `pipebind `) && !strings.HasPrefix(r.stdout, `{"version"`) {
			t.Errorf("%v: exit %d: %q %s", args, r.code, r.stdout, r.stderr)
		}
	}
	tagged := filepath.Join(t.TempDir(), "pipebind")
	if out, err := exec.Command("go", "build", "-buildvcs=auto", "-ldflags", "-X main.buildVersion=v9.9.9", "-o", tagged, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	out, err := exec.Command(tagged, "version", "-json").Output()
	var got versionInfo
	if err == nil {
		err = json.Unmarshal(out, &got)
	}
	if err != nil || got.Version != "v9.9.9" || got.Module != "github.com/pipebind/pipebind" || got.Go == "" {
		t.Fatalf("version -json: %v: %s", err, out)
	}
	if meta, err := exec.Command("go", "version", "-m", tagged).Output(); err == nil && strings.Contains(string(meta), "vcs.revision=") {
		head, err := exec.Command("git", "rev-parse", "HEAD").Output()
		if err == nil && got.Revision != strings.TrimSpace(string(head)) {
			t.Errorf("revision %q, want HEAD %s", got.Revision, head)
		}
	}
}
