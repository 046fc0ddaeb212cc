package xmpptest

import (
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// TestAppendResultMatchesElement: the direct writer produces the bytes of
// the element tree it replaced, for plain and awkward values (escapes,
// control and non-ASCII characters, empty attributes and bodies).
func TestAppendResultMatchesElement(t *testing.T) {
	values := []string{"", "bob@localhost", "a&b<c>'\"", "tab\tnl\ncr\r", "naïve ☃", "\x01bad\xff", "msg-0a1b2c"}
	r := rand.New(rand.NewPCG(1, 2))
	pick := func() string { return values[r.IntN(len(values))] }
	for range 2000 {
		var a userArchive
		id, body, mfrom, mto, typ, msgID := pick(), pick(), pick(), pick(), pick(), pick()
		m := archived{
			id: a.add(id), body: a.add(body), from: a.intern(mfrom), to: a.intern(mto), typ: a.intern(typ), msgID: a.add(msgID),
			at: time.Date(2025, 1, 2, 3, 4, 5, r.IntN(2)*123456000, time.UTC).UnixMicro(),
		}
		to, from, qid := pick(), pick(), pick()
		want := newElement(nsClient, "message", "to", to, "from", from).add(
			newElement(nsMAM, "result", "queryid", qid, "id", id).add(
				newElement(nsForward, "forwarded").add(
					newElement(nsDelay, "delay", "stamp", mamStamp(m.time())),
					newElement(nsClient, "message", "from", mfrom, "to", mto, "type", typ, "id", msgID).add(
						newElement(nsClient, "body").addText(body))))).appendXML(nil, nsClient)
		if got := appendResult(nil, to, from, qid, a.arena, &m); string(got) != string(want) {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	}
}

// TestResultSetRange: a range behaves as the list of its positions.
func TestResultSetRange(t *testing.T) {
	for lo := range 4 {
		for n := range 5 {
			rng := resultSet{lo: lo, n: n}
			list := resultSet{isList: true}
			for i := lo; i < lo+n; i++ {
				list.list = append(list.list, i)
			}
			if rng.len() != list.len() {
				t.Fatalf("len %d, %d", rng.len(), list.len())
			}
			for j := range n {
				if rng.at(j) != list.at(j) {
					t.Fatalf("at(%d)", j)
				}
			}
			for p := -1; p < lo+n+2; p++ {
				if got, want := rng.search(p), sort.SearchInts(list.list, p); got != want {
					t.Fatalf("lo %d n %d: search(%d) = %d, want %d", lo, n, p, got, want)
				}
			}
		}
	}
}
