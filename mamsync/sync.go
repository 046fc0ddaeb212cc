package mamsync

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
)

// Errors a Reconcile may return (wrapped), for errors.Is.
var (
	// ErrNoProgress: the server's paging did not advance (a hostile or
	// broken server); the store keeps what was stored before.
	ErrNoProgress = errors.New("mamsync: the archive paging did not advance")
	// ErrTooManyPages: MaxPages was reached before the target.
	ErrTooManyPages = errors.New("mamsync: page limit reached")
	// ErrQuery: the server answered a MAM query with an error.
	ErrQuery = errors.New("mamsync: MAM query failed")
)

// Config configures a Syncer.
type Config struct {
	// Account is the account whose archive is mirrored (bare JID).
	Account jid.JID
	// Store is the local message cache.
	Store *cache.DB
	// PageSize is the RSM <max> asked for; servers cap it (Prosody 50,
	// ejabberd 250). Zero means 250.
	PageSize int
	// MaxPages bounds one Reconcile; zero means 100,000 pages.
	MaxPages int
	// OnMessage is called once for every message newly stored, in store
	// order, from the goroutine that stored it. It must not block for long.
	OnMessage func(cache.StoredMessage)
	// OnProgress is called after each stored batch of pages.
	OnProgress func(Progress)
	// SentMessages returns how many messages the session has written since
	// its login (login.StanzasOut). A live message extends the store
	// directly only while this count is unchanged since the cursor was
	// confirmed by the archive: a message this session sent is archived but
	// not echoed, so after one the archive is asked first. Nil means the
	// session never sends messages.
	SentMessages func() uint32
	// LiveComplete reports that the server delivers to this session, live,
	// every message it archives after the reconcile's target: the session
	// sent available presence before the target was read (or bound with the
	// v0.3.0 draft, whose bind promises it). Without it a live message never
	// extends the store directly: it triggers a catch-up from the archive.
	LiveComplete bool
	// Logger receives debug events; the zero Logger is silent.
	Logger zerolog.Logger
}

// Progress reports a running reconciliation.
type Progress struct {
	Pages      int `json:"pages"`
	Fetched    int `json:"fetched"`
	Stored     int `json:"stored"`
	Duplicates int `json:"duplicates_dropped"`
	// Expected is the number of messages to fetch when the server says
	// (RSM count), -1 otherwise.
	Expected int `json:"expected"`
}

// Target is what the server said about its archive at login.
type Target struct {
	// LatestID is the newest archive id. With Known false it is unknown and
	// Reconcile pages until the server says the result set is complete.
	LatestID string
	Known    bool
}

// Report is the outcome of a Reconcile.
type Report struct {
	Progress
	LatestID      string     `json:"latest_id"`       // the server's newest id (as reported, or the last fetched)
	LocalLatestID string     `json:"local_latest_id"` // the local cursor before
	Cursor        string     `json:"cursor"`          // the local cursor after
	Queried       bool       `json:"queried"`         // a MAM query was sent
	Gap           *cache.Gap `json:"gap,omitempty"`   // the archive expired past the cursor
	Live          int        `json:"live"`            // live messages merged after the paging
}

// Syncer mirrors one account's archive into the store. Its Handle method
// must see every incoming <message> (the client wires it); Reconcile and
// CatchUp run the MAM queries. A Syncer is safe for concurrent use.
type Syncer struct {
	cfg Config
	log zerolog.Logger

	mu        sync.Mutex
	queries   map[string]*collector
	holding   int             // >0 while a reconcile or catch-up runs: live messages are held
	ready     bool            // a reconcile has succeeded: the cursor is meaningful
	held      []cache.Message // live messages held, in arrival order
	overflow  bool            // a live message was not held (maxHeld): ask the archive
	sentMark  uint32          // messages written by the session when the cursor was last known complete
	need      chan struct{}
	noAfterID bool       // the server rejects the after-id form field
	storeMu   sync.Mutex // serializes appends (order of OnMessage calls)
}

// collector gathers the results of one MAM query page.
type collector struct {
	msgs []cache.Message
	bad  int
}

// New returns a Syncer.
func New(cfg Config) *Syncer {
	if cfg.PageSize <= 0 {
		cfg.PageSize = 250
	}
	if cfg.MaxPages <= 0 {
		cfg.MaxPages = 100000
	}
	if cfg.SentMessages == nil {
		cfg.SentMessages = func() uint32 { return 0 }
	}
	cfg.Account = cfg.Account.Bare()
	return &Syncer{
		cfg:     cfg,
		log:     cfg.Logger.With().Str("component", "mamsync").Logger(),
		queries: make(map[string]*collector),
		need:    make(chan struct{}, 1),
	}
}

