package cache

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Environment of TestHelperProcess: set, it runs as a child of
// TestMultiProcess.
const (
	helperPathEnv = "PIPEBIND_CACHE_HELPER_DB"
	helperNameEnv = "PIPEBIND_CACHE_HELPER_NAME"
)

const (
	helperRounds = 20
	idPrefix     = "installation-id="
)

// TestHelperProcess is not a test: TestMultiProcess runs the test binary
// again with -test.run=^TestHelperProcess$ and the environment above, and
// this is the child's work. It waits for its standard input to close (the
// parent's starting signal), then writes and reads features on the shared
// file and prints its installation id.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperPathEnv)
	if path == "" {
		return // not a child of TestMultiProcess: nothing to do
	}
	if err := helperMain(path, os.Getenv(helperNameEnv)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func helperMain(path, name string) error {
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := Open(ctx, path)
	if err != nil {
		return err
	}
	defer db.Close()
	var id string
	for i := range helperRounds {
		own := Features{Domain: name + ".example", SASL2: true, SASL2Mechanisms: []string{"PLAIN", strconv.Itoa(i)}}
		if err := db.PutFeatures(ctx, own); err != nil {
			return err
		}
		shared := Features{Domain: "shared.example", Bind2: true, Bind2Inline: []string{name}}
		if err := db.PutFeatures(ctx, shared); err != nil {
			return err
		}
		got, ok, err := db.Features(ctx, own.Domain)
		if err != nil {
			return err
		}
		if !ok || !got.Equal(own) {
			return fmt.Errorf("round %d: read back %+v, %v; wrote %+v", i, got, ok, own)
		}
		if _, ok, err := db.Features(ctx, "shared.example"); err != nil || !ok {
			return fmt.Errorf("round %d: shared entry: ok=%v, err=%v", i, ok, err)
		}
		got2, err := db.InstallationID(ctx)
		if err != nil {
			return err
		}
		if id != "" && got2 != id {
			return fmt.Errorf("round %d: InstallationID changed from %s to %s", i, id, got2)
		}
		id = got2
	}
	fmt.Printf("\n%s%s\n", idPrefix, id)
	return db.Close()
}

func TestMultiProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes") // -short only
	}
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "cache.db") // fresh: the children race to create it

	const n = 3
	type child struct {
		cmd            *exec.Cmd
		stdin          io.WriteCloser
		stdout, stderr bytes.Buffer
	}
	children := make([]*child, n)
	for i := range children {
		c := &child{cmd: exec.CommandContext(ctx, exe, "-test.run=^TestHelperProcess$", "-test.count=1")}
		c.cmd.Env = append(os.Environ(),
			helperPathEnv+"="+path,
			helperNameEnv+"=child"+strconv.Itoa(i))
		c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
		if c.stdin, err = c.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := c.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children[i] = c
	}
	// All started: release them together.
	for _, c := range children {
		c.stdin.Close()
	}

	var ids []string
	for i, c := range children {
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("child %d: %v\nstdout:\n%s\nstderr:\n%s", i, err, &c.stdout, &c.stderr)
			continue
		}
		id := ""
		sc := bufio.NewScanner(&c.stdout)
		for sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), idPrefix); ok {
				id = s
			}
		}
		if id == "" {
			t.Errorf("child %d printed no installation id; stdout:\n%s", i, &c.stdout)
		}
		ids = append(ids, id)
	}
	if t.Failed() {
		return
	}

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want, err := db.InstallationID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if id != want {
			t.Errorf("child %d: InstallationID %q, the file holds %q", i, id, want)
		}
	}
	list, err := db.ListFeatures(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var domains []string
	for _, f := range list {
		domains = append(domains, f.Domain)
	}
	if got := strings.Join(domains, ","); got != "child0.example,child1.example,child2.example,shared.example" {
		t.Errorf("domains after the children ran: %s", got)
	}
	for _, f := range list {
		if f.Domain != "shared.example" &&
			(len(f.SASL2Mechanisms) != 2 || f.SASL2Mechanisms[0] != strconv.Itoa(helperRounds-1)) {
			t.Errorf("%s: last write lost: %+v", f.Domain, f)
		}
	}
	checkModes(t, path)
}
