package mamsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"mellium.im/xmpp"
)

// Storing is group-committed: the fetched messages are stored in order by
// one storer, each batch in one transaction that also moves the cursor to
// the batch's last message (so the cursor only ever names a stored
// message), and a batch is whatever was fetched while the previous one was
// being stored, up to maxBatch messages. When the store keeps up, every
// MAM page is stored as it comes; when it does not, transactions grow,
// which is what makes SQLite faster per message (the random stanza-ids of
// Prosody and xmpptest dirty an index page per message; a larger
// transaction dirties each page once). Memory is bounded by two batches
// and the pages in flight, whatever the size of the gap.
const maxBatch = 4000

// testHookBatchFull, when set (by tests), is called each time the paging
// stops taking pages because the batch it gathers is full while the storer
// is busy: from then on the fetcher waits, and memory stops growing.
var testHookBatchFull func()

// fetchedPage is one MAM page, as the fetcher in page hands it over.
type fetchedPage struct {
	msgs     []Message
	count    int  // fin.Count, or -1
	done     bool // the last page: the paging reached its target
	err      error
	progress bool // a page was fetched (msgs and count are meaningful)
}

// stored is what the storer reports for a batch, returning its emptied
// slice for reuse.
type stored struct {
	res   AppendResult
	err   error
	batch []Message
}

// abandonWait bounds how long a finished paging waits for the answer to a
// query it sent ahead and no longer needs (see fetch), before giving up on
// it. A server answers every query, in order; this only bounds one that
// does not.
const abandonWait = 10 * time.Second

// page runs the MAM queries from after (exclusive) to the target.
//
// Three parts run at once: the fetcher (fetch) sends the queries, the next
// one as soon as the current page is full; this goroutine gathers the
// pages into batches (gatherer); the storer stores them. When a query
// fails, what was fetched before it is stored first.
func (s *Syncer) page(ctx context.Context, sess *xmpp.Session, after string, t Target, first *pending, rep *Report) (err error) {
	fctx, cancel := context.WithCancel(ctx)
	pages := make(chan fetchedPage, 1)
	fetcherDone := make(chan struct{})
	go func() {
		defer close(fetcherDone)
		defer close(pages)
		s.fetch(fctx, sess, after, t, first, pages)
	}()
	toStore, results := s.storer(ctx)
	defer func() {
		close(toStore)
		for range results { // the storer's last batch
		}
		if err == nil {
			// Done: the fetcher may still wait for the answer to a query it
			// sent ahead; the server answers it.
			select {
			case <-fetcherDone:
			case <-time.After(abandonWait):
			}
		}
		cancel()
		for range pages { // unblock the fetcher
		}
		<-fetcherDone
	}()
	g := gatherer{s: s, rep: rep}
	return g.run(ctx, pages, toStore, results)
}

// storer stores the batches sent to toStore, in order, on a goroutine of
// its own that ends when toStore is closed; each result comes back with
// the batch's emptied slice for reuse.
func (s *Syncer) storer(ctx context.Context) (chan<- []Message, <-chan stored) {
	toStore := make(chan []Message)
	results := make(chan stored)
	go func() {
		defer close(results)
		for batch := range toStore {
			res, err := s.append(ctx, batch, batch[len(batch)-1].StanzaID)
			clear(batch) // the messages are the caller's (res.Added) now
			results <- stored{res, err, batch[:0]}
		}
	}()
	return toStore, results
}

// gatherer is page's state: the batch it gathers from the fetcher's pages
// and the one the storer holds.
type gatherer struct {
	s        *Syncer
	rep      *Report
	batch    []Message
	spare    []Message // the other batch's slice, back from the storer
	reported Progress  // as last given to OnProgress
	busy     bool      // the storer holds a batch
	storing  int       // the messages of that batch
	end      bool      // the fetcher has said its last
	endErr   error     // and it was this error
	endFound bool      // and it was the last page, not an error
}

