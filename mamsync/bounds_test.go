package mamsync

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp"
	"mellium.im/xmpp/stream"

	"github.com/pipebind/pipebind/wire"
)

// A scripted MAM server for the bounds tests: the client side is a real
// mellium session whose Serve loop feeds a Syncer (as the client package
// wires it); the server side reads each query from the other end of a
// net.Pipe and answers it as its script says.

// mamQuery is a query as the fake server reads it.
type mamQuery struct {
	iqID, queryID, after string
	max                  int
}

// mamPage is a scripted answer: results (ids) and the <fin/>.
type mamPage struct {
	ids      []string
	last     string // the RSM <last/>; "" leaves it out
	complete bool
}

// fullPage is a page whose <last/> is its last id.
func fullPage(complete bool, ids ...string) mamPage {
	p := mamPage{ids: ids, complete: complete}
	if len(ids) > 0 {
		p.last = ids[len(ids)-1]
	}
	return p
}

// fakeMAM is a scripted archive server.
type fakeMAM struct {
	script func(q mamQuery) mamPage
	// holdFin makes the server hold back the <fin/> of a page that is not
	// the last until the next query has arrived (or 5 s have passed):
	// it counts in pipelined the pages whose next query came first.
	holdFin bool
	// endless makes the server answer a query after the first with
	// results that never end: no <fin/>, until the connection closes.
	endless bool

	mu        sync.Mutex
	queries   []mamQuery
	pipelined int
}

func (f *fakeMAM) seen() []mamQuery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]mamQuery(nil), f.queries...)
}

// serve answers the queries read from conn until it closes.
func (f *fakeMAM) serve(conn net.Conn) {
	queries := make(chan mamQuery, 16)
	go func() {
		defer close(queries)
		d := xml.NewDecoder(conn)
		for {
			q, err := readQuery(d)
			if err != nil {
				return
			}
			f.mu.Lock()
			f.queries = append(f.queries, q)
			f.mu.Unlock()
			queries <- q
		}
	}()
	var next []mamQuery
	for {
		var q mamQuery
		if len(next) > 0 {
			q, next = next[0], next[1:]
		} else {
			var ok bool
			if q, ok = <-queries; !ok {
				return
			}
		}
		p := f.script(q)
		var b strings.Builder
		for i, id := range p.ids {
			fmt.Fprintf(&b, `<message xmlns='jabber:client' to='alice@example.org/r'><result xmlns='urn:xmpp:mam:2' queryid='%s' id='%s'>`+
				`<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2025-01-01T00:00:%02dZ'/>`+
				`<message xmlns='jabber:client' from='bob@example.org/pc' to='alice@example.org' type='chat'><body>%s</body></message>`+
				`</forwarded></result></message>`, q.queryID, id, i%60, id)
		}
		if _, err := io.WriteString(conn, b.String()); err != nil {
			return
		}
		if f.endless && q.after != "" {
			f.flood(conn, q.queryID)
			return
		}
		if f.holdFin && !p.complete {
			select {
			case q, ok := <-queries:
				if ok {
					next = append(next, q)
					f.mu.Lock()
					f.pipelined++
					f.mu.Unlock()
				}
			case <-time.After(5 * time.Second):
			}
		}
		b.Reset()
		fmt.Fprintf(&b, `<iq xmlns='jabber:client' type='result' id='%s'><fin xmlns='urn:xmpp:mam:2' complete='%t'><set xmlns='http://jabber.org/protocol/rsm'>`, q.iqID, p.complete)
		if p.last != "" {
			fmt.Fprintf(&b, `<first>%s</first><last>%s</last>`, p.ids[0], p.last)
		}
		b.WriteString(`</set></fin></iq>`)
		if _, err := io.WriteString(conn, b.String()); err != nil {
			return
		}
	}
}

// flood writes results for queryID until a write fails.
func (f *fakeMAM) flood(conn net.Conn, queryID string) {
	for n := 0; ; n++ {
		_, err := fmt.Fprintf(conn, `<message xmlns='jabber:client'><result xmlns='urn:xmpp:mam:2' queryid='%s' id='f%d'>`+
			`<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2025-01-01T00:00:00Z'/>`+
			`<message xmlns='jabber:client' from='bob@example.org/pc' to='alice@example.org' type='chat'><body>x</body></message>`+
			`</forwarded></result></message>`, queryID, n)
		if err != nil {
			return
		}
	}
}