// NeedCatchUp is signalled when live messages were held because the store
// could not prove them contiguous with the archive (for example after this
// session sent a message, which the archive holds but the server does not
// echo): the owner should call CatchUp.
func (s *Syncer) NeedCatchUp() <-chan struct{} { return s.need }

// Handle takes one incoming top-level <message> (serialized) and reports
// whether mamsync consumed it: MAM results (of its own queries) are
// consumed; an archived live message is stored (or held while a query
// runs) and delivered through OnMessage once stored, but not consumed: the
// application's stanza handler still sees it live. Handle is called from
// the session's Serve goroutine and never sends on the session.
func (s *Syncer) Handle(ctx context.Context, raw []byte) (consumed bool, err error) {
	in, err := Parse(s.cfg.Account, raw)
	if err != nil {
		if errors.Is(err, ErrNotArchived) {
			return false, nil
		}
		s.log.Debug().Err(err).Msg("message not mirrored")
		return false, nil
	}
	s.mu.Lock()
	if in.Kind == KindResult {
		c := s.queries[in.QueryID]
		if c != nil && len(c.msgs) < 4*s.cfg.PageSize+16 {
			c.msgs = append(c.msgs, in.Message)
		} else if c != nil {
			c.bad++ // more results than the page asked for: bounded
		}
		s.mu.Unlock()
		return true, nil
	}
	if !s.ready || s.holding > 0 || !s.contiguousLocked() {
		// Held messages are bounded: one not held is still in the archive
		// after the cursor, and the next query fetches it.
		if len(s.held) < maxHeld {
			s.held = append(s.held, in.Message)
		} else {
			s.overflow = true
		}
		if s.ready && s.holding == 0 {
			select {
			case s.need <- struct{}{}:
			default:
			}
		}
		s.mu.Unlock()
		return false, nil
	}
	s.mu.Unlock()
	// Contiguous with the cursor: store it and move the cursor past it; it
	// will never be fetched from MAM.
	_, err = s.append(ctx, []cache.Message{in.Message}, in.Message.StanzaID)
	return false, err
}

// contiguousLocked reports whether a live message may extend the store
// directly: only if this session has written no message since the cursor
// was last confirmed by the archive.
func (s *Syncer) contiguousLocked() bool {
	return s.cfg.LiveComplete && s.cfg.SentMessages() == s.sentMark
}

// append stores msgs and delivers the new ones.
func (s *Syncer) append(ctx context.Context, msgs []cache.Message, cursor string) (cache.AppendResult, error) {
	s.storeMu.Lock()
	defer s.storeMu.Unlock()
	res, err := s.cfg.Store.AppendMessagesResult(ctx, s.cfg.Account.String(), msgs, cursor)
	if err != nil {
		return res, fmt.Errorf("mamsync: store: %w", err)
	}
	if s.cfg.OnMessage != nil {
		for _, m := range res.Added {
			s.cfg.OnMessage(m)
		}
	}
	return res, nil
}

// Reconcile brings the store level with the server's archive after a login:
// nothing is queried when the cursor equals t.LatestID; otherwise MAM is
// paged from the cursor up to t.LatestID (or until complete when the
// target is unknown). Live messages arriving meanwhile are held, then
// merged: duplicates of archived ones dropped, the rest appended in arrival
// order.
func (s *Syncer) Reconcile(ctx context.Context, sess *xmpp.Session, t Target) (Report, error) {
	return s.run(ctx, sess, t)
}

// CatchUp pages the archive from the cursor until complete (used when live
// messages could not be proven contiguous).
func (s *Syncer) CatchUp(ctx context.Context, sess *xmpp.Session) (Report, error) {
	return s.run(ctx, sess, Target{})
}

