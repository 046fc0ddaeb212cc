package client_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // the "sqlite3" driver, for the baseline

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
)

// benchPage is both the server's MAM page cap (xmpptest Config.MAMPageMax)
// and the page size the client asks for (Config.SyncPageSize): 1,000
// messages per MAM round trip. mamsync still commits several pages per
// transaction (see mamsync's batching), so this only sets the number of
// round trips and the size of the page buffered in memory.
const benchPage = 1000

// heapPeak samples, every 10 ms until stop is called, the heap in use
// (runtime/metrics /memory/classes/heap/objects:bytes plus
// /memory/classes/heap/unused:bytes: MemStats.HeapInuse, read without
// stopping the world) and /gc/heap/live:bytes (the heap marked live by the
// latest GC), and returns their growth over their values at start: the
// largest of each, and the median of the live heap over the GC cycles. The
// sampling costs the run it measures: runtime.ReadMemStats stops the
// world, and every millisecond it halved the catch-up; reading
// runtime/metrics every millisecond still cost a tenth of its CPU time.
//
// The heap in use includes the garbage the GC pacer lets accumulate, which
// grows with the live heap (GOGC=100: up to twice it), the in-process
// server's archive included. The live heap is what the catch-up retains,
// plus what was allocated while the GC was marking (which that GC counts as
// live): at a few hundred megabytes a second, several megabytes that vary
// from cycle to cycle. Its peak is thus the largest of noisy samples, and a
// longer run takes more of them; the median does not drift with the number
// of cycles.
type heapPeak struct {
	baseInuse, baseLive uint64
	done                chan struct{}
	wg                  sync.WaitGroup
	// Written by the sampler, read after it has stopped.
	peakInuse, peakLive uint64
	lives               []uint64 // the live heap after each GC cycle
}

func readHeap() (inuse, live, cycles uint64) {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"},
	}
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64(), s[2].Value.Uint64(), s[3].Value.Uint64()
}