// readQuery reads the next MAM query IQ.
func readQuery(d *xml.Decoder) (mamQuery, error) {
	var iq struct {
		ID    string `xml:"id,attr"`
		Query struct {
			QueryID string `xml:"queryid,attr"`
			Set     struct {
				Max   string `xml:"max"`
				After string `xml:"after"`
			} `xml:"http://jabber.org/protocol/rsm set"`
		} `xml:"urn:xmpp:mam:2 query"`
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return mamQuery{}, err
		}
		if start, ok := tok.(xml.StartElement); ok {
			if err := d.DecodeElement(&iq, &start); err != nil {
				return mamQuery{}, err
			}
			break
		}
	}
	n, _ := strconv.Atoi(iq.Query.Set.Max)
	return mamQuery{iqID: iq.ID, queryID: iq.Query.QueryID, after: iq.Query.Set.After, max: n}, nil
}

// syncRun is the outcome of syncAgainst: the Reconcile's report and error,
// the queries the server saw and the store.
type syncRun struct {
	rep     Report
	err     error
	queries []mamQuery
	db      *memStore
}

// syncAgainst runs one Reconcile (unknown target: page until complete)
// against script, with cfg's page size and page limit.
func syncAgainst(t *testing.T, cfg Config, script func(q mamQuery) mamPage) syncRun {
	t.Helper()
	return syncAgainstFake(t, cfg, &fakeMAM{script: script})
}

// syncAgainstFake is syncAgainst with a fake of the caller's.
func syncAgainstFake(t *testing.T, cfg Config, f *fakeMAM) syncRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := newMemStore()
	cfg.Account, cfg.Store = alice, db
	s := New(cfg)

	cc, sc := net.Pipe()
	served := make(chan struct{})
	go func() {
		defer close(served)
		f.serve(sc)
	}()
	// The stream layer under the session, as the client has it: messages
	// reach the syncer off the wire.
	wc := wire.New(cc, wire.Options{})
	wc.EndLogin()
	wc.SetInboundTap(s.HandleRaw)
	sess, err := xmpp.NewSession(ctx, alice.Domain(), alice, wc, 0,
		func(_ context.Context, in, out *stream.Info, _ *xmpp.Session, _ any) (xmpp.SessionState, io.ReadWriter, any, error) {
			in.XMLNS, out.XMLNS = nsClient, nsClient
			return xmpp.Ready | xmpp.Authn | xmpp.Secure, nil, nil, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	serveDone := make(chan error, 1)
	go func() {
		serveDone <- sess.Serve(nil)
	}()
	rep, rerr := s.Reconcile(ctx, sess, Target{})
	cc.Close()
	sc.Close()
	<-served
	<-serveDone
	return syncRun{rep, rerr, f.seen(), db}
}

// ids returns n ids named prefix0 ... prefix(n-1) after offset.
func ids(prefix string, offset, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, offset+i)
	}
	return out
}

// pageOf returns the page after position after of a linear archive of n
// messages "m0" ... , size per page.
func pageOf(after string, n, size int) mamPage {
	from := 0
	if after != "" {
		i, err := strconv.Atoi(strings.TrimPrefix(after, "m"))
		if err != nil {
			return mamPage{complete: true}
		}
		from = i + 1
	}
	to := min(from+size, n)
	return fullPage(to == n, ids("m", from, max(to-from, 0))...)
}

