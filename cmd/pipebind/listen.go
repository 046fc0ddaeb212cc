package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
)

var listenCommand = command{name: "listen", args: []string{"ACCOUNT"},
	about: "Logs in as ACCOUNT and prints each message as it is stored in the local cache (-cache):\n" +
		"first those that arrived since the cache was last level with the archive, then live ones,\n" +
		"each once, in archive order, until interrupted (exit status 130) or -count messages.\n" +
		"With -json, one JSON object a line. It stays connected across network drops (resuming\n" +
		"the session) and keeps the cache level; connection changes are reported on stderr."}

func listen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("listen", flag.ContinueOnError)
	var pf probeFlags
	pf.register(fs)
	count := fs.Int("count", 0, "exit (status 0) after `n` messages; 0: until interrupted")
	j, _, err := listenCommand.parseAccount(fs, args, stdout)
	if err != nil {
		return err
	}
	if err := atLeastZero("-count", *count, "no limit"); err != nil {
		return err
	}
	cfg, db, err := pf.configWithCache(ctx, j, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	if pf.warn != nil {
		pf.warn.immediate = stderr // a long run: say it when it happens
	}
	p := &printer{w: stdout, json: pf.jsonOut, limit: *count, done: make(chan struct{})}
	cfg.OnMessage = p.print
	cfg.Reconnect = true
	cfg.OnEvent = func(e client.Event) { reportEvent(stderr, e) }
	c, err := pf.dial(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(stderr, "pipebind listen: listening as %s (Ctrl-C to stop)\n", c.Info().JID)
	select {
	case <-p.done:
		return p.err()
	case <-c.Done():
		if err := c.Err(); err != nil && !errors.Is(err, client.ErrClosed) {
			return withHint(err, &pf)
		}
		return p.err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// printer prints the messages the client stores (Config.OnMessage), which
// may come from the connection's goroutine and the sync's.
type printer struct {
	mu    sync.Mutex
	w     io.Writer
	json  bool
	limit int // 0: none
	n     int
	werr  error
	done  chan struct{}
}

func (p *printer) print(m cache.StoredMessage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.werr != nil || (p.limit > 0 && p.n >= p.limit) {
		return
	}
	e := newHistoryEntry(m)
	if p.json {
		p.werr = json.NewEncoder(p.w).Encode(e)
	} else {
		p.werr = e.print(p.w)
	}
	p.n++
	if p.werr != nil || p.n == p.limit {
		close(p.done) // a closed pipe, or enough
	}
}

func (p *printer) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.werr != nil {
		return fmt.Errorf("writing: %w", p.werr)
	}
	return nil
}

// reportEvent tells stderr about a connection change.
func reportEvent(w io.Writer, e client.Event) {
	switch e.Kind {
	case client.EventOffline:
		cause := "connection lost"
		if e.Err != nil {
			cause = oneLine(e.Err)
		}
		fmt.Fprintf(w, "pipebind listen: offline (%s); reconnecting\n", cause)
	case client.EventOnline:
		fmt.Fprintln(w, "pipebind listen: online again (new session)")
	case client.EventResumed:
		fmt.Fprintln(w, "pipebind listen: online again (session resumed, nothing lost)")
	case client.EventError:
		if e.Err != nil {
			fmt.Fprintf(w, "pipebind listen: warning: %s\n", oneLine(e.Err))
		}
	}
}