// run gathers until the fetcher has said its last and everything fetched
// is stored, or a store fails.
func (g *gatherer) run(ctx context.Context, pages <-chan fetchedPage, toStore chan<- []Message, results <-chan stored) error {
	for !g.end || g.busy || len(g.batch) > 0 {
		var (
			in  <-chan fetchedPage
			out chan<- []Message
		)
		if !g.end && len(g.batch) < maxBatch {
			in = pages
		} else if !g.end && g.busy && testHookBatchFull != nil {
			testHookBatchFull()
		}
		if !g.busy && len(g.batch) > 0 {
			out = toStore
		}
		select {
		case p, ok := <-in:
			g.take(p, ok)
		case out <- g.batch:
			g.busy, g.storing, g.batch, g.spare = true, len(g.batch), g.spare, nil
		case r := <-results:
			if err := g.stored(r); err != nil {
				return err
			}
		}
	}
	return g.finish(ctx)
}

// take adds a fetched page to the batch (ok false: the fetcher is done).
func (g *gatherer) take(p fetchedPage, ok bool) {
	if !ok {
		g.end = true
		return
	}
	if p.progress {
		g.rep.Pages++
		g.rep.Fetched += len(p.msgs)
		if g.rep.Expected < 0 && p.count >= 0 {
			g.rep.Expected = p.count
		}
		g.batch = append(g.batch, p.msgs...)
		g.rep.PeakBuffered = max(g.rep.PeakBuffered, len(g.batch)+g.storing)
	}
	switch {
	case p.err != nil:
		g.end, g.endErr = true, p.err
	case p.done:
		g.end, g.endFound = true, true
	}
}

// stored takes the storer's result for the batch it held.
func (g *gatherer) stored(r stored) error {
	g.busy, g.storing = false, 0
	if g.batch == nil {
		g.batch = r.batch
	} else {
		g.spare = r.batch
	}
	if r.err != nil {
		return r.err
	}
	g.rep.Stored += len(r.res.Added)
	g.rep.Duplicates += r.res.Duplicates
	if g.s.cfg.OnProgress != nil {
		g.s.cfg.OnProgress(g.rep.Progress)
		g.reported = g.rep.Progress
	}
	return nil
}

// finish says how the paging ended, once everything fetched is stored.
func (g *gatherer) finish(ctx context.Context) error {
	if g.endErr != nil {
		return g.endErr
	}
	if !g.endFound {
		// The fetcher stopped without a last page: ctx ended.
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("mamsync: query: %w", err)
		}
		return errors.New("mamsync: paging stopped")
	}
	if g.rep.Progress != g.reported && g.s.cfg.OnProgress != nil {
		g.s.cfg.OnProgress(g.rep.Progress) // the last pages stored nothing
	}
	return nil
}

