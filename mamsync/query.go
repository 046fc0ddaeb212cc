package mamsync

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
)

// collector gathers the results of one MAM query page. Handle fills it on
// the session's Serve goroutine; the query's owner reads it once the
// answer has come (all results precede the answer on the stream).
type collector struct {
	msgs []Message
	bad  int // results past the page size asked for: dropped, and an error

	max    int    // results accepted: the RSM <max/> asked for
	want   int    // signal full when this many results arrived (0: never)
	target string // the reconcile's target id: the page that holds it is the last
	done   bool   // target seen
	full   chan struct{}
	over   chan struct{} // closed at the first result past max
}

func newCollector(max, want int, target string) *collector {
	return &collector{max: max, want: want, target: target, full: make(chan struct{}, 1), over: make(chan struct{})}
}

// overflowed is the error of a page that got more results than it asked for.
func (s *Syncer) overflowed(p *pending) error {
	s.drop(p) // what else comes for it is consumed and dropped
	return fmt.Errorf("%w: more than %d results on a page", ErrPageOverflow, s.cfg.PageSize)
}

// add records one result (called with Syncer.mu held).
func (c *collector) add(m Message) {
	if len(c.msgs) >= c.max {
		// The server sent more than asked: the query fails now, whether or
		// not a <fin/> ever comes, and its page is not stored.
		if c.bad++; c.bad == 1 {
			close(c.over)
		}
		return
	}
	if c.msgs == nil {
		c.msgs = make([]Message, 0, min(c.max, 1024))
	}
	c.msgs = append(c.msgs, m)
	if c.target != "" && m.StanzaID == c.target {
		c.done = true
	}
	if len(c.msgs) == c.want && !c.done {
		select {
		case c.full <- struct{}{}:
		default:
		}
	}
}

// pending is a MAM query on its way: sent, its answer not yet read.
type pending struct {
	qid         string
	c           *collector
	rsmAfter    string // the RSM <after/> it asked for
	afterIDSent bool   // the form carried after-id
	countAll    bool   // the result set is the whole archive (no after-id)
	answer      chan answer
}

type answer struct {
	fin Fin
	err error
}

// queryOpts are a query's parameters.
type queryOpts struct {
	afterID  string // the form's after-id: the result set starts after it
	rsmAfter string // the RSM paging position
	last     bool   // the newest page (RSM <before/>)
	want     int    // signal the collector full at this many results
	target   string // see collector.target
}

// send sends a MAM query without waiting for its answer, which arrives on
// p.answer; wg counts the goroutine that waits for it. The results are
// collected from Handle meanwhile.
func (s *Syncer) send(ctx context.Context, sess *xmpp.Session, wg *sync.WaitGroup, o queryOpts) *pending {
	s.mu.Lock()
	noAfterID := s.noAfterID
	s.mu.Unlock()
	countAll := noAfterID && o.afterID != ""
	if countAll {
		// The server rejects the after-id field (ejabberd 24.12): page the
		// whole archive by RSM from the cursor instead. The result set, and
		// with it the RSM count, is then the whole archive.
		if o.rsmAfter == "" {
			o.rsmAfter = o.afterID
		}
		o.afterID = ""
	}
	p := s.register(randomID(), o, countAll)
	b := bytes.NewBuffer(queryRequest(p.qid, o, s.cfg.PageSize))
	wg.Add(1)
	go func() {
		defer wg.Done()
		qctx, cancel := ctx, context.CancelFunc(func() {})
		if d := s.cfg.QueryTimeout; d > 0 {
			qctx, cancel = context.WithTimeout(ctx, d)
		}
		defer cancel()
		p.answer <- readAnswer(sess.SendIQ(qctx, xml.NewDecoder(b)))
	}()
	return p
}

// register makes a pending query whose results the syncer collects.
func (s *Syncer) register(qid string, o queryOpts, countAll bool) *pending {
	p := &pending{
		qid:         qid,
		rsmAfter:    o.rsmAfter,
		afterIDSent: o.afterID != "",
		countAll:    countAll,
		answer:      make(chan answer, 1),
		c:           newCollector(s.cfg.PageSize, o.want, o.target),
	}
	s.mu.Lock()
	s.queries[p.qid] = p.c
	s.mu.Unlock()
	return p
}

