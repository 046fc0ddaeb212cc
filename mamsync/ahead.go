package mamsync

import (
	"context"
	"encoding/xml"
	"fmt"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
)

// Ahead is a first page query written ahead of the session being served:
// in the login's own write, right behind the authentication, so that the
// server answers it in the login's round trip (NewAhead). Its results and
// answer are collected like those of the Syncer's own queries once it is
// adopted (Syncer.Adopt), and ReconcileAhead pages on from it. It asks with
// RSM from the store's cursor (no metadata query: the first page itself
// says whether the store is level), which Prosody 13 and ejabberd 24.12
// both accept.
type Ahead struct {
	// ID is the id of the query's IQ (and its queryid): its answer, an IQ
	// the session receives outside any SendIQ, goes to AheadQuery.Answer.
	ID       string
	after    string
	pageSize int
}

// NewAhead returns a first page query from cursor (the store's cursor, ""
// when it holds nothing), of pageSize results (zero: 250, the Syncer's
// default; it must be the Syncer's PageSize), and its request.
func NewAhead(cursor string, pageSize int) (Ahead, []byte) {
	if pageSize <= 0 {
		pageSize = defaultPageSize
	}
	a := Ahead{ID: randomID(), after: cursor, pageSize: pageSize}
	return a, queryRequest(a.ID, queryOpts{rsmAfter: cursor}, pageSize)
}

// AheadQuery is an Ahead the Syncer collects the results of.
type AheadQuery struct {
	p       *pending
	once    sync.Once
	timeout *time.Timer
}

// Adopt makes the Syncer collect a's results: call it before the session
// that a was written on reads anything after the login. The answer must
// then be handed to Answer; if it does not come within Config.QueryTimeout
// the query fails with a timeout.
func (s *Syncer) Adopt(a Ahead) *AheadQuery {
	o := queryOpts{rsmAfter: a.after, want: s.cfg.PageSize}
	q := &AheadQuery{p: s.register(a.ID, o, true)}
	q.p.c.max = a.pageSize
	if d := s.cfg.QueryTimeout; d > 0 {
		q.timeout = time.AfterFunc(d, func() {
			q.deliver(answer{err: fmt.Errorf("mamsync: query: %w", context.DeadlineExceeded)})
		})
	}
	return q
}

// Answer takes the IQ answering the query, serialized: a result with its
// <fin/>, or an error. Later calls do nothing.
func (q *AheadQuery) Answer(raw []byte) {
	fin, err := parseAnswer(raw)
	q.deliver(answer{fin: fin, err: err})
}

// AnswerElement is Answer for the IQ as a session's handler receives it:
// its start element, and r yielding the rest of it.
func (q *AheadQuery) AnswerElement(start xml.StartElement, r xml.TokenReader) error {
	raw, err := encode(xmlstream.MultiReader(xmlstream.Token(start), xmlstream.Inner(r), xmlstream.Token(start.End())))
	if err != nil {
		q.deliver(answer{err: fmt.Errorf("mamsync: query answer: %w", err)})
		return err
	}
	q.Answer(raw)
	return nil
}

func (q *AheadQuery) deliver(a answer) {
	q.once.Do(func() {
		if q.timeout != nil {
			q.timeout.Stop()
		}
		q.p.answer <- a
	})
}

// ReconcileAhead is Reconcile whose first page was asked ahead (q): it pages
// from the cursor until the server says the result set is complete; a first
// page that is complete and empty means the store was level. Live messages
// are held and merged as in Reconcile.
func (s *Syncer) ReconcileAhead(ctx context.Context, sess *xmpp.Session, q *AheadQuery) (Report, error) {
	return s.run(ctx, sess, Target{}, q.p)
}
