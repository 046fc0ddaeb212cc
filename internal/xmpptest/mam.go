package xmpptest

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
)

// XEP-0313 v1.1 Message Archive Management (urn:xmpp:mam:2, with the
// urn:xmpp:mam:2#extended features) over the per-user archive of archive.go,
// paged with XEP-0059 Result Set Management. The archive is the user's bare
// JID: disco#info to it lists both features, and queries go to it (no 'to'
// or the bare JID); the server's own JID hosts no archive
// (service-unavailable).
//
//   - IQ set <query queryid=…/>, with an optional data form (FORM_TYPE
//     urn:xmpp:mam:2; fields with, start, end, after-id, before-id, ids) and
//     an optional RSM <set/> (<max/>, <after/>, <before/> (empty: the last
//     page), <index/>), and <flip-page/>. The form's fields select the
//     result set; RSM picks a page of it. The results are sent as
//     <message/>s before the IQ result's <fin complete='true|false'/>.
//     'complete' is true when the page reaches the end of the result set in
//     the direction of paging (the oldest match when paging backwards with
//     <before/>). <count/> is the size of the result set and 'index' the
//     position of the page's first item in it (both left out with
//     Config.MAMNoCount). An empty page has a <set/> with only <count/>.
//   - A cursor (<after/>, <before/>, after-id, before-id, ids) that is not in
//     the archive, for example expired (ExpireArchiveBefore), is
//     item-not-found; an unknown form field is feature-not-implemented; a
//     malformed value is bad-request. A cursor that is in the archive but
//     outside the result set is still a valid position.
//   - Page sizes: Config.MAMPageDefault without <max/>; a <max/> above
//     Config.MAMPageMax is lowered to it.
//   - IQ get <query/> returns the form; IQ get <metadata/> returns the
//     archive's first and last message (Config.MAMNoMetadata: bad-request).
//
// Archived messages are returned with their stored addresses (the full JIDs
// of routed messages, bare JIDs for injected ones), type and id. Result
// <message/>s are addressed to the querying resource, from the IQ's 'to'
// (absent when the query had none, as Prosody does).

func init() {
	registerIQ("set", nsMAM, "query", false, (*conn).iqMAMQuery)
	registerIQ("get", nsMAM, "query", false, (*conn).iqMAMForm)
	registerIQ("get", nsMAM, "metadata", false, (*conn).iqMAMMetadata)
}

var (
	errItemNotFound          = &stanzaError{typ: "cancel", cond: "item-not-found"}
	errFeatureNotImplemented = &stanzaError{typ: "cancel", cond: "feature-not-implemented"}
)

// toAccount reports whether an IQ from a bound session is addressed to the
// user's own bare JID.
func (c *conn) toAccount(iq *element) bool {
	to := iq.attrValue("to")
	if to == "" || !c.bound {
		return false
	}
	j, err := jid.Parse(to)
	return err == nil && j.Resourcepart() == "" && j.Equal(c.bare)
}

// toArchive reports whether an IQ is for the user's archive: no 'to' or the
// bare JID.
func (c *conn) toArchive(iq *element) bool {
	return iq.attrValue("to") == "" || c.toAccount(iq)
}

// mamQuery is a parsed query.
type mamQuery struct {
	queryID string
	// Form.
	with              string // "" for none
	withFull          bool   // with has a resource
	start, end        time.Time
	afterID, beforeID string
	ids               map[string]bool // nil for none
	// RSM.
	max                 int
	after, before       string
	hasAfter, hasBefore bool
	index               int // -1 for none
	flip                bool
}

func parseMAMQuery(p *element, pageDefault, pageMax int) (*mamQuery, *stanzaError) {
	q := &mamQuery{queryID: p.attrValue("queryid"), max: pageDefault, index: -1}
	for _, ch := range p.children() {
		switch {
		case ch.is(nsDataForms, "x"):
			if se := q.parseForm(ch); se != nil {
				return nil, se
			}
		case ch.is(nsRSM, "set"):
			if se := q.parseRSM(ch, pageMax); se != nil {
				return nil, se
			}
		case ch.is(nsMAM, "flip-page"):
			q.flip = true
		default:
			return nil, errBadRequest
		}
	}
	return q, nil
}