// fetch pages the archive for page and sends each page to pages, until the
// target, an error (sent as the last page) or ctx's end.
//
// Queries are pipelined: as soon as the current page holds as many results
// as the server gives per page, the next query is sent, after the last
// result so far, without waiting for the <fin/>. The server works on the
// next page while the client reads this one. If the <fin/> then says
// something else (the result set is complete, or its <last/> is not that
// result), the query sent ahead is dropped and its results are ignored.
func (s *Syncer) fetch(ctx context.Context, sess *xmpp.Session, after string, t Target, first *pending, pages chan<- fetchedPage) {
	f := fetcher{s: s, sess: sess, count: -1, o: queryOpts{afterID: after}}
	if first != nil {
		// A first page asked ahead (NewAhead): RSM from the cursor.
		f.o = queryOpts{rsmAfter: first.rsmAfter}
	}
	defer f.wg.Wait() // every answer is read (or ctx ended)
	send := func(p fetchedPage) bool {
		select {
		case pages <- p:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if t.Known {
		f.o.target = t.LatestID
	}
	s.mu.Lock()
	f.o.want = s.pageHint
	s.mu.Unlock()
	if f.o.want <= 0 || f.o.want > s.cfg.PageSize {
		f.o.want = s.cfg.PageSize
	}
	if f.cur = first; f.cur == nil {
		f.cur = s.send(ctx, sess, &f.wg, f.o)
	}
	defer func() {
		s.drop(f.cur)
		s.drop(f.ahead)
	}()
	for n := 1; ; n++ {
		msgs, fin, ok, err := f.await(ctx, n)
		switch {
		case !ok:
			return
		case f.cur.afterIDSent && errors.Is(err, errBadRequest) && len(msgs) == 0 && n == 1:
			// The server rejects after-id: ask again, paging by RSM.
			f.restart(ctx)
			n--
			continue
		case err != nil:
			send(fetchedPage{err: err})
			return
		}
		p := f.page(msgs, fin)
		if !send(p) || p.done || p.err != nil {
			return
		}
		if n >= s.cfg.MaxPages {
			send(fetchedPage{err: fmt.Errorf("%w (%d)", ErrTooManyPages, s.cfg.MaxPages)})
			return
		}
		f.next(ctx)
	}
}

// fetcher is fetch's state: the query whose page is being read, the one
// sent ahead, and where the paging stands.
type fetcher struct {
	s       *Syncer
	sess    *xmpp.Session
	wg      sync.WaitGroup
	o       queryOpts
	cur     *pending
	ahead   *pending // the next query, sent ahead
	fetched int      // results so far
	count   int      // the RSM count, -1 while unknown
	cycle   cycleCheck
}

// await waits for the current query's answer, sending the next query ahead
// as soon as the page is full. ok is false when ctx ended.
func (f *fetcher) await(ctx context.Context, n int) (msgs []Message, fin Fin, ok bool, err error) {
	for {
		select {
		case <-f.cur.c.full:
			// The page is full: unless it is the last, the next page
			// starts after its last result.
			last := f.count >= 0 && f.fetched+f.o.want >= f.count
			if f.ahead == nil && !last && n < f.s.cfg.MaxPages {
				next := f.o
				next.rsmAfter = f.s.lastID(f.cur)
				f.ahead = f.s.send(ctx, f.sess, &f.wg, next)
			}
		case a := <-f.cur.answer:
			msgs, fin, err = f.s.finish(f.cur, a)
			return msgs, fin, true, err
		case <-f.cur.c.over:
			return nil, Fin{}, true, f.s.overflowed(f.cur)
		case <-ctx.Done():
			return nil, Fin{}, false, nil
		}
	}
}

// restart asks the first page again (after the server refused after-id).
func (f *fetcher) restart(ctx context.Context) {
	f.s.drop(f.ahead)
	f.ahead = nil
	f.cur = f.s.send(ctx, f.sess, &f.wg, f.o)
}

// page makes the fetched page of msgs and fin, and moves the paging past it.
func (f *fetcher) page(msgs []Message, fin Fin) fetchedPage {
	f.fetched += len(msgs)
	if f.count < 0 && fin.Count >= 0 {
		f.count = fin.Count
	}
	p := fetchedPage{msgs: msgs, count: fin.Count, done: fin.Complete, progress: true}
	if f.o.target != "" {
		if i := slices.IndexFunc(msgs, func(m Message) bool { return m.StanzaID == f.o.target }); i >= 0 {
			// Messages after latest-id reach this session live: they are
			// not stored from the archive.
			p.msgs, p.done = msgs[:i+1], true
		}
	}
	if p.done {
		return p
	}
	next, err := nextPosition(f.o.rsmAfter, msgs, fin, &f.cycle)
	if err != nil {
		// Nothing of a page the paging cannot trust is stored.
		p.msgs, p.err = nil, err
	}
	f.o.rsmAfter = next
	if len(msgs) > 0 && len(msgs) != f.o.want {
		// The server gives another number per page than asked (Prosody
		// caps pages at 50): send the next query ahead at that size.
		f.o.want = len(msgs)
		f.s.mu.Lock()
		f.s.pageHint = f.o.want
		f.s.mu.Unlock()
	}
	return p
}

// next makes the query for the next page current: the one sent ahead if it
// asked for the right position, else a new one.
func (f *fetcher) next(ctx context.Context) {
	if f.ahead != nil && f.ahead.rsmAfter == f.o.rsmAfter {
		f.cur, f.ahead = f.ahead, nil
		return
	}
	f.s.drop(f.ahead)
	f.ahead = nil
	f.cur = f.s.send(ctx, f.sess, &f.wg, f.o)
}