func storedIDs(t *testing.T, db *memStore) []string {
	t.Helper()
	var out []string
	for _, m := range db.messages(alice.String()) {
		out = append(out, m.StanzaID)
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestFakeArchive is the control: a well-behaved archive is stored whole,
// in order, and the queries are pipelined: the next query is sent as soon
// as a page is full, before its <fin/>, for every page but the last (the
// server holds each <fin/> back until the next query has come).
func TestFakeArchive(t *testing.T) {
	f := &fakeMAM{script: func(q mamQuery) mamPage { return pageOf(q.after, 100, q.max) }, holdFin: true}
	r := syncAgainstFake(t, Config{PageSize: 7}, f)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got := storedIDs(t, r.db); !equalStrings(got, ids("m", 0, 100)) || r.rep.Stored != 100 || r.rep.Pages != 15 {
		t.Fatalf("stored %d (%v), report %+v", len(got), got, r.rep)
	}
	if len(r.queries) != 15 {
		t.Errorf("%d queries for 15 pages", len(r.queries))
	}
	for i, q := range r.queries {
		if q.max != 7 {
			t.Errorf("query %d asked for %d, want 7", i, q.max)
		}
		want := ""
		if i > 0 {
			want = fmt.Sprintf("m%d", 7*i-1)
		}
		if q.after != want {
			t.Errorf("query %d after %q, want %q", i, q.after, want)
		}
	}
	if f.pipelined != 14 {
		t.Errorf("%d of 14 next queries came before the <fin/>", f.pipelined)
	}
}

// TestBoundPageOverflow: a page with far more results than the <max/>
// asked for is an error (ErrPageOverflow); the client holds at most a page
// of them, and stores none: the pages before it stay stored.
func TestBoundPageOverflow(t *testing.T) {
	r := syncAgainst(t, Config{PageSize: 10}, func(q mamQuery) mamPage {
		if q.after == "" {
			return pageOf(q.after, 1000, q.max)
		}
		return pageOf(q.after, 1000, 50*q.max) // fifty times too many
	})
	if !errors.Is(r.err, ErrPageOverflow) {
		t.Fatalf("r.err %v, want ErrPageOverflow", r.err)
	}
	if got := storedIDs(t, r.db); !equalStrings(got, ids("m", 0, 10)) {
		t.Fatalf("stored %v, want the first page only", got)
	}
}

// TestBoundPageNeverEnds: results for the client's query that never reach
// a <fin/> fail the sync at page size + 1 (ErrPageOverflow), not when the
// server stops: the client neither waits for the end nor holds more than a
// page; the pages before stay stored.
func TestBoundPageNeverEnds(t *testing.T) {
	start := time.Now()
	f := &fakeMAM{endless: true, script: func(q mamQuery) mamPage { return pageOf(q.after, 1000, q.max) }}
	r := syncAgainstFake(t, Config{PageSize: 10}, f)
	if !errors.Is(r.err, ErrPageOverflow) {
		t.Fatalf("r.err %v after %v, want ErrPageOverflow", r.err, time.Since(start))
	}
	if got := storedIDs(t, r.db); !equalStrings(got, ids("m", 0, 10)) {
		t.Fatalf("stored %v, want the first page only", got)
	}
}

// TestBoundSamePage: a server that answers every query with the same page
// and never says complete is stopped (ErrNoProgress); the page is stored
// once.
func TestBoundSamePage(t *testing.T) {
	r := syncAgainst(t, Config{PageSize: 3}, func(mamQuery) mamPage { return fullPage(false, "a", "b", "c") })
	if !errors.Is(r.err, ErrNoProgress) {
		t.Fatalf("r.err %v, want ErrNoProgress", r.err)
	}
	if got := storedIDs(t, r.db); !equalStrings(got, []string{"a", "b", "c"}) {
		t.Fatalf("stored %v", got)
	}
	if len(r.queries) > 3 {
		t.Errorf("%d queries", len(r.queries))
	}
}

// TestBoundCycle: a server whose pages go round in a loop (A, B, C, A, B,
// C, ...), each page with new-looking positions, is stopped (ErrNoProgress)
// within a bounded number of pages.
func TestBoundCycle(t *testing.T) {
	loop := [][]string{{"a1", "a2"}, {"b1", "b2"}, {"c1", "c2"}, {"d1", "d2"}, {"e1", "e2"}}
	r := syncAgainst(t, Config{PageSize: 2, MaxPages: 1000}, func(q mamQuery) mamPage {
		next := 0
		for i, p := range loop {
			if q.after == p[1] {
				next = (i + 1) % len(loop)
			}
		}
		return fullPage(false, loop[next]...)
	})
	if !errors.Is(r.err, ErrNoProgress) {
		t.Fatalf("r.err %v, want ErrNoProgress", r.err)
	}
	if len(r.queries) > 4*len(loop) {
		t.Errorf("%d queries before the loop was found", len(r.queries))
	}
	if got := storedIDs(t, r.db); len(got) != 2*len(loop) {
		t.Errorf("stored %v, want each page of the loop once", got)
	}
}

// TestBoundCursorStuck: a <last/> that does not move (new results, the
// same <last/>), or that is not the page's last result, and an empty page
// that is not the last, are ErrNoProgress; such a page is not stored.
func TestBoundCursorStuck(t *testing.T) {
	for name, script := range map[string]func(q mamQuery) mamPage{
		"last is not the page's": func(q mamQuery) mamPage {
			p := pageOf(q.after, 100, q.max)
			p.last = "m0"
			return p
		},
		"empty, not complete": func(q mamQuery) mamPage {
			if q.after == "" {
				return pageOf(q.after, 100, q.max)
			}
			return mamPage{}
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := syncAgainst(t, Config{PageSize: 5}, script)
			if !errors.Is(r.err, ErrNoProgress) {
				t.Fatalf("r.err %v, want ErrNoProgress", r.err)
			}
			if got := storedIDs(t, r.db); len(got) > 5 {
				t.Errorf("stored %v", got)
			}
			if len(r.queries) > 3 {
				t.Errorf("%d queries", len(r.queries))
			}
		})
	}
}

// TestBoundMaxPages: an archive without end stops at Config.MaxPages
// (ErrTooManyPages), with those pages stored.
func TestBoundMaxPages(t *testing.T) {
	r := syncAgainst(t, Config{PageSize: 4, MaxPages: 6}, func(q mamQuery) mamPage { return pageOf(q.after, 1<<30, q.max) })
	if !errors.Is(r.err, ErrTooManyPages) {
		t.Fatalf("r.err %v, want ErrTooManyPages", r.err)
	}
	if got := storedIDs(t, r.db); !equalStrings(got, ids("m", 0, 24)) || r.rep.Pages != 6 {
		t.Fatalf("stored %d, %d pages; want 24, 6", len(got), r.rep.Pages)
	}
	if len(r.queries) > 6 {
		t.Errorf("%d queries for a limit of 6 pages", len(r.queries))
	}
}

// TestBoundBuffered: a gap far larger than two batches is streamed. The
// storer is held (OnMessage blocks, as a slow store would) until the
// paging stops taking pages because its batch is full (testHookBatchFull);
// by then it holds at most two batches (the one gathered and the one being
// stored, each at most maxBatch plus a page), and the server has been asked
// for no more than that and the pages in flight. Were the gap buffered
// whole, the server would be asked for all of it first (the script then
// releases the storer, and the test fails).
func TestBoundBuffered(t *testing.T) {
	const (
		n     = 6*maxBatch + 123
		page  = 500
		bound = 2 * (maxBatch + page)
	)
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	testHookBatchFull = free
	t.Cleanup(func() { testHookBatchFull = nil })
	var asked int // messages the server was asked for, before the release
	var mu sync.Mutex
	script := func(q mamQuery) mamPage {
		mu.Lock()
		select {
		case <-release:
		default:
			if asked += q.max; asked > bound+3*page {
				free() // the paging did not stop: let the test end
			}
		}
		mu.Unlock()
		return pageOf(q.after, n, q.max)
	}
	cfg := Config{PageSize: page, OnMessage: func(StoredMessage) { <-release }}
	r := syncAgainst(t, cfg, script)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got := storedIDs(t, r.db); !equalStrings(got, ids("m", 0, n)) {
		t.Fatalf("stored %d messages, want m0...m%d in order", len(got), n-1)
	}
	mu.Lock()
	defer mu.Unlock()
	if asked > bound+3*page {
		t.Fatalf("the server was asked for %d messages while the store was held, want at most %d", asked, bound+3*page)
	}
	if r.rep.PeakBuffered < maxBatch || r.rep.PeakBuffered > bound {
		t.Fatalf("PeakBuffered %d, want between a full batch (%d) and two batches (%d)", r.rep.PeakBuffered, maxBatch, bound)
	}
	t.Logf("%d messages, at most %d buffered; %d asked for while the store was held", n, r.rep.PeakBuffered, asked)
}