func startHeapPeak() *heapPeak {
	runtime.GC()
	h := &heapPeak{done: make(chan struct{})}
	var cycles0 uint64
	h.baseInuse, h.baseLive, cycles0 = readHeap()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		last := cycles0
		for {
			inuse, live, cycles := readHeap()
			h.peakInuse = max(h.peakInuse, inuse)
			h.peakLive = max(h.peakLive, live)
			if cycles != last {
				last = cycles
				h.lives = append(h.lives, live)
			}
			select {
			case <-h.done:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

// heapGrowth is what heapPeak measured, in bytes over the start.
type heapGrowth struct {
	peakInuse, peakLive, medianLive uint64
}

// stop ends the sampling and returns the growths since start.
func (h *heapPeak) stop() heapGrowth {
	close(h.done)
	h.wg.Wait()
	growth := func(p, base uint64) uint64 {
		if p > base {
			return p - base
		}
		return 0
	}
	g := heapGrowth{peakInuse: growth(h.peakInuse, h.baseInuse), peakLive: growth(h.peakLive, h.baseLive)}
	if n := len(h.lives); n > 0 {
		slices.Sort(h.lives)
		g.medianLive = growth(h.lives[n/2], h.baseLive)
	}
	return g
}

// BenchmarkCatchUp100k measures the catch-up of a gap in a 100,000-message
// archive (random opaque stanza-ids, as xmpptest and Prosody issue) from the
// in-process server into a cache file, end to end: login, MAM paging over
// TLS, parsing, storing, OnMessage. The gap=100000 case is a first login
// (an empty cache); gap=50000 is a cache that already holds the archive up
// to its last 50,000 messages (its cursor is the message before them). The
// archive is the same in both, so the server's share and the garbage
// collector's pacing are too, and the two cases differ only in the size of
// the gap.
//
// Before the gaps it measures the floor in the same run: bare SQLite
// inserting the same 100,000 rows (sqliteFloor, as
// BenchmarkSQLiteBaseline100k). Each gap reports:
//
//   - msgs/s: messages stored per second of Dial + SyncReport;
//   - x-sqlite: msgs/s over the floor's msgs/s (sqlite-msgs/s);
//   - cpu-us/msg: CPU time of the whole process (client, in-process server,
//     SQLite, runtime) per message stored: it depends much less than
//     msgs/s on what else runs on the machine;
//   - peak-heap-MB: the largest growth, over its value before Dial, of the
//     heap in use (objects, live or not yet swept, and unused heap spans);
//     peak-live-MB and med-live-MB: the largest and the median growth of
//     the live heap (/gc/heap/live:bytes, marked live by each GC), sampled
//     every 10 ms from runtime/metrics (which, unlike runtime.ReadMemStats,
//     does not stop the world; see heapPeak). The server's archive, injected
//     before, is not counted; the server's page buffers are, since it runs
//     in the same process.
//
// The catch-up is streamed (a page at a time, bounded batches): its memory
// does not grow with the gap. peak-buffered-msgs is the most fetched
// messages it held at once (mamsync.Report.PeakBuffered: the batch being
// gathered plus the one being stored), bounded by two batches of at most
// 4,000 messages and a page each, whatever the gap. gap=100000 reports its
// live heap over gap=50000's (when that ran first): peak-live-vs-50k and
// med-live-vs-50k, about 1 (the peak is the noisier; see heapPeak). The smaller gap is 50,000
// rather than less because a gap of a few thousand messages ends before the
// catch-up reaches its steady state (mamsync's bounded backlog filled, the
// GC pacer settled): at 20,000 the live heap is still lower, at 50,000 it is
// the same as at 100,000.
func BenchmarkCatchUp100k(b *testing.B) {
	const archive = 100_000
	s := xmpptest.NewServer(xmpptest.Config{
		Users:      map[string]string{"alice": "alice-pw"},
		MAMPageMax: benchPage,
	})
	defer s.Close()
	s.InjectArchiveBulk("alice", "bob@localhost", archive, true)
	floor := sqliteFloor(b, benchRows(s.Archive("alice")))
	gaps := map[int]heapGrowth{}
	for _, gap := range []int{50_000, archive} {
		b.Run(fmt.Sprintf("gap=%d", gap), func(b *testing.B) { benchCatchUp(b, s, gap, floor, gaps) })
	}
}

func benchCatchUp(b *testing.B, s *xmpptest.Server, gap int, floor float64, gaps map[int]heapGrowth) {
	ctx := context.Background()
	arch := s.Archive("alice")
	var (
		elapsed, cpu time.Duration
		cpuOK        = true
		mem          heapGrowth
		buffered     int // mamsync's Report.PeakBuffered, the largest
	)
	for b.Loop() {
		b.StopTimer()
		db, err := cache.Open(ctx, filepath.Join(b.TempDir(), "cache.db"))
		if err != nil {
			b.Fatal(err)
		}
		if gap < len(arch) {
			// The cache holds the archive up to the gap: its cursor is the
			// message before it.
			m := arch[len(arch)-gap-1]
			seed := cache.Message{StanzaID: m.StanzaID, Peer: m.Peer, Direction: cache.DirectionIn, Time: time.Now(), Body: m.Body}
			if _, _, err := db.AppendMessages(ctx, "alice@"+s.Domain(), []cache.Message{seed}, m.StanzaID); err != nil {
				b.Fatal(err)
			}
		}
		var delivered atomic.Int64
		cfg := client.Config{
			JID:          jid.MustParse("alice@" + s.Domain()),
			Password:     "alice-pw",
			Addr:         s.DirectTLSAddr(),
			TLS:          client.TLSDirect,
			TLSConfig:    s.TLSConfig(),
			Cache:        db,
			SyncPageSize: benchPage,
			OnMessage:    func(cache.StoredMessage) { delivered.Add(1) },
		}
		hp := startHeapPeak()
		cpu0, ok0 := processCPU()
		b.StartTimer()
		start := time.Now()
		c, err := client.Dial(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		rep, err := c.SyncReport(ctx)
		if err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		b.StopTimer()
		buffered = max(buffered, rep.PeakBuffered)
		cpu1, ok1 := processCPU()
		cpu += cpu1 - cpu0
		cpuOK = cpuOK && ok0 && ok1
		g := hp.stop()
		mem.peakInuse, mem.peakLive, mem.medianLive = max(mem.peakInuse, g.peakInuse), max(mem.peakLive, g.peakLive), max(mem.medianLive, g.medianLive)
		c.Close()
		if rep.Stored != gap || delivered.Load() != int64(gap) {
			b.Fatalf("stored %d, delivered %d; want %d", rep.Stored, delivered.Load(), gap)
		}
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	rate := float64(b.N*gap) / elapsed.Seconds()
	b.ReportMetric(rate, "msgs/s")
	if floor > 0 {
		b.ReportMetric(floor, "sqlite-msgs/s")
		b.ReportMetric(rate/floor, "x-sqlite")
	}
	if cpuOK {
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*gap), "cpu-us/msg")
	}
	b.ReportMetric(float64(mem.peakInuse)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(mem.peakLive)/(1<<20), "peak-live-MB")
	b.ReportMetric(float64(mem.medianLive)/(1<<20), "med-live-MB")
	b.ReportMetric(float64(buffered), "peak-buffered-msgs")
	gaps[gap] = mem
	if small, ok := gaps[50_000]; ok && gap != 50_000 {
		if small.peakLive > 0 {
			b.ReportMetric(float64(mem.peakLive)/float64(small.peakLive), "peak-live-vs-50k")
		}
		if small.medianLive > 0 {
			b.ReportMetric(float64(mem.medianLive)/float64(small.medianLive), "med-live-vs-50k")
		}
	}
}

// benchRow is one message as the SQLite floor inserts it.
type benchRow struct {
	id, peer, body string
	ts             int64
	raw            []byte
}

// benchRows builds the floor's rows from an archive: its ids, peers and
// bodies, and a raw stanza of the size the server sends.
func benchRows(arch []xmpptest.ArchivedMessage) []benchRow {
	rows := make([]benchRow, len(arch))
	t0 := time.Now().UnixMicro()
	for i, m := range arch {
		raw := fmt.Sprintf(`<message xmlns="jabber:client" from="%s/res" to="alice@localhost" type="chat" id="msg-%s">`+
			`<body>%s</body><stanza-id xmlns="urn:xmpp:sid:0" by="alice@localhost" id="%s"/>`+
			`<delay xmlns="urn:xmpp:delay" stamp="2025-01-01T00:00:00.000000Z"/></message>`,
			m.Peer, m.StanzaID, m.Body, m.StanzaID)
		rows[i] = benchRow{m.StanzaID, m.Peer, m.Body, t0 + int64(i), []byte(raw)}
	}
	return rows
}

// sqliteFloor inserts rows as fast as SQLite takes them into a bare table
// (no index, no constraint) of a fresh file opened with the cache's
// settings (WAL, synchronous=NORMAL), one transaction of 250-row INSERTs
// per 1,000 rows, one prepared statement, and returns the rows per second.
func sqliteFloor(b *testing.B, rows []benchRow) float64 {
	const (
		rowsPerStmt = 250
		rowsPerTx   = 1000
	)
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "bare.db")
	q := url.Values{}
	q.Set("_synchronous", "NORMAL")
	q.Set("_journal_mode", "WAL")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite3", (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE bare (
	account TEXT, stanza_id TEXT, origin_id TEXT, peer TEXT, dir INTEGER, ts INTEGER, body TEXT, raw BLOB)`); err != nil {
		b.Fatal(err)
	}
	stmt, err := db.PrepareContext(ctx, "INSERT INTO bare VALUES "+
		strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?),", rowsPerStmt), ","))
	if err != nil {
		b.Fatal(err)
	}
	defer stmt.Close()
	args := make([]any, 0, 8*rowsPerStmt)
	n := len(rows) / rowsPerTx * rowsPerTx
	start := time.Now()
	for lo := 0; lo < n; lo += rowsPerTx {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		ts := tx.StmtContext(ctx, stmt)
		for slo := lo; slo < lo+rowsPerTx; slo += rowsPerStmt {
			args = args[:0]
			for _, r := range rows[slo : slo+rowsPerStmt] {
				args = append(args, "alice@localhost", r.id, "", r.peer, int64(1), r.ts, r.body, r.raw)
			}
			if _, err := ts.ExecContext(ctx, args...); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkSQLiteBaseline100k is the floor the catch-up is measured against
// (sqliteFloor) on its own: the same 100,000 messages (ids, peer and bodies
// from the server's archive, a raw stanza of the size the server sends).
func BenchmarkSQLiteBaseline100k(b *testing.B) {
	const n = 100_000
	s := xmpptest.NewServer(xmpptest.Config{Users: map[string]string{"alice": "alice-pw"}})
	defer s.Close()
	s.InjectArchiveBulk("alice", "bob@localhost", n, true)
	rows := benchRows(s.Archive("alice"))
	var elapsed time.Duration
	for b.Loop() {
		rate := sqliteFloor(b, rows)
		elapsed += time.Duration(float64(n) / rate * float64(time.Second))
	}
	b.ReportMetric(float64(b.N*n)/elapsed.Seconds(), "msgs/s")
}
