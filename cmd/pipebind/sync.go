package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
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
	// ReadyMS is from the start of the login to ready: logged in, the store
	// level, unread counts known (client.Timings.Ready).
	ReadyMS float64 `json:"ready_ms"`
	// InLoginWrite reports that the archive's first page and the markers
	// were asked in the login's own write (answered in its round trip).
	InLoginWrite bool `json:"in_login_write"`
}

type unread struct {
	JID            string `json:"jid"`
	ReadID         string `json:"read_id"`
	Count          int    `json:"count"`
	ServerReported bool   `json:"server_reported"`
}

// syncCmd logs in, reconciles the local message cache with the archive and
// prints a summary.
var syncCommand = command{name: "sync", args: []string{"ACCOUNT"},
	about: "Logs in and brings the local message cache (-cache) level with the server's archive.\n" +
		"The password comes from $" + envPassword + " or a terminal prompt."}

func syncCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sync", flag.ContinueOnError)
	var pf probeFlags
	pf.register(fs)
	page := fs.Int("page", 0, "MAM page `size` to ask for (0: 250; the server caps it)")
	j, _, err := syncCommand.parseAccount(fs, args, stdout)
	if err != nil {
		return err
	}
	if err := atLeastZero("-page", *page, "the default"); err != nil {
		return err
	}
	cfg, db, err := pf.configWithCache(ctx, j, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	cfg.SyncPageSize = *page
	bar := newProgress(stderr, pf.jsonOut)
	cfg.OnSyncProgress = bar.update

	start := time.Now()
	c, err := pf.dial(ctx, cfg, stderr)
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
	info := c.Info()
	sum.ReadyMS, sum.InLoginWrite = ms(info.Timings.Ready), info.AfterAuthSent
	if pf.jsonOut {
		return json.NewEncoder(stdout).Encode(sum)
	}
	fmt.Fprintf(stdout, "pipebind sync %s\n", j.Bare())
	fmt.Fprintf(stdout, "  server latest  %s\n", orNone(sum.LatestID))
	fmt.Fprintf(stdout, "  local before   %s\n", orNone(sum.LocalLatestID))
	fmt.Fprintf(stdout, "  local now      %s\n", orNone(sum.Cursor))
	switch {
	case !sum.Queried:
		fmt.Fprintln(stdout, "  archive        level with the cache: no MAM query sent")
	case sum.Fetched == 0 && sum.InLoginWrite:
		fmt.Fprintln(stdout, "  archive        level with the cache (one empty page, asked in the login's write)")
	default:
		fmt.Fprintf(stdout, "  fetched        %d in %s, %d stored, %d duplicates dropped, %d live\n", sum.Fetched, plural(sum.Pages, "page"), sum.Stored, sum.DuplicatesDropped, sum.Live)
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
	fmt.Fprintf(stdout, "  ready          %.1f ms after the login began (logged in, store level, unreads known)\n", sum.ReadyMS)
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
// -json (stdout carries the object; progress goes to stderr). When the
// server gave no total (Prosody does not), the bar shows what was fetched
// and is drawn full when the sync is done.
type progress struct {
	w     io.Writer
	tty   bool
	quiet bool
	last  time.Time
	drawn bool
	cur   mamsync.Progress
}

func newProgress(w io.Writer, quiet bool) *progress {
	return &progress{w: w, tty: isTerminal(w), quiet: quiet}
}

func (p *progress) update(pr mamsync.Progress) {
	if p.quiet {
		return
	}
	p.cur = pr
	if !p.tty {
		if time.Since(p.last) < time.Second && p.drawn {
			return
		}
		p.last, p.drawn = time.Now(), true
		fmt.Fprintf(p.w, "sync: %s, %d fetched, %d stored\n", plural(pr.Pages, "page"), pr.Fetched, pr.Stored)
		return
	}
	p.draw(pr.Expected)
}

// draw draws the bar against expected messages (0: unknown; -1: done).
func (p *progress) draw(expected int) {
	const width = 30
	pr := p.cur
	bar := strings.Repeat("·", width)
	pct := ""
	switch {
	case expected < 0:
		bar, pct = strings.Repeat("█", width), " 100%"
	case expected > 0:
		n := min(pr.Fetched*width/expected, width)
		bar = strings.Repeat("█", n) + strings.Repeat("·", width-n)
		pct = fmt.Sprintf(" %3d%%", min(pr.Fetched*100/expected, 100))
	}
	fmt.Fprintf(p.w, "\r[%s]%s %d fetched, %d stored, %s ", bar, pct, pr.Fetched, pr.Stored, plural(pr.Pages, "page"))
	p.drawn = true
}

// done ends the bar: full, since everything there was is fetched.
func (p *progress) done() {
	if p.tty && p.drawn && !p.quiet {
		p.draw(-1)
		fmt.Fprintln(p.w)
	}
}

// plural writes n and noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
