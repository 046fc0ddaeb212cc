package client_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"runtime/metrics"
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

// heapPeak samples, every millisecond until stop is called, runtime
// MemStats.HeapInuse and the runtime/metrics /gc/heap/live:bytes (the heap
// marked live by the latest GC), and returns the largest growth of each over
// its value at start.
//
// HeapInuse includes the garbage the GC pacer lets accumulate, which grows
// with the live heap (GOGC=100: up to twice it); the in-process server's
// archive is live heap, so HeapInuse's peak grows with the archive even when
// the client holds nothing more. The live heap is what the catch-up retains.
type heapPeak struct {
	baseInuse, baseLive uint64
	peakInuse, peakLive atomic.Uint64
	done                chan struct{}
	wg                  sync.WaitGroup
}

func readHeap() (inuse, live uint64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return ms.HeapInuse, s[0].Value.Uint64()
}

func startHeapPeak() *heapPeak {
	runtime.GC()
	h := &heapPeak{done: make(chan struct{})}
	h.baseInuse, h.baseLive = readHeap()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			inuse, live := readHeap()
			if inuse > h.peakInuse.Load() {
				h.peakInuse.Store(inuse)
			}
			if live > h.peakLive.Load() {
				h.peakLive.Store(live)
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

// stop returns the peak growths of HeapInuse and of the live heap, in
// bytes, since start.
func (h *heapPeak) stop() (inuse, live uint64) {
	close(h.done)
	h.wg.Wait()
	growth := func(p, base uint64) uint64 {
		if p > base {
			return p - base
		}
		return 0
	}
	return growth(h.peakInuse.Load(), h.baseInuse), growth(h.peakLive.Load(), h.baseLive)
}

// BenchmarkCatchUp100k measures a first login's catch-up of a 100,000-message
// archive (random opaque stanza-ids, as xmpptest and Prosody issue) from the
// in-process server into a fresh cache file, end to end: MAM paging over
// TLS, parsing, storing, OnMessage. It reports msgs/s (messages stored per
// second of Dial + SyncReport), peak-heap-MB: the largest growth of runtime
// HeapInuse over its value before Dial, and peak-live-MB: the largest growth
// of the live heap (/gc/heap/live:bytes), both sampled every millisecond
// (see heapPeak). The server's archive, injected before, is not counted;
// the server's own page buffers are, since it runs in the same process.
//
// The n=20000 case is the same at a fifth of the gap: its peak should be
// about the same as n=100000's, as the catch-up is streamed page by page
// (bounded batches), not buffered whole.
func BenchmarkCatchUp100k(b *testing.B) {
	for _, n := range []int{20_000, 100_000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) { benchCatchUp(b, n) })
	}
}

func benchCatchUp(b *testing.B, n int) {
	s := xmpptest.NewServer(xmpptest.Config{
		Users:      map[string]string{"alice": "alice-pw"},
		MAMPageMax: benchPage,
	})
	defer s.Close()
	s.InjectArchiveBulk("alice", "bob@localhost", n, true)
	var (
		elapsed time.Duration
		peak    uint64
		live    uint64
	)
	for b.Loop() {
		b.StopTimer()
		db, err := cache.Open(context.Background(), filepath.Join(b.TempDir(), "cache.db"))
		if err != nil {
			b.Fatal(err)
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
		b.StartTimer()
		start := time.Now()
		c, err := client.Dial(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		rep, err := c.SyncReport(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		b.StopTimer()
		pi, pl := hp.stop()
		peak, live = max(peak, pi), max(live, pl)
		c.Close()
		if rep.Stored != n || delivered.Load() != int64(n) {
			b.Fatalf("stored %d, delivered %d; want %d", rep.Stored, delivered.Load(), n)
		}
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*n)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(live)/(1<<20), "peak-live-MB")
}

// BenchmarkSQLiteBaseline100k is the floor the catch-up is measured against:
// the same 100,000 messages (ids, peer and bodies from the server's archive,
// a raw stanza of the size the server sends), inserted as fast as SQLite
// takes them into a bare table (no index, no constraint) of a fresh file
// opened with the cache's settings (WAL, synchronous=NORMAL), one
// transaction of 250-row INSERTs per 1,000 rows, one prepared statement.
func BenchmarkSQLiteBaseline100k(b *testing.B) {
	const n = 100_000
	s := xmpptest.NewServer(xmpptest.Config{Users: map[string]string{"alice": "alice-pw"}})
	defer s.Close()
	s.InjectArchiveBulk("alice", "bob@localhost", n, true)
	arch := s.Archive("alice")
	type row struct {
		id, peer, body string
		ts             int64
		raw            []byte
	}
	rows := make([]row, len(arch))
	t0 := time.Now().UnixMicro()
	for i, m := range arch {
		raw := fmt.Sprintf(`<message xmlns="jabber:client" from="%s/res" to="alice@localhost" type="chat" id="msg-%s">`+
			`<body>%s</body><stanza-id xmlns="urn:xmpp:sid:0" by="alice@localhost" id="%s"/>`+
			`<delay xmlns="urn:xmpp:delay" stamp="2025-01-01T00:00:00.000000Z"/></message>`,
			m.Peer, m.StanzaID, m.Body, m.StanzaID)
		rows[i] = row{m.StanzaID, m.Peer, m.Body, t0 + int64(i), []byte(raw)}
	}
	const (
		rowsPerStmt = 250
		rowsPerTx   = 1000
	)
	ctx := context.Background()
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "bare.db")
		q := url.Values{}
		q.Set("_synchronous", "NORMAL")
		q.Set("_journal_mode", "WAL")
		q.Set("_txlock", "immediate")
		db, err := sql.Open("sqlite3", (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `CREATE TABLE bare (
	account TEXT, stanza_id TEXT, origin_id TEXT, peer TEXT, dir INTEGER, ts INTEGER, body TEXT, raw BLOB)`); err != nil {
			b.Fatal(err)
		}
		stmt, err := db.PrepareContext(ctx, "INSERT INTO bare VALUES "+
			strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?),", rowsPerStmt), ","))
		if err != nil {
			b.Fatal(err)
		}
		args := make([]any, 0, 8*rowsPerStmt)
		b.StartTimer()
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
		elapsed += time.Since(start)
		b.StopTimer()
		stmt.Close()
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*n)/elapsed.Seconds(), "msgs/s")
}
