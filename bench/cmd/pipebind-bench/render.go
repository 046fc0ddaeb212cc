package main

import (
	_ "embed"
	"fmt"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"text/template"
)

func fmtMS(v float64) string {
	if v == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", v)
}

// fmtTarget formats a ratio judged against want, with as many decimals
// (two to six) as it takes not to round it onto want: 1.2996 misses 1.3
// and prints as 1.2996x, not 1.30x.
func fmtTarget(v, want float64) string {
	if v == 0 {
		return fmtX(v)
	}
	for prec := 2; prec <= 6; prec++ {
		if out := fmt.Sprintf("%.*f", prec, v); v == want || out != fmt.Sprintf("%.*f", prec, want) {
			return out + "x"
		}
	}
	return fmtX(v)
}

func fmtX(v float64) string {
	if v == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2fx", v)
}

func rowCells(r *benchRow) []string {
	if r.Pending != "" {
		return []string{r.Client, "—", "—", "—", "—", "—", "—", "—", "—", "—", r.Pending}
	}
	note := strings.TrimSpace(r.Path + " " + r.Mechanism)
	if r.Note != "" {
		note = strings.TrimPrefix(note+"; "+r.Note, "; ")
	}
	if r.ReadyMS > 0 {
		note += fmt.Sprintf(" (Info.Timings.Ready %.1f ms)", r.ReadyMS)
	}
	if isPacket(r.Server) && r.N > r.Failed {
		note += packetNote(r)
	}
	if r.Failed > 0 {
		note = fmt.Sprintf("%d/%d failed: %s", r.Failed, r.N, r.FirstErr)
	}
	if r.MedianMS == 0 {
		return []string{r.Client, "—", "—", "—", "—", "—", "—", "—", "—", "—", note}
	}
	return []string{r.Client,
		fmtMS(r.MedianMS), fmtMS(r.P95MS), fmtX(r.VsFloor),
		fmt.Sprintf("%g", r.RoundTrips), fmt.Sprintf("%.0f", r.BytesUp), fmt.Sprintf("%.0f", r.BytesDown),
		fmt.Sprintf("%.2f", r.CPUms), fmt.Sprintf("%.0f", r.Allocs), fmt.Sprintf("%.0f", r.AllocKB), note}
}

var rowHeader = []string{"client", "median ms", "p95 ms", "vs floor", "RTs after TLS", "bytes up", "bytes down", "CPU ms", "allocs", "alloc KiB", "path / note"}

var ratioHeader = []string{"server", "RTT ms", "floor ms", "pipebind warm ms", "pipebind / floor", "go-xmpp best / pipebind", "go-xmpp SCRAM / pipebind", "mellium classic / pipebind", "pipebind classic / pipebind"}

func ratioCells(r ratioRow) []string {
	best := fmtX(r.VsGoxmppBest)
	if r.GoxmppBest != "" {
		best += " (" + r.GoxmppBest + ")"
	}
	return []string{r.Server, fmt.Sprintf("%g", r.RTTms), fmtMS(r.FloorMS), fmtMS(r.PipebindMS) + " (" + r.PipebindClient + ")",
		fmtX(r.VsFloor), best, fmtX(r.VsGoxmppSCRAM), fmtX(r.VsMellium), fmtX(r.VsClassicOwn)}
}