// queryRequest is the IQ of a MAM query with id qid (also its queryid).
func queryRequest(qid string, o queryOpts, pageSize int) []byte {
	var b bytes.Buffer
	b.WriteString("<iq type='set' id='")
	b.WriteString(qid)
	b.WriteString("'><query xmlns='urn:xmpp:mam:2' queryid='")
	b.WriteString(qid)
	b.WriteString("'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>")
	if o.afterID != "" {
		b.WriteString("<field var='after-id'><value>")
		_ = xml.EscapeText(&b, []byte(o.afterID))
		b.WriteString("</value></field>")
	}
	b.WriteString("</x><set xmlns='http://jabber.org/protocol/rsm'><max>")
	b.WriteString(strconv.Itoa(pageSize))
	b.WriteString("</max>")
	switch {
	case o.last:
		b.WriteString("<before/>")
	case o.rsmAfter != "":
		b.WriteString("<after>")
		_ = xml.EscapeText(&b, []byte(o.rsmAfter))
		b.WriteString("</after>")
	}
	b.WriteString("</set></query></iq>")
	return b.Bytes()
}

// readAnswer reads the IQ answering a query.
func readAnswer(resp xmlstream.TokenReadCloser, err error) answer {
	if err != nil {
		return answer{err: fmt.Errorf("mamsync: query: %w", err)}
	}
	defer resp.Close()
	raw, err := encode(resp)
	if err != nil {
		return answer{err: fmt.Errorf("mamsync: query answer: %w", err)}
	}
	fin, err := parseAnswer(raw)
	return answer{fin: fin, err: err}
}

// lastID returns the id of the last result collected so far.
func (s *Syncer) lastID(p *pending) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(p.c.msgs); n > 0 {
		return p.c.msgs[n-1].StanzaID
	}
	return ""
}

// drop stops collecting p's results: those still to come are consumed and
// dropped (a query abandoned, or done).
func (s *Syncer) drop(p *pending) {
	if p == nil {
		return
	}
	s.mu.Lock()
	delete(s.queries, p.qid)
	s.mu.Unlock()
}

// finish returns p's page once its answer a has come.
func (s *Syncer) finish(p *pending, a answer) ([]Message, Fin, error) {
	s.drop(p)
	if a.err != nil {
		if p.afterIDSent && errors.Is(a.err, errBadRequest) {
			s.mu.Lock()
			s.noAfterID = true
			s.mu.Unlock()
			s.log.Debug().Msg("the archive rejects after-id; paging by RSM <after/>")
		}
		return nil, Fin{}, a.err
	}
	s.mu.Lock()
	msgs, bad := p.c.msgs, p.c.bad
	s.mu.Unlock()
	if bad > 0 {
		return nil, Fin{}, fmt.Errorf("%w: %d results on a page of at most %d", ErrPageOverflow, len(msgs)+bad, s.cfg.PageSize)
	}
	fin := a.fin
	if p.countAll {
		fin.Count = -1 // the count of the whole archive, not of what is missing
	}
	return msgs, fin, nil
}

// wait waits for p's answer (bounded by ctx) and returns its page.
func (s *Syncer) wait(ctx context.Context, p *pending) ([]Message, Fin, error) {
	select {
	case a := <-p.answer:
		return s.finish(p, a)
	case <-p.c.over:
		return nil, Fin{}, s.overflowed(p)
	case <-ctx.Done():
		s.drop(p)
		return nil, Fin{}, fmt.Errorf("mamsync: query: %w", ctx.Err())
	}
}

// query sends one MAM query page and returns its results and <fin>,
// retrying once without after-id when the server rejects that field.
func (s *Syncer) query(ctx context.Context, sess *xmpp.Session, o queryOpts) ([]Message, Fin, error) {
	var wg sync.WaitGroup
	defer wg.Wait()
	p := s.send(ctx, sess, &wg, o)
	msgs, fin, err := s.wait(ctx, p)
	if p.afterIDSent && errors.Is(err, errBadRequest) {
		p = s.send(ctx, sess, &wg, o) // now without after-id
		msgs, fin, err = s.wait(ctx, p)
	}
	return msgs, fin, err
}
