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
	// ErrPageOverflow: the server sent more results for a query than its
	// RSM <max/> allowed; the page is not stored.
	ErrPageOverflow = errors.New("mamsync: more results than the page size asked for")
	// ErrStore: the local store failed; what was stored before stays, and
	// the next reconcile fetches the rest from the archive.
	ErrStore = errors.New("mamsync: store failed")
)

// Config configures a Syncer.
type Config struct {
	// Account is the account whose archive is mirrored (bare JID).
	Account jid.JID
	// Store is the local message store (package cache implements it).
	Store Store
	// PageSize is the RSM <max> asked for; servers cap it (Prosody 50,
	// ejabberd 250). A page with more results is ErrPageOverflow. Zero
	// means 250.
	PageSize int
	// QueryTimeout bounds the wait for each query's answer (its <fin/>):
	// past it the query fails with an error wrapping
	// context.DeadlineExceeded. Zero means only the caller's context bounds
	// it.
	QueryTimeout time.Duration
	// MaxPages bounds the MAM pages of one Reconcile or CatchUp: the next
	// page is ErrTooManyPages. Zero means 100,000 pages.
	MaxPages int
	// OnMessage is called once for every message newly stored, in store
	// order, from the goroutine that stored it. It must not block for long.
	OnMessage func(StoredMessage)
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

// defaultPageSize is Config.PageSize's zero value.
const defaultPageSize = 250

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
	LatestID      string `json:"latest_id"`       // the server's newest id (as reported, or the last fetched)
	LocalLatestID string `json:"local_latest_id"` // the local cursor before
	Cursor        string `json:"cursor"`          // the local cursor after
	Queried       bool   `json:"queried"`         // a MAM query was sent
	Gap           *Gap   `json:"gap,omitempty"`   // the archive expired past the cursor
	Live          int    `json:"live"`            // live messages merged after the paging
	// PeakBuffered is the most fetched messages the paging held in memory
	// at once: the batch being gathered plus the one being stored. It is
	// bounded by about two batches (maxBatch, 4,000 messages, each plus at
	// most one page), whatever the size of the gap.
	PeakBuffered int `json:"peak_buffered"`
}

// Syncer mirrors one account's archive into the store. HandleRaw must see
// every incoming top-level <message> before the session decodes it (the
// client wires it to the connection's inbound tap); Reconcile and CatchUp
// run the MAM queries; StoreLive stores live messages. A Syncer is safe
// for concurrent use.
type Syncer struct {
	cfg Config
	log zerolog.Logger

	mu        sync.Mutex
	queries   map[string]*collector
	holding   int       // >0 while a reconcile or catch-up runs: live messages are held
	ready     bool      // a reconcile has succeeded: the cursor is meaningful
	held      []Message // live messages held, in arrival order
	overflow  bool      // a live message was not held (maxHeld): ask the archive
	sentMark  uint32    // messages written by the session when the cursor was last known complete
	need      chan struct{}
	live      []Message // contiguous live messages for StoreLive, in order
	liveReady chan struct{}
	noAfterID bool       // the server rejects the after-id form field
	pageHint  int        // results per page the server gives (0: not known yet)
	storeMu   sync.Mutex // serializes appends (order of OnMessage calls)
}

// New returns a Syncer.
func New(cfg Config) *Syncer {
	if cfg.PageSize <= 0 {
		cfg.PageSize = defaultPageSize
	}
	if cfg.MaxPages <= 0 {
		cfg.MaxPages = 100000
	}
	if cfg.SentMessages == nil {
		cfg.SentMessages = func() uint32 { return 0 }
	}
	cfg.Account = cfg.Account.Bare()
	return &Syncer{
		cfg:       cfg,
		log:       cfg.Logger.With().Str("component", "mamsync").Logger(),
		queries:   make(map[string]*collector),
		need:      make(chan struct{}, 1),
		liveReady: make(chan struct{}, 1),
	}
}

// NeedCatchUp is signalled when live messages were held because the store
// could not prove them contiguous with the archive (for example after this
// session sent a message, which the archive holds but the server does not
// echo): the owner should call CatchUp.
func (s *Syncer) NeedCatchUp() <-chan struct{} { return s.need }

// handle files a parsed message (see HandleRaw) and reports whether it is
// consumed.
func (s *Syncer) handle(in Incoming) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.Kind == KindResult {
		if c := s.queries[in.QueryID]; c != nil {
			c.add(in.Message)
		}
		return true
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
			signal(s.need)
		}
		return false
	}
	// Contiguous with the cursor: queued for StoreLive, which stores it and
	// moves the cursor past it; it is never fetched from the archive.
	if len(s.live) < maxHeld {
		s.live = append(s.live, in.Message)
		signal(s.liveReady)
	} else {
		// The queue is full (the store is stuck): the archive has it.
		s.overflow = true
		signal(s.need)
	}
	return false
}

// signal wakes the owner without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Live is signalled when HandleRaw has queued live messages: the owner
// calls StoreLive.
func (s *Syncer) Live() <-chan struct{} { return s.liveReady }