func renderText(rep *benchReport) string {
	var b strings.Builder
	var lastS string
	var lastR float64 = -1
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, r := range rep.Rows {
		if r.Server != lastS || r.RTTms != lastR {
			if lastR >= 0 {
				fmt.Fprintln(tw)
			}
			fmt.Fprintf(tw, "== %s, RTT %g ms ==\n", r.Server, r.RTTms)
			fmt.Fprintln(tw, strings.Join(rowHeader, "\t"))
			lastS, lastR = r.Server, r.RTTms
		}
		fmt.Fprintln(tw, strings.Join(rowCells(r), "\t"))
	}
	tw.Flush()
	if len(rep.Ratios) > 0 {
		fmt.Fprintln(&b)
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(ratioHeader, "\t"))
		for _, r := range rep.Ratios {
			fmt.Fprintln(tw, strings.Join(ratioCells(r), "\t"))
		}
		tw.Flush()
	}
	if s := rep.Storm; s != nil {
		fmt.Fprintf(&b, "\nstorm: %d first logins at once, RTT %g ms: %d ok, %d failed; p50 %.1f ms, p99 %.1f ms, all done in %.1f ms\n",
			s.N, s.RTTms, s.First.OK, s.First.Failed, s.First.P50MS, s.First.P99MS, s.First.WallMS)
		fmt.Fprintf(&b, "storm: %d reconnects at once, RTT %g ms: %d ok (%d FAST), %d failed; p50 %.1f ms, p99 %.1f ms, max %.1f ms, all done in %.1f ms; client peak RSS %.1f MiB, %.1f KiB per idle session (heap+stacks)\n",
			s.N, s.RTTms, s.OK, s.FAST, s.Failed, s.P50MS, s.P99MS, s.MaxMS, s.WallMS, s.PeakRSSMiB, s.PerSessionKB)
		if s.First.FirstErr != "" {
			fmt.Fprintf(&b, "storm: first logins: first error: %s\n", s.First.FirstErr)
		}
		if s.FirstErr != "" {
			fmt.Fprintf(&b, "storm: first error: %s\n", s.FirstErr)
		}
	}
	for _, c := range rep.ServerCosts {
		fmt.Fprintf(&b, "\nprosody first flight %-12s %6.2f ms (%+.2f ms over the header)", c.Name, c.MedianMS, c.OverHeaderMS)
	}
	if len(rep.ServerCosts) > 0 {
		b.WriteString("\n")
	}
	if c := rep.Catchup; c != nil {
		fmt.Fprintf(&b, "\ncatch-up: %d messages from Prosody (RTT %g ms, %d pages of up to %d): Prosody serves them in %.0f ms (%.0f msgs/s), pipebind syncs them in %.0f ms (%.0f msgs/s): %.2fx Prosody's own serving time (%.2fx with NoSM)\n",
			c.Messages, c.RTTms, c.Pages, c.MsgsPerPage, c.ServeMS, c.ServeMsgsPerS, c.SyncMS, c.SyncMsgsPerS, c.Ratio, c.NoSMRatio)
		if c.FirstErr != "" {
			fmt.Fprintf(&b, "catch-up: first error: %s\n", c.FirstErr)
		}
	}
	return b.String()
}

// reportTemplates holds every sentence of the Markdown report (-markdown,
// BENCHMARKS.md); the numbers come from the run, through the views below.
//
//go:embed report.md.tmpl
var reportTemplates string

// report is reportTemplates parsed, with the cell formats of the tables.
var report = template.Must(template.New("report.md.tmpl").Funcs(template.FuncMap{
	"ms":    fmtMS,
	"x":     fmtX,
	"dash":  orDash,
	"join":  strings.Join,
	"abs":   math.Abs,
	"pprof": pprofLines,
}).Parse(reportTemplates))

// say executes the template name of report.md.tmpl on data. The templates
// are part of the binary and TestRenderGolden runs every one of them, so
// an error is a bug: it panics.
func say(name string, data any) string {
	var b strings.Builder
	if err := report.ExecuteTemplate(&b, name, data); err != nil {
		panic(fmt.Sprintf("report.md.tmpl: %v", err))
	}
	return b.String()
}

func findRow(rep *benchReport, server string, rtt float64, client string) *benchRow {
	for _, r := range rep.Rows {
		if r.Server == server && r.RTTms == rtt && r.Client == client {
			return r
		}
	}
	return nil
}

// target is one of the targets, evaluated on a run.
type target struct {
	name, where, measured string
	met                   bool
	measuredOK            bool // false: not measured, no verdict
	detail                string
	// why and fix explain a missed target: what the gap consists of and
	// what would close it.
	why, fix string
	warm     bool // a target on pipebind warm's time (see warmBreakdown)
}

func (t target) cells() []string {
	v := "not measured"
	if t.measuredOK {
		v = "met"
		if !t.met {
			v = "**missed**"
		}
	}
	return []string{t.name, t.where, t.measured, v, t.detail}
}

// targetGroup is the group the targets are judged on: RTT 50 ms, Prosody
// when it ran, else the in-process server.
func targetGroup(rep *benchReport) *ratioRow {
	for _, s := range []string{"prosody", "inproc"} {
		for i := range rep.Ratios {
			if r := rep.Ratios[i]; r.Server == s && r.RTTms == 50 {
				return &rep.Ratios[i]
			}
		}
	}
	return nil
}

// clientRatio is one row's ratio in a "per row" list.
type clientRatio struct {
	Client string
	Ratio  float64
}

