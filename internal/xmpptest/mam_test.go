package xmpptest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	nsMAMT  = "urn:xmpp:mam:2"
	nsRSMT  = "http://jabber.org/protocol/rsm"
	nsFwdT  = "urn:xmpp:forward:0"
	nsDelT  = "urn:xmpp:delay"
	nsDiscT = "http://jabber.org/protocol/disco#info"
)

// mamForm is a MAM query form with the given field/value pairs.
func mamForm(kv ...string) string {
	s := "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>"
	for i := 0; i+1 < len(kv); i += 2 {
		s += "<field var='" + kv[i] + "'><value>" + kv[i+1] + "</value></field>"
	}
	return s + "</x>"
}

// mamResult is what a query returned.
type mamResult struct {
	results []rawEl // the <result/> elements, in the order received
	iq      rawEl
	fin     *rawEl // nil for an error
}

func (r *mamResult) ids() []string {
	var out []string
	for _, e := range r.results {
		out = append(out, e.attr("id"))
	}
	return out
}

// set returns the <fin/>'s RSM values.
func (r *mamResult) set() (first, index, last, count string, hasCount bool) {
	set := r.fin.child(nsRSMT, "set")
	if f := set.child(nsRSMT, "first"); f != nil {
		first, index = f.Text, f.attr("index")
	}
	if l := set.child(nsRSMT, "last"); l != nil {
		last = l.Text
	}
	if c := set.child(nsRSMT, "count"); c != nil {
		count, hasCount = c.Text, true
	}
	return
}

// errorCond returns the condition and type of an IQ error, or "".
func errorCond(iq rawEl) (cond, typ string) {
	e := iq.child(nsClient, "error")
	if iq.attr("type") != "error" || e == nil || len(e.Children) == 0 {
		return "", ""
	}
	return e.Children[0].XMLName.Local, e.attr("type")
}

// query sends an IQ with payload and reads the messages up to its answer.
func (c *client) query(typ, id, to, payload string) (msgs []rawEl, iq rawEl) {
	c.t.Helper()
	toAttr := ""
	if to != "" {
		toAttr = " to='" + to + "'"
	}
	c.write("<iq type='" + typ + "' id='" + id + "'" + toAttr + ">" + payload + "</iq>")
	for {
		e := c.next()
		if e.XMLName.Local == "iq" && e.attr("id") == id {
			return msgs, e
		}
		msgs = append(msgs, e)
	}
}

// mam runs a MAM query with the given form and RSM children and flip.
func (c *client) mam(queryID, form, rsm string, flip bool) *mamResult {
	c.t.Helper()
	p := "<query xmlns='urn:xmpp:mam:2' queryid='" + queryID + "'>" + form
	if rsm != "" {
		p += "<set xmlns='http://jabber.org/protocol/rsm'>" + rsm + "</set>"
	}
	if flip {
		p += "<flip-page/>"
	}
	p += "</query>"
	msgs, iq := c.query("set", "q-"+queryID, "", p)
	r := &mamResult{iq: iq, fin: iq.child(nsMAMT, "fin")}
	for _, m := range msgs {
		res := m.child(nsMAMT, "result")
		if res == nil {
			c.t.Fatalf("unexpected stanza during query: %s", m.String())
		}
		if res.attr("queryid") != queryID {
			c.t.Errorf("queryid = %q, want %q", res.attr("queryid"), queryID)
		}
		r.results = append(r.results, *res)
	}
	return r
}

func reversed(s []string) []string {
	s = slices.Clone(s)
	slices.Reverse(s)
	return s
}

func archiveIDs(s *Server, user string) []string {
	var ids []string
	for _, m := range s.Archive(user) {
		ids = append(ids, m.StanzaID)
	}
	return ids
}

