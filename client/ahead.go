package client

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/stanza"

	"github.com/pipebind/pipebind/mamsync"
	"github.com/pipebind/pipebind/mds"
	"github.com/pipebind/pipebind/sm"
	"github.com/pipebind/pipebind/wire"
)

// ahead is what a login writes right behind its authentication when it is
// expected to succeed (login.Config.AfterAuth): the initial presence, the
// first archive page from the store's cursor and the XEP-0490 marker fetch.
// The server answers them in the login's own round trip, so that the client
// is ready (logged in, store level, unread counts known) one round trip
// after TLS instead of three or four.
type ahead struct {
	stanzas  []sm.Stanza // as written, for stream management's count
	presence bool
	mam      mamsync.Ahead
	mdsID    string
}

// newAhead returns what a login with cfg may write ahead, the archive's
// first page asked after cursor.
func newAhead(cfg Config, cursor string) *ahead {
	a := &ahead{}
	if !cfg.NoPresence {
		// Before the archive is asked: every message archived after its
		// answer reaches this session live.
		a.add(encodeStanza(stanza.Presence{}.Wrap(nil)), wire.KindPresence)
		a.presence = true
	}
	var req []byte
	a.mam, req = mamsync.NewAhead(cursor, cfg.SyncPageSize)
	a.add(req, wire.KindIQ)
	a.mdsID = a.mam.ID + "-mds"
	a.add(mds.FetchRequest(a.mdsID), wire.KindIQ)
	return a
}

func (a *ahead) add(raw []byte, k wire.Kind) {
	a.stanzas = append(a.stanzas, sm.Stanza{Raw: raw, Kind: k})
}

// bytes is the write's tail.
func (a *ahead) bytes() []byte {
	var b []byte
	for _, st := range a.stanzas {
		b = append(b, st.Raw...)
	}
	return b
}

// encodeStanza serializes a stanza's tokens (written without error to a
// buffer).
func encodeStanza(r xml.TokenReader) []byte {
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	_, _ = xmlstream.Copy(e, r)
	_ = e.Flush()
	return b.Bytes()
}

// aheadHandler takes the answers to what the login wrote ahead, which the
// session receives outside any SendIQ: the archive page's to the syncer,
// the markers' to the reconciliation; answers to ahead requests of an
// attempt the server refused (stale) are dropped. Everything else goes on.
type aheadHandler struct {
	c    *link
	next xmpp.Handler
}

func (h aheadHandler) HandleXMPP(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	c := h.c
	if start.Name.Local != "iq" || (c.ahead == nil && c.stale == nil) {
		return h.next.HandleXMPP(t, start)
	}
	typ, id := attrValue(start, "type"), attrValue(start, "id")
	if typ != "result" && typ != "error" {
		return h.next.HandleXMPP(t, start)
	}
	switch {
	case c.ahead != nil && c.aheadQ != nil && id == c.ahead.mam.ID:
		return c.aheadQ.AnswerElement(*start, t)
	case c.ahead != nil && id == c.ahead.mdsID:
		raw := encodeStanza(xmlstream.MultiReader(xmlstream.Token(*start), xmlstream.Inner(t), xmlstream.Token(start.End())))
		select {
		case c.mdsAnswer <- raw:
		default:
		}
		return nil
	case c.stale[id]:
		return nil
	}
	return h.next.HandleXMPP(t, start)
}

// aheadMarkers waits for the answer to the marker fetch written ahead and
// applies the markers it holds.
func (c *link) aheadMarkers(ctx context.Context) error {
	var timeout <-chan time.Time
	if d := c.cfg.requestTimeout(); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	var raw []byte
	select {
	case raw = <-c.mdsAnswer:
	case <-timeout:
		return fmt.Errorf("%w: the marker fetch written with the login was not answered", ErrTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	markers, err := mds.ParseFetch(c.info.JID, raw)
	if err != nil {
		return c.noMarkers(err)
	}
	return c.applyMarkers(ctx, markers)
}
