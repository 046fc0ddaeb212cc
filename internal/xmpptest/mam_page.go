package xmpptest

import (
	"slices"
	"sort"
)

// The MAM hot path: a page of a large archive. A catch-up of 100,000
// messages runs a hundred queries of a thousand results against the same
// archive, in the same process as the client it serves, so the server's
// cost per result counts in every client benchmark. Two things keep it
// small without changing a byte on the wire: a query without per-message
// filters selects a range of the archive, which is not listed message by
// message (resultSet), and each result is written straight into the page's
// buffer (appendResult) instead of being built as an element tree and
// encoded.

// resultChunk is how many results the server writes at a time: the client
// starts reading a page while the server still writes it, as a server that
// streams results from its store does, instead of after the whole page is
// built.
const resultChunk = 128

// writeResults writes the page's results (before the <fin/>), in chunks of
// resultChunk, each chunk in one Write.
func (c *conn) writeResults(iq *element, q *mamQuery, page *mamPage) error {
	to, from := c.jid.String(), iq.attrValue("to")
	var buf []byte
	items := make([]queuedOut, 0, min(resultChunk, len(page.msgs)))
	for lo := 0; lo < len(page.msgs); lo += resultChunk {
		hi := min(lo+resultChunk, len(page.msgs))
		// A buffer per chunk, each item a slice of it (stream management
		// may keep the items until acknowledged).
		buf, items = nil, items[:0]
		start := 0
		for i := lo; i < hi; i++ {
			m := &page.msgs[i]
			if q.flip {
				m = &page.msgs[len(page.msgs)-1-i]
			}
			buf = appendResult(buf, to, from, q.queryID, page.arena, m)
			if i == lo {
				// Room for the chunk, the first result being typical.
				buf = slices.Grow(buf, (len(buf)+len(buf)/8)*(hi-lo-1))
			}
			items = append(items, queuedOut{name(nsClient, "message"), buf[start:len(buf):len(buf)]})
			start = len(buf)
		}
		if err := c.writeItems(items...); err != nil {
			return err
		}
	}
	return nil
}

// resultSet is a query's result set: positions in the archive, ascending.
// Either the range [lo, lo+n) (a query without with, start, end or ids) or
// an explicit list.
type resultSet struct {
	lo, n  int
	list   []int
	isList bool
}

func (s *resultSet) len() int {
	if s.isList {
		return len(s.list)
	}
	return s.n
}

// at returns the archive position of the j-th member.
func (s *resultSet) at(j int) int {
	if s.isList {
		return s.list[j]
	}
	return s.lo + j
}

// search returns the index of the first member at archive position p or
// later (len() if none), as sort.SearchInts on the list.
func (s *resultSet) search(p int) int {
	if s.isList {
		return sort.SearchInts(s.list, p)
	}
	return min(max(p-s.lo, 0), s.n)
}

// unfiltered reports whether q keeps every message of its id range.
func (q *mamQuery) unfiltered() bool {
	return q.with == "" && q.start.IsZero() && q.end.IsZero() && q.ids == nil
}

// appendResult appends the <message/> carrying m (its strings in ar) as a
// result of query queryID, addressed to 'to' from 'from' (left out when
// empty): the same bytes as the element tree
//
//	message(to, from) > result(queryid, id) > forwarded > [delay(stamp),
//	message(from, to, type, id) > body]
//
// encoded with appendXML in the jabber:client stream namespace.
func appendResult(b []byte, to, from, queryID string, ar arena, m *archived) []byte {
	b = append(b, "<message"...)
	b = appendAttrIf(b, "to", to)
	b = appendAttrIf(b, "from", from)
	b = append(b, "><result xmlns='"+nsMAM+"'"...)
	b = appendAttrIf(b, "queryid", queryID)
	b = appendAttrIf(b, "id", ar.bytes(m.id))
	b = append(b, "><forwarded xmlns='"+nsForward+"'><delay xmlns='"+nsDelay+"'"...)
	b = appendAttrIf(b, "stamp", mamStamp(m.time()))
	b = append(b, "/><message xmlns='"+nsClient+"'"...)
	b = appendAttrIf(b, "from", ar.bytes(m.from))
	b = appendAttrIf(b, "to", ar.bytes(m.to))
	b = appendAttrIf(b, "type", ar.bytes(m.typ))
	b = appendAttrIf(b, "id", ar.bytes(m.msgID))
	if m.body.n == 0 {
		b = append(b, "><body/>"...)
	} else {
		b = append(b, "><body>"...)
		b = appendText(b, ar.bytes(m.body))
		b = append(b, "</body>"...)
	}
	return append(b, "</message></forwarded></result></message>"...)
}

// appendAttrIf is appendAttr, leaving out an empty value as newElement does.
func appendAttrIf[T string | []byte](b []byte, name string, value T) []byte {
	if len(value) == 0 {
		return b
	}
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, "='"...)
	b = appendText(b, value)
	return append(b, '\'')
}

// appendText is appendEscaped (xml.EscapeText) with a fast path for the
// common case: printable ASCII without a character EscapeText changes.
func appendText[T string | []byte](b []byte, s T) []byte {
	for i := range len(s) {
		switch c := s[i]; {
		case c < 0x20, c >= 0x7f, c == '"', c == '\'', c == '&', c == '<', c == '>':
			return appendEscaped(b, string(s))
		}
	}
	return append(b, s...)
}
