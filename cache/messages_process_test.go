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
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Environment of TestMessagesHelperProcess: set, it runs as a child of
// TestMessagesMultiProcess.
const (
	msgHelperPathEnv = "PIPEBIND_CACHE_MSG_HELPER_DB"
	msgHelperPageEnv = "PIPEBIND_CACHE_MSG_HELPER_PAGE"
)

const (
	msgHelperArchive = 1200
	insertedPrefix   = "inserted="
)

// TestMessagesHelperProcess is not a test: TestMessagesMultiProcess runs
// the test binary again with -test.run=^TestMessagesHelperProcess$ and the
// environment above, and this is the child's work. It waits for its
// standard input to close (the parent's starting signal), syncs the whole
// archive in pages of its own size, marks romeo's messages displayed in a
// scrambled order, and prints how many messages it inserted.
func TestMessagesHelperProcess(t *testing.T) {
	path := os.Getenv(msgHelperPathEnv)
	if path == "" {
		return // not a child of TestMessagesMultiProcess: nothing to do
	}
	page, err := strconv.Atoi(os.Getenv(msgHelperPageEnv))
	if err == nil {
		err = msgHelperMain(path, page)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func msgHelperMain(path string, page int) error {
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
	all := archive("p", msgHelperArchive)
	inserted := 0
	for lo := 0; lo < len(all); lo += page {
		batch := all[lo:min(lo+page, len(all))]
		n, dup, err := db.AppendMessages(ctx, account, batch, batch[len(batch)-1].StanzaID)
		if err != nil {
			return err
		}
		if n+dup != len(batch) {
			return fmt.Errorf("page of %d: %d inserted + %d duplicates", len(batch), n, dup)
		}
		inserted += n
	}
	// Romeo's messages are the even ones; walk them in a scrambled order.
	var ids []string
	for i := 0; i < len(all); i += 2 {
		ids = append(ids, all[i].StanzaID)
	}
	for i := range ids {
		j := (i*31 + page) % len(ids)
		ids[i], ids[j] = ids[j], ids[i]
	}
	for _, id := range ids[:100] {
		if _, err := db.MarkDisplayed(ctx, account, "romeo@montague.example", id); err != nil {
			return err
		}
	}
	if _, err := db.MarkDisplayed(ctx, account, "romeo@montague.example", all[len(all)-2].StanzaID); err != nil {
		return err
	}
	for _, id := range ids[100:200] {
		moved, err := db.MarkDisplayed(ctx, account, "romeo@montague.example", id)
		if err != nil {
			return err
		}
		if moved {
			return fmt.Errorf("marker moved back to %s from the newest message", id)
		}
	}
	fmt.Printf("\n%s%d\n", insertedPrefix, inserted)
	return db.Close()
}

// TestMessagesMultiProcess has processes with their own page sizes sync the
// same archive into one file at once: each message must be stored exactly
// once, in archive order, and the read marker only move forward.
func TestMessagesMultiProcess(t *testing.T) {
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

	type child struct {
		cmd            *exec.Cmd
		stdin          io.WriteCloser
		stdout, stderr bytes.Buffer
	}
	var children []*child
	for _, page := range []int{1, 13, 50, 250} {
		c := &child{cmd: exec.CommandContext(ctx, exe, "-test.run=^TestMessagesHelperProcess$", "-test.count=1")}
		c.cmd.Env = append(os.Environ(),
			msgHelperPathEnv+"="+path,
			msgHelperPageEnv+"="+strconv.Itoa(page))
		c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
		if c.stdin, err = c.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := c.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children = append(children, c)
	}
	// All started: release them together.
	for _, c := range children {
		c.stdin.Close()
	}

	total := 0
	for i, c := range children {
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("child %d: %v\nstdout:\n%s\nstderr:\n%s", i, err, &c.stdout, &c.stderr)
			continue
		}
		found := false
		sc := bufio.NewScanner(&c.stdout)
		for sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), insertedPrefix); ok {
				n, err := strconv.Atoi(s)
				if err != nil {
					t.Fatal(err)
				}
				total += n
				found = true
			}
		}
		if !found {
			t.Errorf("child %d printed no count; stdout:\n%s", i, &c.stdout)
		}
	}
	if t.Failed() {
		return
	}

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	all := archive("p", msgHelperArchive)
	if total != len(all) {
		t.Errorf("the children inserted %d messages in all, want %d", total, len(all))
	}
	if got := stanzaIDs(stored(t, db)); !slices.Equal(got, stanzaIDs(all)) {
		t.Errorf("stored %d messages, not the archive (%d) in order", len(got), len(all))
	}
	if c := cursorOf(t, db); c != all[len(all)-1].StanzaID {
		t.Errorf("Cursor = %q, want %s", c, all[len(all)-1].StanzaID)
	}
	if got := unreadsOf(t, db)["romeo@montague.example"]; got.ReadID != all[len(all)-2].StanzaID || got.Unread != 0 {
		t.Errorf("romeo = %+v, want read %s, 0 unread", got, all[len(all)-2].StanzaID)
	}
	checkModes(t, path)
}