// perRowRatios lists one ratio of every warm row (and extra rows) that has
// one, e.g. pipebind-warm-fast 1.31x, pipebind-warm-plain 1.28x.
func perRowRatios(rr *ratioRow, f func(rowRatio) float64, extra ...string) []clientRatio {
	var out []clientRatio
	for _, r := range rr.PerRow {
		if (slices.Contains(warmRows, r.Client) || slices.Contains(extra, r.Client)) && f(r) > 0 {
			out = append(out, clientRatio{r.Client, f(r)})
		}
	}
	return out
}

// burstCost is Prosody's time for one kind of first flight over the
// header's (a serverCost's OverHeaderMS).
type burstCost struct {
	Name string
	MS   float64
}

// floorDetail is the detail of the floor target.
type floorDetail struct {
	Group       *ratioRow
	Warm        []string
	Head, Floor *benchRow
	DiffMS      float64
	// Share: Prosody's own work on the head's burst, when it ran.
	Share  *burstCost
	PerRow []clientRatio
}

// peerDetail is the detail of a target against a peer.
type peerDetail struct {
	PeerName, HeadName string
	Peer, Head         *benchRow
	PerRow             []clientRatio
	Ceiling            *ceiling
}

// targets evaluates the targets: the packet-level path's first.
func targets(rep *benchReport) []target {
	rr := targetGroup(rep)
	out := packetTargets(rep)
	if rr != nil {
		where := fmt.Sprintf("%s, RTT %g ms", rr.Server, rr.RTTms)
		row := func(client string) *benchRow { return findRow(rep, rr.Server, rr.RTTms, client) }
		head := row(rr.PipebindClient)
		t := target{name: "pipebind warm within 5% of the floor", where: where, warm: true, measured: fmtTarget(rr.VsFloor, 1.05), measuredOK: rr.VsFloor > 0,
			met: rr.VsFloor > 0 && rr.VsFloor <= 1.05,
			detail: say("floor detail", floorDetail{Group: rr, Warm: warmRows, Head: head, Floor: row("floor"), DiffMS: rr.PipebindMS - rr.FloorMS,
				Share: serverShare(rep, rr), PerRow: perRowRatios(rr, func(r rowRatio) float64 { return r.VsFloor })})}
		if !t.met && t.measuredOK {
			t.why, t.fix = gap(rep, rr, nil, 1.05*rr.FloorMS)
		}
		out = append(out, t)

		peerTarget := func(name, peer string, ratio, want float64, get func(rowRatio) float64) target {
			t := target{name: name, where: where, measured: fmtTarget(ratio, want), measuredOK: ratio > 0, met: ratio >= want, warm: true}
			if !t.measuredOK {
				t.measured, t.detail = "—", say("peer not measured", nil)
				return t
			}
			p := row(peer)
			t.detail = say("peer detail", peerDetail{PeerName: peer, HeadName: rr.PipebindClient, Peer: p, Head: head,
				PerRow: perRowRatios(rr, get), Ceiling: ceilings(rep, rr, p, want)})
			if !t.met {
				t.why, t.fix = gap(rep, rr, p, p.MedianMS/want)
			}
			return t
		}
		out = append(out, peerTarget("≥ 1.3x go-xmpp's best path", rr.GoxmppBest, rr.VsGoxmppBest, 1.3, func(r rowRatio) float64 { return r.VsGoxmppBest }))
		out = append(out, peerTarget("≥ 1.6x go-xmpp SCRAM", "goxmpp-scram", rr.VsGoxmppSCRAM, 1.6, func(r rowRatio) float64 { return r.VsGoxmppSCRAM }))
		// Warm SCRAM (cached keys, two RTs) against go-xmpp's SCRAM (three).
		var scram rowRatio
		for _, r := range rr.PerRow {
			if r.Client == "pipebind-warm-scram" {
				scram = r
			}
		}
		t = target{name: "pipebind warm SCRAM (cached keys) beats go-xmpp SCRAM", where: where, measured: fmtTarget(scram.VsGoxmppSCRAM, 1),
			measuredOK: scram.VsGoxmppSCRAM > 0, met: scram.VsGoxmppSCRAM > 1}
		if t.measuredOK {
			t.detail = say("scram detail", peerDetail{Peer: row("goxmpp-scram"), Head: row("pipebind-warm-scram")})
			if !t.met {
				t.why, t.fix = say("scram why", nil), say("scram fix", nil)
			}
		} else {
			t.measured, t.detail = "—", say("scram not measured", nil)
		}
		out = append(out, t)
		out = append(out, peerTarget("≥ 2x mellium classic", "mellium-classic", rr.VsMellium, 2, func(r rowRatio) float64 { return r.VsMellium }))
	}
	if s := rep.Storm; s != nil {
		t := target{name: fmt.Sprintf("%d concurrent logins all succeed", s.N), where: fmt.Sprintf("inproc, RTT %g ms", s.RTTms),
			measured: fmt.Sprintf("%d/%d and %d/%d", s.First.OK, s.N, s.OK, s.N), measuredOK: true, met: s.Failed == 0 && s.First.Failed == 0,
			detail: say("storm detail", s)}
		if !t.met {
			t.why = say("storm why", s)
		}
		out = append(out, t)
		t = target{name: fmt.Sprintf("≤ %d KiB per idle session (client)", maxSessionKiB), where: fmt.Sprintf("inproc, RTT %g ms", s.RTTms),
			measured: fmt.Sprintf("%.1f KiB", s.PerSessionKB), measuredOK: true, met: s.PerSessionKB > 0 && s.PerSessionKB <= maxSessionKiB,
			detail: say("session detail", s)}
		if !t.met {
			v := struct {
				*stormResult
				GoroutinesPerSession, HeapPerSessionKB, OverKB float64
			}{s, float64(s.Goroutines) / float64(max(s.OK, 1)), s.PerSessionKB - s.StackPerSessionKB, s.PerSessionKB - maxSessionKiB}
			t.why, t.fix = say("session why", v), say("session fix", v)
		}
		out = append(out, t)
	}
	return out
}

