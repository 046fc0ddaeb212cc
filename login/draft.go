package login

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"
)

// Limits on what a server's <bound> may make the client hold.
const (
	maxUnreads  = 10000
	maxIDLength = 1024
)

// Unread is one contact's entry in the v0.3.0 <unreads>.
type Unread struct {
	JID    jid.JID `json:"jid"`
	ReadID string  `json:"read_id"`
	Count  int     `json:"count"`
}

// MarshalJSON writes {"jid": "...", "read_id": "...", "count": N}.
func (u Unread) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		JID    string `json:"jid"`
		ReadID string `json:"read_id"`
		Count  int    `json:"count"`
	}{u.JID.String(), u.ReadID, u.Count})
}

// DraftBound is the XEP-0386 v0.3.0 <bound xmlns='urn:xmpp:bind2:0'>.
type DraftBound struct {
	JID jid.JID
	// LatestID is the newest stanza id in the user's archive ("" if the
	// server did not say).
	LatestID string
	// Unreads is nil when the server does not track unreads (<unreads>
	// absent), and non-nil (possibly empty) when it does.
	Unreads []Unread
	// Rejected describes entries of <unreads> that were dropped as invalid
	// (bad JID, negative or oversized count, duplicate contact).
	Rejected []string
}

type wireDraftBound struct {
	JID      string  `xml:"jid"`
	LatestID *string `xml:"latest-id"`
	Unreads  *struct {
		Unread []struct {
			JID    string `xml:"jid,attr"`
			ReadID string `xml:"read-id,attr"`
			Count  string `xml:"unread-count,attr"`
		} `xml:"unread"`
	} `xml:"unreads"`
}

// ParseDraftBound parses a serialized <bound xmlns='urn:xmpp:bind2:0'>.
func ParseDraftBound(data []byte) (DraftBound, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.Token()
		if err != nil {
			return DraftBound{}, readError("bound", err)
		}
		if start, ok := tok.(xml.StartElement); ok {
			if start.Name != (xml.Name{Space: NSBind2Draft, Local: "bound"}) {
				return DraftBound{}, protocolErrorf("expected <bound xmlns='%s'>, got <%s xmlns='%s'>", NSBind2Draft, start.Name.Local, start.Name.Space)
			}
			return decodeDraftBound(d, start)
		}
	}
}

func decodeDraftBound(d *xml.Decoder, start xml.StartElement) (DraftBound, error) {
	var w wireDraftBound
	if err := d.DecodeElement(&w, &start); err != nil {
		return DraftBound{}, readError("bound", err)
	}
	var b DraftBound
	j, err := jid.Parse(strings.TrimSpace(w.JID))
	if err != nil || j.Resourcepart() == "" || j.Localpart() == "" {
		return b, protocolErrorf("bound: <jid> %q is not a full JID", truncate(w.JID, 128))
	}
	b.JID = j
	if w.LatestID != nil {
		id := strings.TrimSpace(*w.LatestID)
		if len(id) > maxIDLength {
			return b, protocolErrorf("bound: latest-id longer than %d bytes", maxIDLength)
		}
		b.LatestID = id
	}
	if w.Unreads == nil {
		return b, nil
	}
	if len(w.Unreads.Unread) > maxUnreads {
		return b, protocolErrorf("bound: %d unread entries, more than the %d accepted", len(w.Unreads.Unread), maxUnreads)
	}
	b.Unreads = make([]Unread, 0, len(w.Unreads.Unread))
	seen := make(map[string]bool, len(w.Unreads.Unread))
	for _, u := range w.Unreads.Unread {
		reject := func(why string) {
			b.Rejected = append(b.Rejected, fmt.Sprintf("unread %q: %s", truncate(u.JID, 128), why))
		}
		uj, err := jid.Parse(strings.TrimSpace(u.JID))
		if err != nil || u.JID == "" {
			reject("invalid JID")
			continue
		}
		uj = uj.Bare()
		if seen[uj.String()] {
			reject("duplicate contact")
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(u.Count), 10, 32)
		if err != nil || n < 0 {
			reject("unread-count is not a non-negative 32-bit integer")
			continue
		}
		if len(u.ReadID) > maxIDLength {
			reject("read-id too long")
			continue
		}
		seen[uj.String()] = true
		b.Unreads = append(b.Unreads, Unread{JID: uj, ReadID: strings.TrimSpace(u.ReadID), Count: int(n)})
	}
	return b, nil
}

// draftRestart is what the v0.3.0 draft pipelines after the final SASL
// message: the post-authentication stream header and the bind request.
func (n *negotiation) draftRestart() []byte {
	return append(n.header(), "<bind xmlns='urn:xmpp:bind2:0'/>"...)
}

// bind2Draft completes the XEP-0386 v0.3.0 path: the SASL exchange (whose
// final client message already carried the restart header and <bind/>),
// then <success/>, the new stream header and features, and <bound>, all
// read through the same decoder so no byte is lost across the restart.
func (n *negotiation) bind2Draft(_ context.Context, r *reader, p plan) error {
	if err := n.saslClassic(r, &p); err != nil {
		return err
	}
	n.step = StepRestart
	if err := r.header(); err != nil {
		return err
	}
	n.step = StepFeatures
	start, err := r.next()
	if err != nil {
		return err
	}
	if start.Name != (xml.Name{Space: NSStream, Local: "features"}) {
		return protocolErrorf("expected <stream:features> after restart, got <%s>", start.Name.Local)
	}
	post, err := decodeFeatures(r.d, start)
	if err != nil {
		return err
	}
	if !post.Bind2Draft {
		// The server no longer advertises bind2:0 after the restart: the
		// cache was stale. Retry once on the classic path.
		live := n.res.Features
		live.Bind2Draft = false
		mergePostAuth(&live, post)
		live.Bind2Draft = false
		return &StaleError{Reason: "bind2:0 no longer advertised after authentication", Live: live}
	}
	mergePostAuth(&n.res.Features, post)
	return n.readDraftBound(r)
}

// readDraftBound reads the <bound> answering <bind xmlns='urn:xmpp:bind2:0'/>.
func (n *negotiation) readDraftBound(r *reader) error {
	n.step = StepBind
	start, err := r.next()
	if err != nil {
		return err
	}
	switch start.Name {
	case xml.Name{Space: NSBind2Draft, Local: "bound"}:
	case xml.Name{Space: NSClient, Local: "iq"}, xml.Name{Space: NSBind2Draft, Local: "failure"}:
		_ = r.d.Skip()
		return fmt.Errorf("%w: the server did not bind (<%s> in answer to bind2)", ErrRefused, start.Name.Local)
	default:
		return protocolErrorf("expected <bound xmlns='%s'>, got <%s xmlns='%s'>", NSBind2Draft, start.Name.Local, start.Name.Space)
	}
	b, err := decodeDraftBound(r.d, start)
	if err != nil {
		return err
	}
	if !b.JID.Bare().Equal(n.bare) {
		return protocolErrorf("bound as %s, expected %s", b.JID.Bare(), n.bare)
	}
	for _, why := range b.Rejected {
		n.log.Warn().Str("reason", why).Msg("bind2 draft: unread entry rejected")
	}
	n.res.JID = b.JID
	n.res.Draft = &b
	// v0.3.0: the server enables carbons silently on bind.
	n.res.Carbons = true
	// Config.AfterAuth rode behind <bind/>: their answers follow.
	n.res.AfterAuthSent = n.afterWritten
	return nil
}
