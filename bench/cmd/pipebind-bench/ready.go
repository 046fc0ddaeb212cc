package main

// The time-to-ready rows of the packet-level path (issue 15): a login
// that ends with the message store level with the archive and the unread
// state known. pipebind-ready* is pipebind with its cache and sync on,
// which writes the initial presence, the archive query from its cursor and
// the XEP-0490 markers fetch behind <authenticate>; reference-ready* is
// what the best mobile clients do today: the login, then the archive
// query from the cursor (paged until complete), then the markers fetch.
// The parent archives the rows' new messages before each login (untimed,
// see packetInjector); each row has an account of its own per group.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/login"
	"github.com/pipebind/pipebind/mamsync"
	"github.com/pipebind/pipebind/mds"
)

// readyKinds maps the ready rows' client kinds to the new messages each of
// their logins must fetch (the parent archives them before each login).
var readyKinds = map[string]int{
	"pipebind-ready": 0, "pipebind-ready-10": 10, "pipebind-ready-1000": 1000,
}

// referenceKinds are the reference client's rows, likewise.
var referenceKinds = map[string]int{
	"reference-ready": 0, "reference-ready-10": 10, "reference-ready-1000": 1000,
}

// readyPageSize is the RSM <max> of both clients' archive queries:
// pipebind's default (client.Config.SyncPageSize zero); Prosody caps it at
// 50.
const readyPageSize = 250

// newReadyPeer returns the peer of a ready row, primed (untimed): its
// cache holds a FAST token and, for pipebind, a store level with the
// archive; the reference has its cursor.
func newReadyPeer(ctx context.Context, pc peerConfig, tlsCfg *tls.Config, tmp string) (peerClient, bool, error) {
	want, pb := readyKinds[pc.Kind]
	wantRef, ref := referenceKinds[pc.Kind]
	if !pb && !ref {
		return nil, false, nil
	}
	cfg, err := pipebindConfig(ctx, pc, tlsCfg, tmp, login.PathSASL2, []string{"PLAIN"}, true)
	if err != nil {
		return nil, true, err
	}
	cfg.NoPresence = false
	var p interface {
		peerClient
		prime(ctx context.Context) error
	}
	if pb {
		cfg.NoSync = false // the default: the catch-up rides with the login
		p = &readyPeer{pbSession: pbSession{cfg: cfg}, want: want}
	} else {
		rp := &refPeer{want: wantRef, count: &mamCounter{}}
		cfg.Handler = rp.count
		rp.cfg = cfg
		p = rp
	}
	if err := p.prime(ctx); err != nil {
		p.shutdown()
		return nil, true, err
	}
	return p, true, nil
}

// readyPeer is pipebind with its cache and sync on (FAST primed): the time
// is from before Dial to Synced.
type readyPeer struct {
	pbSession
	want int
}

// prime logs in with the password (a FAST token is requested) and waits
// for the reconciliation, which leaves the store level with the archive.
func (p *readyPeer) prime(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	c, err := client.Dial(pctx, p.cfg)
	if err != nil {
		return fmt.Errorf("priming login: %w", err)
	}
	defer c.Close()
	if _, err := c.SyncReport(pctx); err != nil {
		return fmt.Errorf("priming login's sync: %w", err)
	}
	return noToken(c.Info())
}

func (p *readyPeer) login(ctx context.Context) (loginInfo, error) {
	t0 := time.Now()
	c, err := client.Dial(ctx, p.cfg)
	if err != nil {
		return loginInfo{}, err
	}
	p.c = c
	select {
	case <-c.Synced():
	case <-ctx.Done():
		return loginInfo{}, fmt.Errorf("waiting for Synced: %w", ctx.Err())
	}
	took := time.Since(t0)
	in := c.Info()
	rep, err := c.SyncReport(ctx)
	switch {
	case err != nil:
		return loginInfo{}, fmt.Errorf("sync: %w", err)
	case !in.FAST:
		return loginInfo{}, notFAST(in)
	case !in.AfterAuthSent:
		return loginInfo{}, errors.New("the login's write did not carry the presence, the archive query and the markers fetch")
	case rep.Fetched != p.want || rep.Stored != p.want:
		return loginInfo{}, fmt.Errorf("the sync fetched %d and stored %d new messages, want %d", rep.Fetched, rep.Stored, p.want)
	case in.Timings.Ready <= 0 || in.Timings.Ready > took:
		return loginInfo{}, fmt.Errorf("Info.Timings.Ready %v is not within the %v measured from before Dial to Synced", in.Timings.Ready, took)
	}
	return loginInfo{path: in.Path.String(), mech: in.Mechanism, tls: in.TLSVersion, rt: in.RoundTrips,
		cache: in.Timings.Cache, cacheWait: in.Timings.CacheWait, took: took, ready: in.Timings.Ready, fetched: rep.Fetched}, nil
}

// refPeer is the reference client: pipebind's FAST login without its sync
// (NoSync; the presence is written as Dial ends), then, as Conversations
// and Monal do after their login, the archive query from its own cursor
// (the last archive id it saw), paged with RSM until the server says the
// result set is complete, then the XEP-0490 markers fetch. The results are
// counted, not stored: generous to the reference.
type refPeer struct {
	pbSession
	want   int
	cursor string
	count  *mamCounter
}

// prime logs in with the password (a FAST token is requested) and reads
// the archive to its end for the cursor.
func (p *refPeer) prime(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	c, err := client.Dial(pctx, p.cfg)
	if err != nil {
		return fmt.Errorf("priming login: %w", err)
	}
	defer c.Close()
	if err := noToken(c.Info()); err != nil {
		return err
	}
	if _, err := p.catchUp(pctx, c); err != nil {
		return fmt.Errorf("priming catch-up: %w", err)
	}
	return nil
}