// maxSessionKiB is the target for the memory of an idle session (issue 14,
// point 6; it was 64 KiB).
const maxSessionKiB = 40

// serverShare is Prosody's own work on the burst of pipebind warm (rr),
// part of its time above the floor (measured straight to Prosody, see
// "server costs"); nil when Prosody did not serve the group or was not
// timed.
func serverShare(rep *benchReport, rr *ratioRow) *burstCost {
	if rr.Server != "prosody" {
		return nil
	}
	name := "plain"
	if rr.PipebindClient == "pipebind-warm-fast" {
		name = "fast"
	}
	x, ok := serverExtra(rep, name)
	if !ok {
		return nil
	}
	return &burstCost{name, x}
}

// ceiling is the best ratio against a peer that round trips allow
// ((k_peer + 2) / (k_pipebind + 2) RTTs: TCP and TLS add 2, zero CPU) and,
// with a floor, the measured one.
type ceiling struct {
	PeerRTs, HeadRTs, RoundTrips float64
	Measured                     *measuredCeiling
}

// measuredCeiling is the peer against the floor, a one-RT login that
// costs nothing above TCP + TLS + one round trip, and what the target
// asks of pipebind (all times against the floor in ms).
type measuredCeiling struct {
	Peer                                                       string
	PeerOverFloor, Want, NeedMS, NeedAbove, NeedPct, HeadAbove float64
}

// ceilings returns the ceilings of the ratio against peer p, or nil
// without both rows.
func ceilings(rep *benchReport, rr *ratioRow, p *benchRow, want float64) *ceiling {
	q := findRow(rep, rr.Server, rr.RTTms, rr.PipebindClient)
	if p == nil || q == nil || p.MedianMS == 0 || q.MedianMS == 0 {
		return nil
	}
	c := &ceiling{PeerRTs: p.RoundTrips, HeadRTs: q.RoundTrips, RoundTrips: (p.RoundTrips + 2) / (q.RoundTrips + 2)}
	if rr.FloorMS > 0 {
		need := p.MedianMS / want
		c.Measured = &measuredCeiling{Peer: p.Client, PeerOverFloor: p.MedianMS / rr.FloorMS, Want: want, NeedMS: need,
			NeedAbove: need - rr.FloorMS, NeedPct: 100 * (need - rr.FloorMS) / rr.FloorMS, HeadAbove: rr.PipebindMS - rr.FloorMS}
	}
	return c
}

// cacheWaitNoticeMS is the median wait for the cache (Timings.CacheWait)
// below which the report does not offer shortening it as a fix.
const cacheWaitNoticeMS = 0.05