func TestMAMPageForward(t *testing.T) {
	s := newTestServer(t, Config{})
	for i := range 5 {
		s.InjectArchive("alice", "carol@localhost", fmt.Sprint("old ", i), false)
	}
	anchor := s.InjectArchive("alice", "bob@localhost", "anchor", true)
	first, last := s.InjectArchiveBulk("alice", "bob@localhost", 120, true)
	all := archiveIDs(s, "alice")
	if all[6] != first || all[len(all)-1] != last || len(all) != 126 {
		t.Fatalf("bulk ids: first %s last %s, archive %d", first, last, len(all))
	}
	for _, id := range all {
		if _, err := strconv.ParseInt(id, 10, 64); err == nil || id == "" {
			t.Errorf("id %q is a number", id)
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(all)))) != len(all) {
		t.Error("ids are not unique")
	}

	c, full := login(t, s, "alice", "secret", "mam")
	form := mamForm("after-id", anchor)
	var got []string
	after := ""
	wantPages := []struct {
		n        int
		complete string
		index    string
	}{{50, "false", "0"}, {50, "false", "50"}, {20, "true", "100"}}
	for i, want := range wantPages {
		rsm := "<max>100</max>" // capped to MAMPageMax
		if after != "" {
			rsm += "<after>" + after + "</after>"
		}
		r := c.mam(fmt.Sprint("p", i), form, rsm, false)
		if r.fin == nil {
			t.Fatalf("page %d: %s", i, r.iq.String())
		}
		if len(r.results) != want.n || r.fin.attr("complete") != want.complete {
			t.Fatalf("page %d: %d results, complete=%q; want %d, %s", i, len(r.results), r.fin.attr("complete"), want.n, want.complete)
		}
		f, idx, l, count, _ := r.set()
		ids := r.ids()
		if f != ids[0] || l != ids[len(ids)-1] || idx != want.index || count != "120" {
			t.Errorf("page %d: set first=%s index=%s last=%s count=%s; ids %s..%s", i, f, idx, l, count, ids[0], ids[len(ids)-1])
		}
		got = append(got, ids...)
		after = l
	}
	if !slices.Equal(got, all[6:]) {
		t.Errorf("paged ids differ from the archive")
	}

	// One result in full.
	r := c.mam("one", mamForm("ids", first), "", false)
	if len(r.results) != 1 || r.fin.attr("complete") != "true" {
		t.Fatalf("ids query: %d results, fin %s", len(r.results), r.fin.String())
	}
	res := r.results[0]
	fwd := res.child(nsFwdT, "forwarded")
	d := fwd.child(nsDelT, "delay")
	m := fwd.child(nsClient, "message")
	if res.attr("id") != first || d == nil || m == nil || m.child(nsClient, "body").Text != "message 1" ||
		m.attr("from") != "bob@localhost" || m.attr("to") != "alice@localhost" || m.attr("type") != "chat" || m.attr("id") == "" {
		t.Errorf("result: %s", res.String())
	}
	stamp, err := time.Parse(time.RFC3339, d.attr("stamp"))
	if at, _ := s.ArchiveTime("alice", first); err != nil || !stamp.Equal(at) {
		t.Errorf("stamp %q (%v), want %v", d.attr("stamp"), err, at)
	}
	c.close()
	_ = full
}

func TestMAMResultAddressing(t *testing.T) {
	s := newTestServer(t, Config{})
	a, ajid := login(t, s, "alice", "secret", "desk")
	b, bjid := login(t, s, "bob", "hunter2", "phone")
	b.write("<message to='alice@localhost' type='chat' id='m1'><body>hello</body></message>")
	a.expect(nsClient, "message")

	msgs, iq := a.query("set", "q1", "alice@localhost", "<query xmlns='urn:xmpp:mam:2' queryid='x'>"+mamForm("with", "bob@localhost")+"</query>")
	if len(msgs) != 1 || iq.attr("type") != "result" {
		t.Fatalf("got %d messages, iq %s", len(msgs), iq.String())
	}
	outer := msgs[0]
	if outer.attr("to") != ajid || outer.attr("from") != "alice@localhost" {
		t.Errorf("outer message: %s", outer.String())
	}
	m := outer.child(nsMAMT, "result").child(nsFwdT, "forwarded").child(nsClient, "message")
	if m.attr("from") != bjid || m.attr("to") != "alice@localhost" || m.attr("id") != "m1" || m.attr("type") != "chat" {
		t.Errorf("forwarded: %s", m.String())
	}
	// with a full JID; with another contact.
	if r := a.mam("full", mamForm("with", bjid), "", false); len(r.results) != 1 {
		t.Errorf("with full JID: %d results", len(r.results))
	}
	if r := a.mam("carol", mamForm("with", "carol@localhost"), "", false); len(r.results) != 0 || r.fin.attr("complete") != "true" {
		t.Errorf("with carol: %d results, %s", len(r.results), r.fin.String())
	} else if set := r.fin.child(nsRSMT, "set"); len(set.Children) != 1 || set.child(nsRSMT, "count").Text != "0" {
		t.Errorf("empty page set: %s", set.String())
	}
	// Bob's archive has it as outgoing.
	if r := b.mam("b", "", "", false); len(r.results) != 1 {
		t.Errorf("bob: %d results", len(r.results))
	}
	// The server's JID hosts no archive.
	if _, iq := a.query("set", "q2", "localhost", "<query xmlns='urn:xmpp:mam:2'/>"); iq.attr("type") != "error" {
		t.Errorf("query to the server: %s", iq.String())
	}
	a.close()
	b.close()
}