func (s *Syncer) run(ctx context.Context, sess *xmpp.Session, t Target) (rep Report, err error) {
	acct := s.cfg.Account.String()
	s.mu.Lock()
	s.holding++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.holding--
		var held []cache.Message
		if err == nil {
			s.ready = true
		}
		if s.holding == 0 && s.ready {
			held, s.held = s.held, nil
		}
		s.mu.Unlock()
		if held != nil && err == nil {
			n, merr := s.mergeHeld(ctx, held)
			rep.Live = n
			err = merr
		} else if held != nil {
			// The paging failed: held messages are not lost, they are in the
			// archive after the cursor and the next reconcile fetches them.
			s.log.Debug().Int("held", len(held)).Msg("live messages left for the next reconcile")
		}
		if c, cerr := s.cfg.Store.Cursor(ctx, acct); cerr == nil {
			rep.Cursor = c
		}
	}()

	cursor, err := s.cfg.Store.Cursor(ctx, acct)
	if err != nil {
		return rep, fmt.Errorf("mamsync: %w", err)
	}
	rep.LocalLatestID, rep.LatestID, rep.Expected = cursor, t.LatestID, -1
	if t.Known && t.LatestID == cursor {
		s.markComplete()
		return rep, nil // level: no query at all
	}
	rep.Queried = true
	sentBefore := s.cfg.SentMessages()
	err = s.page(ctx, sess, cursor, t, &rep)
	if errors.Is(err, errExpired) {
		err = s.recoverExpired(ctx, sess, cursor, t, &rep)
	}
	if err == nil {
		s.mu.Lock()
		// Everything this session sent before the first query is in what
		// was fetched.
		s.sentMark = sentBefore
		s.mu.Unlock()
	}
	return rep, err
}

// markComplete records that the cursor is complete as of now.
func (s *Syncer) markComplete() {
	sent := s.cfg.SentMessages()
	s.mu.Lock()
	s.sentMark = sent
	s.mu.Unlock()
}

// mergeHeld stores the live messages held during a query.
func (s *Syncer) mergeHeld(ctx context.Context, held []cache.Message) (int, error) {
	if len(held) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	contiguous := s.contiguousLocked() && !s.overflow
	s.overflow = false
	s.mu.Unlock()
	if !contiguous {
		// Keep them for the catch-up that the archive will answer in order.
		s.mu.Lock()
		s.held = append(held, s.held...)
		s.mu.Unlock()
		select {
		case s.need <- struct{}{}:
		default:
		}
		return 0, nil
	}
	res, err := s.append(ctx, held, held[len(held)-1].StanzaID)
	return len(res.Added), err
}

// maxHeld bounds the live messages held in memory while a query runs.
const maxHeld = 10000

// errBadRequest is a query the server refused as malformed.
var errBadRequest = errors.New("bad-request")

var errExpired = errors.New("mamsync: the archive no longer knows the cursor")

// batchMessages is how many fetched messages page gathers before storing
// them in one transaction (with the cursor at the last of them): fewer,
// larger transactions cost SQLite far less per message than one per MAM
// page (Prosody's pages are 50 messages). A batch ends earlier at the end
// of the paging, or when a query fails. Memory is bounded by a batch plus
// the pages in flight, whatever the size of the gap.
const batchMessages = 1000

// fetchedPage is one MAM page, as the fetcher in page hands it over.
type fetchedPage struct {
	msgs     []cache.Message
	count    int  // fin.Count, or -1
	done     bool // the last page: the paging reached its target
	err      error
	progress bool // a page was fetched (msgs and count are meaningful)
}

// page runs the MAM queries from after (exclusive) to the target.
//
// The queries run on a goroutine of their own, one page ahead of the
// storing: the next page is on its way while the previous batch is stored.
// Pages are stored in order, each batch in one transaction that also moves
// the cursor to the batch's last message, so the cursor only ever names a
// stored message. When a query fails, what was fetched before it is stored
// first, as it was when every page was its own transaction.
func (s *Syncer) page(ctx context.Context, sess *xmpp.Session, after string, t Target, rep *Report) error {
	fctx, cancel := context.WithCancel(ctx)
	pages := make(chan fetchedPage, 1)
	fetcherDone := make(chan struct{})
	go func() {
		defer close(fetcherDone)
		defer close(pages)
		s.fetch(fctx, sess, after, t, pages)
	}()
	defer func() {
		cancel()
		for range pages { // unblock the fetcher
		}
		<-fetcherDone
	}()

	var batch []cache.Message
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := s.append(ctx, batch, batch[len(batch)-1].StanzaID)
		clear(batch) // the messages are the caller's (res.Added) now
		batch = batch[:0]
		if err != nil {
			return err
		}
		rep.Stored += len(res.Added)
		rep.Duplicates += res.Duplicates
		if s.cfg.OnProgress != nil {
			s.cfg.OnProgress(rep.Progress)
		}
		return nil
	}
	for p := range pages {
		if p.progress {
			rep.Pages++
			rep.Fetched += len(p.msgs)
			if rep.Expected < 0 && p.count >= 0 {
				rep.Expected = p.count
			}
			batch = append(batch, p.msgs...)
		}
		if p.err != nil {
			if err := flush(); err != nil {
				return err
			}
			return p.err
		}
		if p.done || len(batch) >= batchMessages {
			flushed := len(batch) > 0
			if err := flush(); err != nil {
				return err
			}
			if p.done {
				if !flushed && s.cfg.OnProgress != nil {
					s.cfg.OnProgress(rep.Progress)
				}
				return nil
			}
		}
	}
	// The fetcher stopped without a last page: ctx ended.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mamsync: query: %w", err)
	}
	return errors.New("mamsync: paging stopped")
}