// gapView is what "gap why" and "gap fix" say about a missed target: which
// case applies (at most one of the bools), and the numbers.
type gapView struct {
	// NoFloor: no floor (or no head row) was measured. BelowFloor: even
	// the floor misses the target against Peer. AtServerCeiling: the
	// margin is smaller than Prosody's work on a FAST burst. CacheCovers,
	// CacheHelps: the wait for the cache is as long as the shortfall, or
	// long enough to mention.
	NoFloor, BelowFloor, AtServerCeiling, CacheCovers, CacheHelps bool

	Head    string    // pipebind warm's row
	Peer    *benchRow // nil for the floor target
	FloorMS float64
	// LimitMS is the largest median that meets the target; MarginMS,
	// AboveMS and ShortMS are it and pipebind's median against the floor,
	// and how much pipebind is too slow.
	LimitMS, MarginMS, AboveMS, ShortMS float64
	PeerOverFloor, ReachX               float64
	FastMS                              float64  // Prosody's work on a FAST burst
	FastCap                             *fastCap // against a peer, with FastMS
	CacheWaitMS                         float64
}

// fastCap is the fastest a one-round-trip login that authenticates can be
// on Prosody, the floor plus Prosody's work on a FAST burst, and the ratio
// against the peer it caps.
type fastCap struct{ MS, Ratio float64 }

// gap explains why pipebind warm (rr) is slower than limitMS (the largest
// median that meets the target; peer is the peer's row, nil for the floor
// target) and what would close the gap. Where pipebind's time above the
// floor goes is said once for all targets (warmBreakdown).
func gap(rep *benchReport, rr *ratioRow, peer *benchRow, limitMS float64) (why, fix string) {
	head := findRow(rep, rr.Server, rr.RTTms, rr.PipebindClient)
	v := gapView{Head: rr.PipebindClient, Peer: peer, FloorMS: rr.FloorMS, LimitMS: limitMS}
	if head == nil || rr.FloorMS == 0 {
		v.NoFloor = true
		return say("gap why", v), say("gap fix", v)
	}
	v.AboveMS, v.MarginMS = rr.PipebindMS-rr.FloorMS, limitMS-rr.FloorMS
	v.ShortMS = v.AboveMS - v.MarginMS
	v.CacheWaitMS = head.CacheWaitMS
	if peer != nil {
		v.PeerOverFloor, v.ReachX = peer.MedianMS/rr.FloorMS, peer.MedianMS/limitMS
	}
	fastSrv, haveFast := serverExtra(rep, "fast")
	if peer != nil && haveFast {
		v.FastMS = fastSrv
		v.FastCap = &fastCap{MS: rr.FloorMS + fastSrv, Ratio: peer.MedianMS / (rr.FloorMS + fastSrv)}
	}
	switch {
	case peer != nil && v.MarginMS <= 0:
		v.BelowFloor = true
	case peer != nil && haveFast && v.MarginMS < fastSrv:
		v.AtServerCeiling = true
	case head.CacheWaitMS >= v.ShortMS:
		v.CacheCovers = true
	case head.CacheWaitMS > cacheWaitNoticeMS:
		v.CacheHelps = true
	}
	return say("gap why", v), say("gap fix", v)
}

// breakdownView is where pipebind warm's time above the floor goes, and
// which fixes apply.
type breakdownView struct {
	Group       *ratioRow
	Head, Floor *benchRow
	AboveMS     float64
	// Server: Prosody's own work on the head's burst, when it was timed.
	Server    *burstCost
	CPUOverMS float64
	// CacheFix: the login waited for the cache long enough to mention;
	// FASTFix: the head is PLAIN, and Prosody's work on both bursts.
	CacheFix bool
	FASTFix  *struct{ PlainMS, FastMS float64 }
}

// warmBreakdown says once where pipebind warm's time above the floor goes
// in the target group, and what would shorten it; "" without a floor.
func warmBreakdown(rep *benchReport, rr *ratioRow) string {
	head := findRow(rep, rr.Server, rr.RTTms, rr.PipebindClient)
	floor := findRow(rep, rr.Server, rr.RTTms, "floor")
	if head == nil || floor == nil || floor.MedianMS == 0 {
		return ""
	}
	burst := "plain"
	if rr.PipebindClient == "pipebind-warm-fast" {
		burst = "fast"
	}
	v := breakdownView{Group: rr, Head: head, Floor: floor, AboveMS: rr.PipebindMS - rr.FloorMS,
		CPUOverMS: head.CPUms - floor.CPUms, CacheFix: head.CacheWaitMS > cacheWaitNoticeMS}
	if x, ok := serverExtra(rep, burst); ok {
		v.Server = &burstCost{burst, x}
	}
	if fx, ok := serverExtra(rep, "fast"); ok && burst == "plain" {
		if px, ok := serverExtra(rep, "plain"); ok {
			v.FASTFix = &struct{ PlainMS, FastMS float64 }{px, fx}
		}
	}
	return say("warm breakdown", v)
}