func TestMAMLastPageAndBackward(t *testing.T) {
	s := newTestServer(t, Config{})
	s.InjectArchiveBulk("alice", "bob@localhost", 25, true)
	all := archiveIDs(s, "alice")
	c, _ := login(t, s, "alice", "secret", "mam")

	r := c.mam("last", "", "<max>10</max><before/>", false)
	if !slices.Equal(r.ids(), all[15:]) || r.fin.attr("complete") != "false" {
		t.Fatalf("last page: %v complete=%s", r.ids(), r.fin.attr("complete"))
	}
	if _, idx, _, count, _ := r.set(); idx != "15" || count != "25" {
		t.Errorf("last page index %s count %s", idx, count)
	}
	r = c.mam("prev", "", "<max>10</max><before>"+all[15]+"</before>", false)
	if !slices.Equal(r.ids(), all[5:15]) || r.fin.attr("complete") != "false" {
		t.Errorf("previous page: %v complete=%s", r.ids(), r.fin.attr("complete"))
	}
	r = c.mam("first", "", "<max>10</max><before>"+all[5]+"</before>", false)
	if !slices.Equal(r.ids(), all[:5]) || r.fin.attr("complete") != "true" {
		t.Errorf("oldest page: %v complete=%s", r.ids(), r.fin.attr("complete"))
	}
	// No <max/>: MAMPageDefault (20).
	r = c.mam("default", "", "<before/>", false)
	if !slices.Equal(r.ids(), all[5:]) || r.fin.attr("complete") != "false" {
		t.Errorf("default page: %d results complete=%s", len(r.results), r.fin.attr("complete"))
	}
	// Index, and count only.
	if r = c.mam("index", "", "<max>3</max><index>22</index>", false); !slices.Equal(r.ids(), all[22:]) || r.fin.attr("complete") != "true" {
		t.Errorf("index page: %v", r.ids())
	}
	if r = c.mam("count", "", "<max>0</max>", false); len(r.results) != 0 || r.fin.attr("complete") != "false" {
		t.Errorf("max 0: %d results, %s", len(r.results), r.fin.String())
	}
	// Flip: same page, newest first; first/last stay chronological.
	r = c.mam("flip", mamForm("after-id", all[2]), "<max>5</max>", true)
	if !slices.Equal(r.ids(), reversed(all[3:8])) {
		t.Errorf("flipped page: %v, want %v", r.ids(), all[3:8])
	}
	if f, _, l, _, _ := r.set(); f != all[3] || l != all[7] {
		t.Errorf("flipped set: first %s last %s", f, l)
	}
	r = c.mam("flipback", "", "<max>4</max><before/>", true)
	if !slices.Equal(r.ids(), reversed(all[21:])) || r.fin.attr("complete") != "false" {
		t.Errorf("flipped last page: %v", r.ids())
	}
	c.close()
}