func (q *mamQuery) parseForm(x *element) *stanzaError {
	if t := x.attrValue("type"); t != "" && t != "submit" {
		return errBadRequest
	}
	for _, f := range x.children() {
		if !f.is(nsDataForms, "field") {
			continue
		}
		var vals []string
		for _, v := range f.children() {
			if v.is(nsDataForms, "value") {
				vals = append(vals, v.text())
			}
		}
		one := func() (string, bool) {
			if len(vals) != 1 {
				return "", len(vals) == 0
			}
			return strings.TrimSpace(vals[0]), true
		}
		v, ok := one()
		switch f.attrValue("var") {
		case "FORM_TYPE":
			if v != nsMAM {
				return errBadRequest
			}
		case "with":
			if v == "" {
				break
			}
			j, err := jid.Parse(v)
			if err != nil {
				return errJIDMalformed
			}
			q.with, q.withFull = j.String(), j.Resourcepart() != ""
			if !q.withFull {
				q.with = strings.ToLower(q.with)
			}
		case "start", "end":
			if v == "" {
				break
			}
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return errBadRequest
			}
			if f.attrValue("var") == "start" {
				q.start = t
			} else {
				q.end = t
			}
		case "after-id":
			q.afterID = v
		case "before-id":
			q.beforeID = v
		case "ids":
			q.ids = make(map[string]bool)
			for _, v := range vals {
				q.ids[strings.TrimSpace(v)] = true
			}
			ok = true
		default:
			return errFeatureNotImplemented // XEP-0313 §query-form
		}
		if !ok {
			return errBadRequest // several values for a single-valued field
		}
	}
	return nil
}

func (q *mamQuery) parseRSM(set *element, pageMax int) *stanzaError {
	for _, ch := range set.children() {
		v := strings.TrimSpace(ch.text())
		switch {
		case ch.is(nsRSM, "max"):
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return errBadRequest
			}
			q.max = min(n, pageMax)
		case ch.is(nsRSM, "after"):
			if v == "" {
				return errBadRequest
			}
			q.after, q.hasAfter = v, true
		case ch.is(nsRSM, "before"):
			q.before, q.hasBefore = v, true
		case ch.is(nsRSM, "index"):
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return errBadRequest
			}
			q.index = n
		}
	}
	return nil
}

// mamPage is the answer to a query.
type mamPage struct {
	msgs     []archived
	arena    arena // the archive's strings, as of the query (see arena)
	count    int   // size of the result set
	index    int   // position of msgs[0] in it
	complete bool
}

// matches reports whether m passes the form's per-message filters.
func (q *mamQuery) matches(ar arena, m *archived, own string) bool {
	if q.with != "" {
		switch {
		case q.withFull:
			if !bytes.EqualFold(ar.bytes(m.from), []byte(q.with)) && !bytes.EqualFold(ar.bytes(m.to), []byte(q.with)) {
				return false
			}
		case q.with == own:
			// Messages to self (XEP-0313 §filter-jid).
			if !ar.is(m.peer, own) {
				return false
			}
		case !ar.is(m.peer, q.with):
			return false
		}
	}
	if !q.start.IsZero() && m.time().Before(q.start) {
		return false
	}
	if !q.end.IsZero() && m.time().After(q.end) {
		return false
	}
	if q.ids != nil && !q.ids[string(ar.bytes(m.id))] {
		return false
	}
	return true
}

// mamQuery runs q on user's archive.
func (s *Server) mamQuery(user string, q *mamQuery) (*mamPage, *stanzaError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	user = strings.ToLower(user)
	a := s.archives[user]
	var (
		msgs []archived
		ar   arena
	)
	if a != nil {
		msgs, ar = a.msgs, a.arena
	}
	pos := func(id string) (int, *stanzaError) {
		p, ok := a.pos(id)
		if !ok {
			return 0, errItemNotFound
		}
		return p, nil
	}
	lo, hi := 0, len(msgs)
	if q.afterID != "" {
		p, se := pos(q.afterID)
		if se != nil {
			return nil, se
		}
		lo = max(lo, p+1)
	}
	if q.beforeID != "" {
		p, se := pos(q.beforeID)
		if se != nil {
			return nil, se
		}
		hi = min(hi, p)
	}
	for id := range q.ids {
		if _, se := pos(id); se != nil {
			return nil, se
		}
	}
	// The result set, as positions in the archive.
	own := user + "@" + s.domain
	set := resultSet{lo: lo, n: max(hi-lo, 0)}
	if !q.unfiltered() {
		set = resultSet{isList: true}
		for i := lo; i < hi; i++ {
			if q.matches(ar, &msgs[i], own) {
				set.list = append(set.list, i)
			}
		}
	}
	// The page: [from, to) in set.
	from, to, backward := 0, set.len(), false
	if q.hasAfter {
		p, se := pos(q.after)
		if se != nil {
			return nil, se
		}
		from = set.search(p + 1)
	}
	if q.hasBefore && q.before != "" {
		p, se := pos(q.before)
		if se != nil {
			return nil, se
		}
		to = set.search(p)
	}
	switch {
	case q.hasBefore && !q.hasAfter:
		backward = true
	case q.index >= 0 && !q.hasAfter:
		from = min(q.index, set.len())
	}
	to = max(to, from)
	var complete bool
	if backward {
		complete = to-from <= q.max
		from = max(from, to-q.max)
	} else {
		complete = to-from <= q.max
		to = min(to, from+q.max)
	}
	page := &mamPage{count: set.len(), index: from, complete: complete, msgs: make([]archived, 0, to-from), arena: ar}
	for j := from; j < to; j++ {
		page.msgs = append(page.msgs, msgs[set.at(j)])
	}
	return page, nil
}