// StoreLive stores the live messages HandleRaw queued, in arrival order, and
// delivers them through OnMessage. The owner calls it on a goroutine of its
// own when Live is signalled, never on the session's reading goroutine: a
// store that waits (another process holding the database) then delays no
// acknowledgement and no IQ answer. A store that fails leaves the messages
// to the archive (the next reconcile fetches them) and wraps ErrStore.
func (s *Syncer) StoreLive(ctx context.Context) (int, error) {
	s.mu.Lock()
	msgs := s.live
	s.live = nil
	s.mu.Unlock()
	if len(msgs) == 0 {
		return 0, nil
	}
	res, err := s.append(ctx, msgs, msgs[len(msgs)-1].StanzaID)
	return len(res.Added), err
}

// contiguousLocked reports whether a live message may extend the store
// directly: only if this session has written no message since the cursor
// was last confirmed by the archive.
func (s *Syncer) contiguousLocked() bool {
	return s.cfg.LiveComplete && s.cfg.SentMessages() == s.sentMark
}

// append stores msgs and delivers the new ones.
func (s *Syncer) append(ctx context.Context, msgs []Message, cursor string) (AppendResult, error) {
	s.storeMu.Lock()
	defer s.storeMu.Unlock()
	if err := ctx.Err(); err != nil {
		return AppendResult{}, fmt.Errorf("%w: %w", ErrStore, err)
	}
	// Once begun, a store runs to its end (a batch is bounded: maxBatch
	// messages and a page). With a ctx that can end, the SQLite driver
	// runs every statement on a goroutine of its own, to interrupt it: a
	// quarter of the store's cost per message.
	res, err := s.cfg.Store.AppendMessagesResult(context.WithoutCancel(ctx), s.cfg.Account.String(), msgs, cursor)
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrStore, err)
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
	return s.run(ctx, sess, t, nil)
}

// CatchUp pages the archive from the cursor until complete (used when live
// messages could not be proven contiguous).
func (s *Syncer) CatchUp(ctx context.Context, sess *xmpp.Session) (Report, error) {
	return s.run(ctx, sess, Target{}, nil)
}

func (s *Syncer) run(ctx context.Context, sess *xmpp.Session, t Target, first *pending) (rep Report, err error) {
	acct := s.cfg.Account.String()
	s.mu.Lock()
	s.holding++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.holding--
		var held []Message
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
	err = s.page(ctx, sess, cursor, t, first, &rep)
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
func (s *Syncer) mergeHeld(ctx context.Context, held []Message) (int, error) {
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
		signal(s.need)
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

// nextPosition returns where the paging continues after a page that is not
// the last: the page's RSM <last/> (or, without one, its last result). A
// page that does not move the paging forward is ErrNoProgress: an empty
// page, a <last/> that is not the page's last result (XEP-0059 §2.1: it is
// that result's id), a position the paging was at before. The last is
// found in constant memory, whatever the number of pages: cycle is Brent's
// cycle detection over the positions, which finds any loop of a server that
// answers the same position with the same page within twice the length of
// the loop and what came before it. A server that makes up new pages
// forever is bounded by Config.MaxPages.
func nextPosition(after string, msgs []Message, fin Fin, cycle *cycleCheck) (string, error) {
	if len(msgs) == 0 {
		return "", fmt.Errorf("%w: an empty page after %q that is not the last", ErrNoProgress, truncate(after))
	}
	last := msgs[len(msgs)-1].StanzaID
	if fin.Last != "" && fin.Last != last {
		return "", fmt.Errorf("%w: the page ends with %q but says its last is %q", ErrNoProgress, truncate(last), truncate(fin.Last))
	}
	if last == after || cycle.repeated(last) {
		return "", fmt.Errorf("%w: the page after %q ends at %q, where the paging was before", ErrNoProgress, truncate(after), truncate(last))
	}
	return last, nil
}

// cycleCheck detects a repeated value in a sequence in constant memory
// (Brent's algorithm): it keeps one value, replaced after 1, 2, 4, 8, ...
// steps.
type cycleCheck struct {
	mark         string
	power, steps int
}

// repeated reports whether v equals the value kept, then records v.
func (c *cycleCheck) repeated(v string) bool {
	if c.power > 0 && v == c.mark {
		return true
	}
	c.steps++
	if c.steps >= c.power {
		c.mark, c.power, c.steps = v, max(2*c.power, 1), 0
	}
	return false
}

// recoverExpired handles a cursor the server no longer knows: it fetches the
// newest page, records the gap between the old cursor and that page, and
// moves the cursor there. Nothing is silently lost: the gap is stored and
// reported.
func (s *Syncer) recoverExpired(ctx context.Context, sess *xmpp.Session, old string, t Target, rep *Report) error {
	s.log.Warn().Str("cursor", old).Msg("the archive no longer knows the cursor; fetching the newest page and recording a gap")
	msgs, _, err := s.query(ctx, sess, queryOpts{last: true})
	if err != nil {
		return err
	}
	rep.Pages++
	rep.Fetched += len(msgs)
	if len(msgs) == 0 {
		return nil // the archive is empty now
	}
	if t.Known && t.LatestID != "" {
		if i := slices.IndexFunc(msgs, func(m Message) bool { return m.StanzaID == t.LatestID }); i >= 0 {
			msgs = msgs[:i+1]
		}
	}
	gap := Gap{AfterID: old, BeforeID: msgs[0].StanzaID, Detected: time.Now().UTC()}
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
	if s.cfg.OnProgress != nil {
		s.cfg.OnProgress(rep.Progress)
	}
	return nil
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