func TestMAMErrors(t *testing.T) {
	s := newTestServer(t, Config{})
	s.InjectArchiveBulk("alice", "bob@localhost", 10, false)
	all := archiveIDs(s, "alice")
	c, _ := login(t, s, "alice", "secret", "mam")
	for _, tc := range []struct {
		name, form, rsm, cond, typ string
	}{
		{"after-id", mamForm("after-id", "nope"), "", "item-not-found", "cancel"},
		{"before-id", mamForm("before-id", "nope"), "", "item-not-found", "cancel"},
		{"ids", mamForm("ids", "nope"), "", "item-not-found", "cancel"},
		{"rsm after", "", "<after>nope</after>", "item-not-found", "cancel"},
		{"rsm before", "", "<before>nope</before>", "item-not-found", "cancel"},
		{"unknown field", mamForm("{urn:example}x", "1"), "", "feature-not-implemented", "cancel"},
		{"bad start", mamForm("start", "yesterday"), "", "bad-request", "modify"},
		{"bad max", "", "<max>-1</max>", "bad-request", "modify"},
	} {
		r := c.mam(tc.name, tc.form, tc.rsm, false)
		if cond, typ := errorCond(r.iq); cond != tc.cond || typ != tc.typ || len(r.results) != 0 {
			t.Errorf("%s: %s, want %s/%s", tc.name, r.iq.String(), tc.cond, tc.typ)
		}
	}
	// An expired cursor.
	r := c.mam("before expiry", "", "<max>2</max><after>"+all[1]+"</after>", false)
	if !slices.Equal(r.ids(), all[2:4]) {
		t.Fatalf("before expiry: %v", r.ids())
	}
	s.ExpireArchiveBefore("alice", all[5])
	r = c.mam("after expiry", "", "<max>2</max><after>"+all[1]+"</after>", false)
	if cond, _ := errorCond(r.iq); cond != "item-not-found" {
		t.Errorf("expired cursor: %s", r.iq.String())
	}
	if r = c.mam("rest", "", "", false); !slices.Equal(r.ids(), all[5:]) {
		t.Errorf("after expiry: %v", r.ids())
	}
	c.close()
}

func TestMAMTimeFilter(t *testing.T) {
	s := newTestServer(t, Config{})
	base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 6 {
		ids = append(ids, s.InjectArchiveAt("alice", "bob@localhost", fmt.Sprint(i), true, base.Add(time.Duration(i)*time.Hour)))
	}
	c, _ := login(t, s, "alice", "secret", "mam")
	r := c.mam("t", mamForm("start", "2024-05-01T13:00:00Z", "end", "2024-05-01T15:00:00Z"), "", false)
	if !slices.Equal(r.ids(), ids[1:4]) {
		t.Errorf("start/end: %v, want %v", r.ids(), ids[1:4])
	}
	if d := r.results[0].child(nsFwdT, "forwarded").child(nsDelT, "delay"); d.attr("stamp") != "2024-05-01T13:00:00Z" {
		t.Errorf("stamp %s", d.String())
	}
	r = c.mam("range", mamForm("after-id", ids[0], "before-id", ids[3]), "", false)
	if !slices.Equal(r.ids(), ids[1:3]) {
		t.Errorf("after-id/before-id: %v", r.ids())
	}
	c.close()
}

func TestMAMMetadataAndDisco(t *testing.T) {
	s := newTestServer(t, Config{})
	c, _ := login(t, s, "alice", "secret", "mam")
	_, iq := c.query("get", "d1", "alice@localhost", "<query xmlns='http://jabber.org/protocol/disco#info'/>")
	var feats []string
	for _, f := range iq.child(nsDiscT, "query").Children {
		feats = append(feats, f.attr("var"))
	}
	if !slices.Contains(feats, "urn:xmpp:mam:2") || !slices.Contains(feats, "urn:xmpp:mam:2#extended") {
		t.Errorf("account disco#info: %s", iq.String())
	}
	_, iq = c.query("get", "m1", "", "<metadata xmlns='urn:xmpp:mam:2'/>")
	if md := iq.child(nsMAMT, "metadata"); md == nil || len(md.Children) != 0 {
		t.Errorf("empty archive metadata: %s", iq.String())
	}
	first := s.InjectArchiveAt("alice", "bob@localhost", "a", true, time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC))
	last := s.InjectArchiveAt("alice", "bob@localhost", "b", false, time.Date(2021, 1, 2, 3, 4, 5, 500000000, time.UTC))
	_, iq = c.query("get", "m2", "alice@localhost", "<metadata xmlns='urn:xmpp:mam:2'/>")
	md := iq.child(nsMAMT, "metadata")
	st, end := md.child(nsMAMT, "start"), md.child(nsMAMT, "end")
	if st == nil || end == nil || st.attr("id") != first || st.attr("timestamp") != "2020-01-02T03:04:05Z" ||
		end.attr("id") != last || end.attr("timestamp") != "2021-01-02T03:04:05.5Z" {
		t.Errorf("metadata: %s", iq.String())
	}
	c.close()

	s.SetConfig(func(c *Config) { c.MAMNoMetadata = true })
	c, _ = login(t, s, "alice", "secret", "mam2")
	if _, iq = c.query("get", "m3", "", "<metadata xmlns='urn:xmpp:mam:2'/>"); func() string { c, _ := errorCond(iq); return c }() != "bad-request" {
		t.Errorf("MAMNoMetadata: %s", iq.String())
	}
	c.close()
}