// iqMAMQuery answers a query: the results, then <fin/>.
func (c *conn) iqMAMQuery(iq, p *element) (*element, *stanzaError) {
	if !c.toArchive(iq) {
		return nil, errServiceUnavailable
	}
	q, se := parseMAMQuery(p, c.cfg.MAMPageDefault, c.cfg.MAMPageMax)
	if se != nil {
		return nil, se
	}
	page, se := c.srv.mamQuery(c.user, q)
	if se != nil {
		return nil, se
	}
	if err := c.writeResults(iq, q, page); err != nil {
		return nil, &stanzaError{typ: "wait", cond: "internal-server-error"}
	}
	set := newElement(nsRSM, "set")
	if n := len(page.msgs); n > 0 {
		first := newElement(nsRSM, "first").addText(page.arena.str(page.msgs[0].id))
		if !c.cfg.MAMNoCount {
			first.setAttr("index", strconv.Itoa(page.index))
		}
		set.add(first, newElement(nsRSM, "last").addText(page.arena.str(page.msgs[n-1].id)))
	}
	if !c.cfg.MAMNoCount {
		set.add(newElement(nsRSM, "count").addText(strconv.Itoa(page.count)))
	}
	return newElement(nsMAM, "fin", "queryid", q.queryID, "complete", strconv.FormatBool(page.complete)).add(set), nil
}

// mamStamp formats an XEP-0082 DateTime in UTC, with fractional seconds
// only when they are not zero.
func mamStamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// iqMAMForm returns the query form (XEP-0313 §query-form).
func (c *conn) iqMAMForm(iq, _ *element) (*element, *stanzaError) {
	if !c.toArchive(iq) {
		return nil, errServiceUnavailable
	}
	x := newElement(nsDataForms, "x", "type", "form")
	x.add(newElement(nsDataForms, "field", "type", "hidden", "var", "FORM_TYPE").add(
		newElement(nsDataForms, "value").addText(nsMAM)))
	for _, f := range [][2]string{
		{"jid-single", "with"}, {"text-single", "start"}, {"text-single", "end"},
		{"text-single", "before-id"}, {"text-single", "after-id"},
	} {
		x.add(newElement(nsDataForms, "field", "type", f[0], "var", f[1]))
	}
	x.add(newElement(nsDataForms, "field", "type", "list-multi", "var", "ids").add(
		newElement("http://jabber.org/protocol/xdata-validate", "validate", "datatype", "xs:string").add(
			newElement("http://jabber.org/protocol/xdata-validate", "open"))))
	return newElement(nsMAM, "query").add(x), nil
}

// iqMAMMetadata returns the archive's first and last message (XEP-0313
// §archive-metadata).
func (c *conn) iqMAMMetadata(iq, _ *element) (*element, *stanzaError) {
	if !c.toArchive(iq) {
		return nil, errServiceUnavailable
	}
	if c.cfg.MAMNoMetadata {
		return nil, errBadRequest
	}
	md := newElement(nsMAM, "metadata")
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.archives[strings.ToLower(c.user)]; a != nil && len(a.msgs) > 0 {
		first, last := &a.msgs[0], &a.msgs[len(a.msgs)-1]
		md.add(newElement(nsMAM, "start", "id", a.arena.str(first.id), "timestamp", mamStamp(first.time())),
			newElement(nsMAM, "end", "id", a.arena.str(last.id), "timestamp", mamStamp(last.time())))
	}
	return md, nil
}