func (p *refPeer) login(ctx context.Context) (loginInfo, error) {
	t0 := time.Now()
	c, err := client.Dial(ctx, p.cfg)
	if err != nil {
		return loginInfo{}, err
	}
	p.c = c
	in := c.Info()
	if !in.FAST {
		return loginInfo{}, notFAST(in)
	}
	n, err := p.catchUp(ctx, c)
	if err != nil {
		return loginInfo{}, fmt.Errorf("archive query: %w", err)
	}
	// An IQ error is an answer too (item-not-found: no marker published
	// yet), as pipebind's reconciliation takes it.
	if _, err := mds.Fetch(ctx, c.Session()); err != nil && !errors.As(err, new(stanza.Error)) {
		return loginInfo{}, err
	}
	took := time.Since(t0)
	if n != p.want {
		return loginInfo{}, fmt.Errorf("the archive query fetched %d new messages, want %d", n, p.want)
	}
	return loginInfo{path: in.Path.String(), mech: in.Mechanism, tls: in.TLSVersion, rt: in.RoundTrips,
		cache: in.Timings.Cache, cacheWait: in.Timings.CacheWait, took: took, fetched: n}, nil
}

// catchUp pages through the archive from the cursor, one query after the
// other, until the server says the result set is complete; it moves the
// cursor to the last result and returns how many there were.
func (p *refPeer) catchUp(ctx context.Context, c *client.Client) (int, error) {
	total := 0
	for page := 1; ; page++ {
		qid := "ref-" + strconv.Itoa(page)
		p.count.start(qid)
		fin, err := mamPage(ctx, c, qid, p.cursor)
		n, last := p.count.stop()
		if err != nil {
			return total, err
		}
		total += n
		if last != "" {
			p.cursor = last
		}
		if fin.complete {
			return total, nil
		}
		if n == 0 || fin.last == "" {
			return total, fmt.Errorf("page %d: no progress in an incomplete result set", page)
		}
		p.cursor = fin.last
	}
}

// pageFin is what the reference reads of a page's <fin/>.
type pageFin struct {
	complete bool
	last     string
}

// mamPage sends one XEP-0313 query (RSM after the cursor, readyPageSize
// results at most) and reads its answer's <fin/>. The results, which
// arrive before it, go to the client's Handler (mamCounter).
func mamPage(ctx context.Context, c *client.Client, qid, after string) (pageFin, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<iq type='set' id='%s'><query xmlns='%s' queryid='%s'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE' type='hidden'><value>%s</value></field></x><set xmlns='http://jabber.org/protocol/rsm'><max>%d</max>",
		qid, mamsync.NSMAM, qid, mamsync.NSMAM, readyPageSize)
	if after != "" {
		b.WriteString("<after>")
		_ = xml.EscapeText(&b, []byte(after))
		b.WriteString("</after>")
	}
	b.WriteString("</set></query></iq>")
	resp, err := c.SendIQ(ctx, xml.NewDecoder(&b))
	if err != nil {
		return pageFin{}, err
	}
	defer resp.Close()
	return readFin(resp)
}

// readFin reads an answer to a MAM query: an error IQ, or a result with
// <fin complete='...'> and its RSM <last>.
func readFin(r xml.TokenReader) (pageFin, error) {
	var f pageFin
	inLast, sawFin := false, false
	for {
		tok, err := r.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return f, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch {
			case t.Name.Local == "iq" && attrOf(t, "type") == "error":
				return f, errors.New("the server answered the query with an error")
			case t.Name.Space == mamsync.NSMAM && t.Name.Local == "fin":
				sawFin = true
				v := attrOf(t, "complete")
				f.complete = v == "true" || v == "1"
			case t.Name.Local == "last":
				inLast = true
			}
		case xml.CharData:
			if inLast {
				f.last += string(t)
			}
		case xml.EndElement:
			inLast = false
		}
	}
	if !sawFin {
		return f, errors.New("no <fin/> in the answer")
	}
	f.last = string(bytes.TrimSpace([]byte(f.last)))
	return f, nil
}

func attrOf(s xml.StartElement, local string) string {
	for _, a := range s.Attr {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// mamCounter is the reference's Handler: it counts the results of the
// current query (their <result queryid=...>) and keeps the last one's
// archive id. The session hands it every result before the query's
// answer, on the connection's goroutine.
type mamCounter struct {
	mu   sync.Mutex
	qid  string
	n    int
	last string
}

func (m *mamCounter) start(qid string) {
	m.mu.Lock()
	m.qid, m.n, m.last = qid, 0, ""
	m.mu.Unlock()
}

func (m *mamCounter) stop() (int, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, last := m.n, m.last
	m.qid = ""
	return n, last
}

func (m *mamCounter) HandleXMPP(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	if start.Name.Local != "message" {
		return nil
	}
	for {
		tok, err := t.Token()
		if err != nil {
			return nil // the end of the message: not an archive result
		}
		s, ok := tok.(xml.StartElement)
		if !ok || s.Name.Space != mamsync.NSMAM || s.Name.Local != "result" {
			continue
		}
		m.mu.Lock()
		if m.qid != "" && attrOf(s, "queryid") == m.qid {
			m.n++
			m.last = attrOf(s, "id")
		}
		m.mu.Unlock()
		return nil
	}
}