// serverExtra is Prosody's time for name's first flight over the header's.
func serverExtra(rep *benchReport, name string) (float64, bool) {
	for _, c := range rep.ServerCosts {
		if c.Name == name {
			return c.OverHeaderMS, true
		}
	}
	return 0, false
}

// mdReport is what the template "report" renders: the run, and what the
// Go side derives from it.
type mdReport struct {
	Command, Date string
	Machine       machineInfo
	// TargetCells are the rows of the targets table; Missed the targets
	// missed; Breakdown, when one of them is on pipebind warm's time.
	TargetCells [][]string
	Missed      []missedTarget
	Breakdown   string
	Ratios      []ratioRow
	RatioHeader []string
	RatioCells  [][]string
	RowHeader   []string
	Results     []resultGroup
	Storm       *stormResult
	ServerCosts []*serverCost
	Catchup     *catchupView
	Profile     *profileResult
	// Packet: the run has rows on the packet-level path (-packet);
	// ProxyTargets: it has the targets of the proxy rows.
	Packet, ProxyTargets bool
}

type missedTarget struct{ Name, Where, Measured, Why, Fix string }

// resultGroup is the table of one server at one RTT.
type resultGroup struct {
	Server string
	RTTms  float64
	N      int // of its first row
	Cells  [][]string
}

// catchupView is the catch-up, with the percentages its text gives and
// which reading of stream management's cost applies (at most one).
type catchupView struct {
	*catchupResult
	PageSize                    int
	FillS                       float64
	OwnPct, FasterPct, SMPct    float64
	SMCosts, NoSMSlower, SMSame bool
}

func renderMarkdown(rep *benchReport) string {
	v := mdReport{Command: rep.Command, Date: rep.Date, Machine: rep.Machine, Ratios: rep.Ratios, RatioHeader: ratioHeader, RowHeader: rowHeader,
		Storm: rep.Storm, ServerCosts: rep.ServerCosts, Profile: rep.Profile}
	ts := targets(rep)
	v.ProxyTargets = targetGroup(rep) != nil
	for _, t := range ts {
		v.TargetCells = append(v.TargetCells, t.cells())
		if t.measuredOK && !t.met {
			v.Missed = append(v.Missed, missedTarget{t.name, t.where, t.measured, t.why, t.fix})
		}
	}
	if rr := targetGroup(rep); rr != nil && slices.ContainsFunc(ts, func(t target) bool { return t.warm && t.measuredOK && !t.met }) {
		v.Breakdown = warmBreakdown(rep, rr)
	}
	for _, r := range rep.Ratios {
		v.RatioCells = append(v.RatioCells, ratioCells(r))
	}
	for _, r := range rep.Rows {
		v.Packet = v.Packet || isPacket(r.Server)
		if n := len(v.Results); n == 0 || v.Results[n-1].Server != r.Server || v.Results[n-1].RTTms != r.RTTms {
			v.Results = append(v.Results, resultGroup{Server: r.Server, RTTms: r.RTTms, N: r.N})
		}
		g := &v.Results[len(v.Results)-1]
		g.Cells = append(g.Cells, rowCells(r))
	}
	if c := rep.Catchup; c != nil {
		cv := &catchupView{catchupResult: c, PageSize: catchupPageSize, FillS: c.FillMS / 1000,
			OwnPct: 100 * (c.NoSMRatio - 1), FasterPct: 100 * (1 - c.NoSMRatio), SMPct: 100 * (c.Ratio - c.NoSMRatio)}
		if c.Ratio > 0 && c.NoSMRatio > 0 {
			switch {
			case c.Ratio > c.NoSMRatio*1.05:
				cv.SMCosts = true
			case c.NoSMRatio > c.Ratio*1.05:
				cv.NoSMSlower = true
			default:
				cv.SMSame = true
			}
		}
		v.Catchup = cv
	}
	return say("report", v)
}

// pprofLines is go tool pprof -top output without the header lines that
// name the binary and the temporary file.
func pprofLines(top string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(top, "\n"), "\n") {
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Type:") || strings.HasPrefix(l, "Time:") {
			continue
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
