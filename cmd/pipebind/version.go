package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// buildVersion, when set at link time (-ldflags "-X main.buildVersion=v1.2.3"),
// replaces the module version the Go toolchain recorded.
var buildVersion string

// versionInfo is what pipebind version reports: the module version (set by
// go install …@vX.Y.Z; "devel" for a build from a checkout) and the VCS
// revision the binary was built from (go build stamps it in a checkout).
type versionInfo struct {
	Version  string `json:"version"`
	Module   string `json:"module"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func readVersion() versionInfo {
	bi, _ := debug.ReadBuildInfo()
	return versionFrom(bi, buildVersion)
}

// versionFrom reads what the toolchain recorded in bi (nil: nothing);
// override, when set, is the version.
func versionFrom(bi *debug.BuildInfo, override string) versionInfo {
	v := versionInfo{Version: "devel", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		v.Module = bi.Main.Path
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if override != "" {
		v.Version = override
	}
	return v
}

// String is the one line pipebind version prints.
func (v versionInfo) String() string {
	s := "pipebind " + v.Version
	if v.Revision != "" {
		rev := v.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if v.Modified {
			rev += "+modified"
		}
		s += " (" + rev
		if v.Time != "" {
			s += ", " + v.Time
		}
		s += ")"
	}
	return s + " " + v.Go + " " + v.Platform
}

var versionCommand = command{name: "version",
	about: "Prints the version of pipebind, the revision it was built from and the Go version."}

func version(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	jsonOut := fs.Bool("json", false, "print JSON")
	if _, err := versionCommand.parse(fs, args, stdout); err != nil {
		return err
	}
	v := readVersion()
	if *jsonOut {
		return json.NewEncoder(stdout).Encode(v)
	}
	_, err := fmt.Fprintln(stdout, v)
	return err
}
