package xmpptest

import (
	"encoding/xml"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"
)

// naiveLog is the ConnLog event bookkeeping without runs: one Event per
// item, as the log kept it before runs. The run-length log must list the
// same events.
type naiveLog struct {
	events   []Event
	outs     int
	arrivals []arrival
	received int64
}

func (l *naiveLog) recordOut(n xml.Name, end bool, at time.Time) {
	l.events = append(l.events, Event{Name: n, End: end, ServerWritesBefore: l.outs, At: at})
	l.outs++
}

func (l *naiveLog) arrived(n int, at time.Time) {
	l.received += int64(n)
	l.arrivals = append(l.arrivals, arrival{end: l.received, writes: l.outs, at: at})
}

func (l *naiveLog) recordIn(n xml.Name, end bool, off int64) {
	i := sort.Search(len(l.arrivals), func(i int) bool { return l.arrivals[i].end > off })
	ev := Event{In: true, Name: n, End: end, ServerWritesBefore: l.outs}
	if i < len(l.arrivals) {
		ev.ServerWritesBefore = l.arrivals[i].writes
		ev.At = l.arrivals[i].at
		l.arrivals = l.arrivals[i:]
	}
	pos, skip := len(l.events), l.outs-ev.ServerWritesBefore
	for skip > 0 && pos > 0 {
		pos--
		if !l.events[pos].In {
			skip--
		}
	}
	l.events = slices.Insert(l.events, pos, ev)
}

// TestConnLogRuns drives the log and the naive log with the same random
// mix of server writes (runs of results, single items), client data and
// client elements (pipelined into the middle of runs), and compares what
// Events, Received and Sent return. At is compared for items that start a
// run; a run's later items share its first At by design.
func TestConnLogRuns(t *testing.T) {
	names := []xml.Name{name(nsClient, "message"), name(nsClient, "iq"), name(nsSM, "r"), streamName}
	for seed := range 200 {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		l := newConnLog(true, "test")
		var ref naiveLog
		var off int64
		for range 60 {
			switch r.IntN(4) {
			case 0, 1: // a burst of server writes, maybe a run
				nm := names[r.IntN(len(names))]
				end := nm == streamName && r.IntN(4) == 0
				for range 1 + r.IntN(5) {
					at := time.Unix(int64(r.IntN(1000)), 0)
					l.recordOut(nm, end, at)
					ref.recordOut(nm, end, at)
				}
			case 2: // client bytes arrive
				n := 1 + r.IntN(50)
				at := time.Unix(int64(r.IntN(1000)), 0)
				l.arrived(n, at)
				ref.arrived(n, at)
			case 3: // the server decodes a client element ending at off
				if off < ref.received {
					off += 1 + r.Int64N(ref.received-off)
					nm := names[r.IntN(len(names))]
					l.recordIn(nm, false, off-1)
					ref.recordIn(nm, false, off-1)
				}
			}
		}
		got, want := l.Events(), ref.events
		if len(got) != len(want) {
			t.Fatalf("seed %d: %d events, want %d", seed, len(got), len(want))
		}
		var prevOut *Event // the previous Out item, In events aside
		for i := range got {
			g, w := got[i], want[i]
			if !w.In {
				if prevOut != nil && prevOut.Name == w.Name && !prevOut.End && !w.End {
					// A later item of a run: it shares the run's first At.
					g.At, w.At = time.Time{}, time.Time{}
				}
				prevOut = &want[i]
			}
			if g != w {
				t.Fatalf("seed %d: event %d = %+v, want %+v", seed, i, got[i], want[i])
			}
		}
		for _, nm := range names {
			if got, ok := l.Sent(nm.Local); ok {
				i := slices.IndexFunc(want, func(e Event) bool { return !e.In && e.Name.Local == nm.Local && !e.End })
				if i < 0 || got.ServerWritesBefore != want[i].ServerWritesBefore {
					t.Fatalf("seed %d: Sent(%s) = %+v", seed, nm.Local, got)
				}
			}
		}
	}
}

// TestConnLogBounded: a long run of results costs the log one entry.
func TestConnLogBounded(t *testing.T) {
	l := newConnLog(true, "test")
	for range 100_000 {
		l.recordOut(name(nsClient, "message"), false, time.Now())
	}
	l.recordOut(name(nsClient, "iq"), false, time.Now())
	if n := len(l.events); n != 2 {
		t.Fatalf("%d log entries for two runs", n)
	}
	if ev := l.Events(); len(ev) != 100_001 || ev[100_000].ServerWritesBefore != 100_000 {
		t.Fatalf("Events: %d", len(ev))
	}
}