func TestMAMConfig(t *testing.T) {
	s := newTestServer(t, Config{MAMNoCount: true, MAMNumericIDs: true, MAMPageDefault: 3, MAMPageMax: 4})
	s.InjectArchiveBulk("alice", "bob@localhost", 5, true)
	s.InjectArchive("alice", "bob@localhost", "x", true)
	all := archiveIDs(s, "alice")
	prev := int64(0)
	for _, id := range all {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil || n <= prev {
			t.Errorf("numeric ids: %v", all)
			break
		}
		prev = n
	}
	c, _ := login(t, s, "alice", "secret", "mam")
	r := c.mam("d", "", "", false)
	if !slices.Equal(r.ids(), all[:3]) {
		t.Errorf("default page: %v", r.ids())
	}
	if _, idx, _, _, hasCount := r.set(); hasCount || idx != "" {
		t.Errorf("MAMNoCount: %s", r.fin.String())
	}
	if r = c.mam("m", "", "<max>50</max>", false); len(r.results) != 4 || r.fin.attr("complete") != "false" {
		t.Errorf("capped page: %d", len(r.results))
	}
	if r = c.mam("e", mamForm("with", "nobody@localhost"), "", false); len(r.fin.child(nsRSMT, "set").Children) != 0 {
		t.Errorf("empty page without count: %s", r.fin.String())
	}
	// Routed messages get numeric stanza-ids too.
	b, _ := login(t, s, "bob", "hunter2", "phone")
	b.write("<message to='alice@localhost' type='chat' id='m1'><body>hello</body></message>")
	m := c.expect(nsClient, "message")
	if id := m.child(nsSID, "stanza-id").attr("id"); id <= all[len(all)-1] || strings.Trim(id, "0123456789") != "" {
		t.Errorf("routed stanza-id %q after %q", id, all[len(all)-1])
	}
	c.close()
	b.close()
}

func TestMAMBulkLarge(t *testing.T) {
	// Typically about 0.1 s for the injection and 10 ms for a query without
	// the race detector; the limits leave room for loaded machines.
	limit := time.Second
	if raceEnabled {
		limit = 5 * time.Second
	}
	s := newTestServer(t, Config{})
	start := time.Now()
	first, last := s.InjectArchiveBulk("alice", "bob@localhost", 100000, true)
	t.Logf("InjectArchiveBulk(100000): %v", time.Since(start))
	if d := time.Since(start); d > limit {
		t.Errorf("InjectArchiveBulk(100000) took %v", d)
	}
	c, _ := login(t, s, "alice", "secret", "mam")
	start = time.Now()
	r := c.mam("big", "", "<max>50</max><before/>", false)
	t.Logf("last-page query: %v", time.Since(start))
	if d := time.Since(start); d > limit {
		t.Errorf("last-page query took %v", d)
	}
	if ids := r.ids(); len(ids) != 50 || ids[49] != last || r.fin.attr("complete") != "false" {
		t.Errorf("last page: %d results", len(ids))
	}
	if _, idx, _, count, _ := r.set(); count != "100000" || idx != "99950" {
		t.Errorf("count %s index %s", count, idx)
	}
	start = time.Now()
	r = c.mam("after", mamForm("after-id", first), "<max>10</max>", false)
	if d := time.Since(start); d > limit || len(r.results) != 10 {
		t.Errorf("after-id query: %d results in %v", len(r.results), d)
	}
	c.close()
}
