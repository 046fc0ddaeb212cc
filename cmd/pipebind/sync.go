package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/mamsync"
)

// syncSummary is the JSON of pipebind sync.
type syncSummary struct {
	JID               string     `json:"jid"`
	LatestID          string     `json:"latest_id"`
	LocalLatestID     string     `json:"local_latest_id"`
	Cursor            string     `json:"cursor"`
	Queried           bool       `json:"queried"`
	Pages             int        `json:"pages"`
	Fetched           int        `json:"fetched"`
	Stored            int        `json:"stored"`
	DuplicatesDropped int        `json:"duplicates_dropped"`
	Live              int        `json:"live"`
	PeakBuffered      int        `json:"peak_buffered"` // most fetched messages held in memory at once
	Gap               *cache.Gap `json:"gap,omitempty"`
	Unreads           []unread   `json:"unreads"`
	SyncMS            float64    `json:"sync_ms"`
}

type unread struct {
	JID            string `json:"jid"`
	ReadID         string `json:"read_id"`
	Count          int    `json:"count"`
	ServerReported bool   `json:"server_reported"`
}

// syncCmd logs in, reconciles the local message cache with the archive and
// prints a summary.
func syncCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var pf probeFlags
	pf.register(fs)
	page := fs.Int("page", 0, "MAM page `size` to ask for (0: 250; the server caps it)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pipebind sync [flags] JID\n\nLogs in and brings the local message cache (-cache) level with the server's archive.\nThe password comes from $PIPEBIND_PASSWORD or a terminal prompt.\n\nflags:")
		fs.PrintDefaults()
	}
	j, err := parseAccount(fs, args)
	if err != nil {
		return err
	}
	if pf.cache == "" {
		return errors.New("-cache: a cache file is needed to sync into")
	}
	cfg, err := pf.config(ctx, j, stderr)
	if err != nil {
		return err
	}
	db, err := cache.Open(ctx, pf.cache)
	if err != nil {
		return err
	}
	defer db.Close()
	cfg.Cache, cfg.CachePath = db, ""
	cfg.SyncPageSize = *page
	bar := newProgress(stderr, pf.jsonOut)
	cfg.OnSyncProgress = bar.update

	start := time.Now()
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	rep, err := c.SyncReport(ctx)
	bar.done()
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	states, err := db.Unreads(ctx, j.Bare().String())
	if err != nil {
		return err
	}
	sum := newSyncSummary(j, rep, states, elapsed)
	if pf.jsonOut {
		return json.NewEncoder(stdout).Encode(sum)
	}
	fmt.Fprintf(stdout, "pipebind sync %s\n", j.Bare())
	fmt.Fprintf(stdout, "  server latest  %s\n", orNone(sum.LatestID))
	fmt.Fprintf(stdout, "  local before   %s\n", orNone(sum.LocalLatestID))
	fmt.Fprintf(stdout, "  local now      %s\n", orNone(sum.Cursor))
	if !sum.Queried {
		fmt.Fprintln(stdout, "  archive        level with the cache: no MAM query sent")
	} else {
		fmt.Fprintf(stdout, "  fetched        %d in %d pages, %d stored, %d duplicates dropped, %d live\n", sum.Fetched, sum.Pages, sum.Stored, sum.DuplicatesDropped, sum.Live)
	}
	if sum.Gap != nil {
		fmt.Fprintf(stdout, "  GAP            the archive expired after %s: messages before %s may be missing\n", sum.Gap.AfterID, sum.Gap.BeforeID)
	}
	if len(sum.Unreads) == 0 {
		fmt.Fprintln(stdout, "  unread         none")
	}
	for i, u := range sum.Unreads {
		label := ""
		if i == 0 {
			label = "unread"
		}
		fmt.Fprintf(stdout, "  %-14s %s: %d\n", label, u.JID, u.Count)
	}
	fmt.Fprintf(stdout, "  took           %.1f ms (login and sync)\n", sum.SyncMS)
	return nil
}

func newSyncSummary(j jid.JID, rep mamsync.Report, states []cache.PeerState, elapsed time.Duration) syncSummary {
	sum := syncSummary{
		JID: j.Bare().String(), LatestID: rep.LatestID, LocalLatestID: rep.LocalLatestID, Cursor: rep.Cursor,
		Queried: rep.Queried, Pages: rep.Pages, Fetched: rep.Fetched, Stored: rep.Stored,
		DuplicatesDropped: rep.Duplicates, Live: rep.Live, PeakBuffered: rep.PeakBuffered, Gap: rep.Gap, Unreads: []unread{}, SyncMS: ms(elapsed),
	}
	if sum.LatestID == "" {
		sum.LatestID = rep.Cursor // the server did not say: the newest fetched
	}
	for _, s := range states {
		if s.Unread > 0 {
			sum.Unreads = append(sum.Unreads, unread{JID: s.Peer, ReadID: s.ReadID, Count: s.Unread, ServerReported: s.ServerReported})
		}
	}
	return sum
}

// progress draws a bar on a terminal, plain lines otherwise, nothing with
// -json (stdout carries the object; progress goes to stderr).
type progress struct {
	w     io.Writer
	tty   bool
	quiet bool
	last  time.Time
	drawn bool
}

func newProgress(w io.Writer, quiet bool) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &progress{w: w, tty: tty, quiet: quiet}
}

func (p *progress) update(pr mamsync.Progress) {
	if p.quiet {
		return
	}
	if !p.tty {
		if time.Since(p.last) < time.Second && p.drawn {
			return
		}
		p.last, p.drawn = time.Now(), true
		fmt.Fprintf(p.w, "sync: %d pages, %d fetched, %d stored\n", pr.Pages, pr.Fetched, pr.Stored)
		return
	}
	const width = 30
	bar := strings.Repeat("·", width)
	pct := ""
	if pr.Expected > 0 {
		n := min(pr.Fetched*width/pr.Expected, width)
		bar = strings.Repeat("█", n) + strings.Repeat("·", width-n)
		pct = fmt.Sprintf(" %3d%%", min(pr.Fetched*100/pr.Expected, 100))
	}
	fmt.Fprintf(p.w, "\r[%s]%s %d fetched, %d stored, %d pages ", bar, pct, pr.Fetched, pr.Stored, pr.Pages)
	p.drawn = true
}

func (p *progress) done() {
	if p.tty && p.drawn && !p.quiet {
		fmt.Fprintln(p.w)
	}
}