// fetch pages the archive for page and sends each page to pages, until the
// target, an error (sent as the last page) or ctx's end.
func (s *Syncer) fetch(ctx context.Context, sess *xmpp.Session, after string, t Target, pages chan<- fetchedPage) {
	send := func(p fetchedPage) bool {
		select {
		case pages <- p:
			return true
		case <-ctx.Done():
			return false
		}
	}
	rsmAfter := ""
	for n := 0; ; n++ {
		if n >= s.cfg.MaxPages {
			send(fetchedPage{err: fmt.Errorf("%w (%d)", ErrTooManyPages, s.cfg.MaxPages)})
			return
		}
		msgs, fin, err := s.query(ctx, sess, after, rsmAfter, false)
		if err != nil {
			send(fetchedPage{err: err})
			return
		}
		p := fetchedPage{msgs: msgs, count: fin.Count, done: fin.Complete, progress: true}
		if t.Known && t.LatestID != "" {
			if i := slices.IndexFunc(msgs, func(m cache.Message) bool { return m.StanzaID == t.LatestID }); i >= 0 {
				// Messages after latest-id reach this session live: they are
				// not stored from the archive.
				p.msgs, p.done = msgs[:i+1], true
			}
		}
		if !p.done {
			next := fin.Last
			if next == "" && len(msgs) > 0 {
				next = msgs[len(msgs)-1].StanzaID
			}
			if next == "" || next == rsmAfter || len(msgs) == 0 {
				p.err = fmt.Errorf("%w after %q", ErrNoProgress, truncate(rsmAfter))
			}
			rsmAfter = next
		}
		if !send(p) || p.done || p.err != nil {
			return
		}
	}
}

// recoverExpired handles a cursor the server no longer knows: it fetches the
// newest page, records the gap between the old cursor and that page, and
// moves the cursor there. Nothing is silently lost: the gap is stored and
// reported.
func (s *Syncer) recoverExpired(ctx context.Context, sess *xmpp.Session, old string, t Target, rep *Report) error {
	s.log.Warn().Str("cursor", old).Msg("the archive no longer knows the cursor; fetching the newest page and recording a gap")
	msgs, fin, err := s.query(ctx, sess, "", "", true)
	if err != nil {
		return err
	}
	rep.Pages++
	rep.Fetched += len(msgs)
	if len(msgs) == 0 {
		return nil // the archive is empty now
	}
	if t.Known && t.LatestID != "" {
		if i := slices.IndexFunc(msgs, func(m cache.Message) bool { return m.StanzaID == t.LatestID }); i >= 0 {
			msgs = msgs[:i+1]
		}
	}
	gap := cache.Gap{AfterID: old, BeforeID: msgs[0].StanzaID, Detected: time.Now().UTC()}
	if err := s.cfg.Store.AddGap(ctx, s.cfg.Account.String(), gap); err != nil {
		return fmt.Errorf("mamsync: %w", err)
	}
	rep.Gap = &gap
	res, err := s.append(ctx, msgs, msgs[len(msgs)-1].StanzaID)
	if err != nil {
		return err
	}
	rep.Stored += len(res.Added)
	rep.Duplicates += res.Duplicates
	_ = fin
	if s.cfg.OnProgress != nil {
		s.cfg.OnProgress(rep.Progress)
	}
	return nil
}

// query sends one MAM query page and returns its results and <fin>.
// afterID is the form's after-id (the result set), rsmAfter the RSM
// paging position; last asks for the newest page (RSM <before/>).
func (s *Syncer) query(ctx context.Context, sess *xmpp.Session, afterID, rsmAfter string, last bool) ([]cache.Message, Fin, error) {
	s.mu.Lock()
	noAfterID := s.noAfterID
	s.mu.Unlock()
	if afterID != "" && noAfterID {
		// The server rejects the after-id field (ejabberd 24.12): page the
		// whole archive by RSM from the cursor instead. The result set, and
		// with it the RSM count, is then the whole archive.
		if rsmAfter == "" {
			rsmAfter = afterID
		}
		afterID = ""
	}
	msgs, fin, err := s.query1(ctx, sess, afterID, rsmAfter, last)
	if afterID != "" && errors.Is(err, errBadRequest) {
		s.mu.Lock()
		s.noAfterID = true
		s.mu.Unlock()
		s.log.Debug().Msg("the archive rejects after-id; paging by RSM <after/>")
		return s.query(ctx, sess, afterID, rsmAfter, last)
	}
	if noAfterID {
		fin.Count = -1 // the count of the whole archive, not of what is missing
	}
	return msgs, fin, err
}

// query1 sends one MAM query page.
func (s *Syncer) query1(ctx context.Context, sess *xmpp.Session, afterID, rsmAfter string, last bool) ([]cache.Message, Fin, error) {
	qid := randomID()
	c := &collector{}
	s.mu.Lock()
	s.queries[qid] = c
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.queries, qid)
		s.mu.Unlock()
	}()
	var b bytes.Buffer
	b.WriteString("<iq type='set' id='")
	b.WriteString(qid)
	b.WriteString("'><query xmlns='urn:xmpp:mam:2' queryid='")
	b.WriteString(qid)
	b.WriteString("'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>")
	if afterID != "" {
		b.WriteString("<field var='after-id'><value>")
		_ = xml.EscapeText(&b, []byte(afterID))
		b.WriteString("</value></field>")
	}
	b.WriteString("</x><set xmlns='http://jabber.org/protocol/rsm'><max>")
	fmt.Fprint(&b, s.cfg.PageSize)
	b.WriteString("</max>")
	switch {
	case last:
		b.WriteString("<before/>")
	case rsmAfter != "":
		b.WriteString("<after>")
		_ = xml.EscapeText(&b, []byte(rsmAfter))
		b.WriteString("</after>")
	}
	b.WriteString("</set></query></iq>")
	resp, err := sess.SendIQ(ctx, xml.NewDecoder(&b))
	if err != nil {
		return nil, Fin{}, fmt.Errorf("mamsync: query: %w", err)
	}
	defer resp.Close()
	raw, err := encode(resp)
	if err != nil {
		return nil, Fin{}, fmt.Errorf("mamsync: query answer: %w", err)
	}
	fin, err := parseAnswer(raw)
	if err != nil {
		return nil, Fin{}, err
	}
	s.mu.Lock()
	msgs, bad := c.msgs, c.bad
	s.mu.Unlock()
	if bad > 0 {
		return nil, Fin{}, fmt.Errorf("%w: the server sent %d results more than asked", ErrQuery, bad)
	}
	return msgs, fin, nil
}

// parseAnswer reads the IQ answering a query: <fin/> or an error.
func parseAnswer(raw []byte) (Fin, error) {
	var iq struct {
		Type  string   `xml:"type,attr"`
		Fin   *wireFin `xml:"urn:xmpp:mam:2 fin"`
		Error *struct {
			Inner []struct {
				XMLName xml.Name
			} `xml:",any"`
		} `xml:"error"`
	}
	if err := xml.Unmarshal(raw, &iq); err != nil {
		return Fin{}, fmt.Errorf("%w: %v", ErrQuery, err)
	}
	switch iq.Type {
	case "result":
		if iq.Fin == nil {
			return Fin{}, fmt.Errorf("%w: result without <fin/>", ErrQuery)
		}
		return iq.Fin.fin()
	case "error":
		cond := "undefined-condition"
		if iq.Error != nil {
			for _, in := range iq.Error.Inner {
				if in.XMLName.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" && in.XMLName.Local != "text" {
					cond = in.XMLName.Local
				}
			}
		}
		switch cond {
		case "item-not-found":
			return Fin{}, errExpired
		case "bad-request":
			return Fin{}, fmt.Errorf("%w: %w", ErrQuery, errBadRequest)
		}
		return Fin{}, fmt.Errorf("%w: %s", ErrQuery, cond)
	}
	return Fin{}, fmt.Errorf("%w: answer of type %q", ErrQuery, truncate(iq.Type))
}

// encode serializes a token stream.
func encode(r xml.TokenReader) ([]byte, error) {
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	if _, err := xmlstream.Copy(e, r); err != nil {
		return nil, err
	}
	if err := e.Flush(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func randomID() string {
	var p [8]byte
	_, _ = rand.Read(p[:])
	return "pb" + hex.EncodeToString(p[:])
}
