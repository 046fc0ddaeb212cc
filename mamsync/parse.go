package mamsync

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
)

// Namespaces.
const (
	NSMAM       = "urn:xmpp:mam:2"
	NSRSM       = "http://jabber.org/protocol/rsm"
	NSForward   = "urn:xmpp:forward:0"
	NSDelay     = "urn:xmpp:delay"
	NSStanzaID  = "urn:xmpp:sid:0"
	NSCarbons   = "urn:xmpp:carbons:2"
	NSDataForms = "jabber:x:data"
	nsClient    = "jabber:client"
)

// Limits on what one stanza may make the client hold.
const (
	maxIDLen   = 1024
	maxBodyLen = 1 << 20
	maxRawLen  = 2 << 20
)

// ErrNotArchived reports a message without an archive id for this account
// (no stanza-id by= the account): it is passed to the application as is.
var ErrNotArchived = errors.New("mamsync: message carries no archive id for this account")

type wireDelay struct {
	Stamp string `xml:"stamp,attr"`
}

type wireSID struct {
	ID string `xml:"id,attr"`
	By string `xml:"by,attr"`
}

type wireInner struct {
	XMLName  xml.Name
	From     string     `xml:"from,attr"`
	To       string     `xml:"to,attr"`
	Type     string     `xml:"type,attr"`
	Body     *string    `xml:"body"`
	Delay    *wireDelay `xml:"urn:xmpp:delay delay"`
	StanzaID []wireSID  `xml:"urn:xmpp:sid:0 stanza-id"`
	OriginID *wireSID   `xml:"urn:xmpp:sid:0 origin-id"`
}

type wireForwarded struct {
	Delay   *wireDelay `xml:"urn:xmpp:delay delay"`
	Message *wireInner `xml:"jabber:client message"`
}

type wireMessage struct {
	XMLName  xml.Name
	From     string     `xml:"from,attr"`
	To       string     `xml:"to,attr"`
	Type     string     `xml:"type,attr"`
	Body     *string    `xml:"body"`
	Delay    *wireDelay `xml:"urn:xmpp:delay delay"`
	StanzaID []wireSID  `xml:"urn:xmpp:sid:0 stanza-id"`
	OriginID *wireSID   `xml:"urn:xmpp:sid:0 origin-id"`
	Result   *struct {
		QueryID   string         `xml:"queryid,attr"`
		ID        string         `xml:"id,attr"`
		Forwarded *wireForwarded `xml:"urn:xmpp:forward:0 forwarded"`
	} `xml:"urn:xmpp:mam:2 result"`
	Received *struct {
		Forwarded *wireForwarded `xml:"urn:xmpp:forward:0 forwarded"`
	} `xml:"urn:xmpp:carbons:2 received"`
	Sent *struct {
		Forwarded *wireForwarded `xml:"urn:xmpp:forward:0 forwarded"`
	} `xml:"urn:xmpp:carbons:2 sent"`
}

// Kind says what an incoming <message> is to mamsync.
type Kind uint8

const (
	// KindLive is an archived message delivered live (direct or carbon).
	KindLive Kind = iota + 1
	// KindResult is a MAM query result.
	KindResult
)

// Incoming is a parsed <message> that belongs in the archive mirror.
type Incoming struct {
	Kind    Kind
	QueryID string // KindResult only
	Message cache.Message
}

// Parse classifies a serialized top-level <message> received by account and
// returns it as an archive entry. It trusts MAM results and carbons only
// from the account itself (an empty or the account's bare from), and an
// archive id only when its by= is the account (XEP-0359). A message that is
// not archived for this account returns ErrNotArchived; malformed input
// returns another error. It never panics.
func Parse(account jid.JID, raw []byte) (Incoming, error) {
	if len(raw) > maxRawLen {
		return Incoming{}, fmt.Errorf("mamsync: message of %d bytes exceeds %d", len(raw), maxRawLen)
	}
	var w wireMessage
	if err := xml.Unmarshal(raw, &w); err != nil {
		return Incoming{}, fmt.Errorf("mamsync: %w", err)
	}
	if w.XMLName.Local != "message" {
		return Incoming{}, fmt.Errorf("mamsync: <%s> is not a message", w.XMLName.Local)
	}
	bare := account.Bare()
	fromSelf := w.From == "" || sameBare(w.From, bare)
	switch {
	case w.Result != nil:
		if !fromSelf {
			return Incoming{}, fmt.Errorf("mamsync: MAM result from %q, not the account's archive", truncate(w.From))
		}
		r := w.Result
		if r.ID == "" || len(r.ID) > maxIDLen {
			return Incoming{}, errors.New("mamsync: MAM result without a valid id")
		}
		if r.Forwarded == nil || r.Forwarded.Message == nil {
			return Incoming{}, errors.New("mamsync: MAM result without a forwarded message")
		}
		m, err := entry(bare, r.Forwarded.Message, r.Forwarded.Delay, raw)
		if err != nil {
			return Incoming{}, err
		}
		m.StanzaID = r.ID
		return Incoming{Kind: KindResult, QueryID: r.QueryID, Message: m}, nil
	case w.Received != nil || w.Sent != nil:
		if !fromSelf {
			// XEP-0280 §11: carbons from anyone but the account are forged.
			return Incoming{}, fmt.Errorf("mamsync: carbon from %q ignored", truncate(w.From))
		}
		fw := (*wireForwarded)(nil)
		if w.Received != nil {
			fw = w.Received.Forwarded
		} else {
			fw = w.Sent.Forwarded
		}
		if fw == nil || fw.Message == nil {
			return Incoming{}, errors.New("mamsync: carbon without a forwarded message")
		}
		return live(bare, fw.Message, fw.Delay, raw)
	}
	return live(bare, &wireInner{XMLName: w.XMLName, From: w.From, To: w.To, Type: w.Type, Body: w.Body,
		Delay: w.Delay, StanzaID: w.StanzaID, OriginID: w.OriginID}, nil, raw)
}

func live(bare jid.JID, in *wireInner, delay *wireDelay, raw []byte) (Incoming, error) {
	id := ""
	for _, s := range in.StanzaID {
		if sameBare(s.By, bare) {
			id = s.ID
			break
		}
	}
	if id == "" {
		return Incoming{}, ErrNotArchived
	}
	if len(id) > maxIDLen {
		return Incoming{}, errors.New("mamsync: stanza-id too long")
	}
	m, err := entry(bare, in, delay, raw)
	if err != nil {
		return Incoming{}, err
	}
	m.StanzaID = id
	return Incoming{Kind: KindLive, Message: m}, nil
}

// entry builds the cache record of a (forwarded or direct) message.
func entry(bare jid.JID, in *wireInner, delay *wireDelay, raw []byte) (cache.Message, error) {
	var m cache.Message
	from, err := jid.Parse(in.From)
	if err != nil && in.From != "" {
		return m, fmt.Errorf("mamsync: invalid from %q", truncate(in.From))
	}
	to, err := jid.Parse(in.To)
	if err != nil && in.To != "" {
		return m, fmt.Errorf("mamsync: invalid to %q", truncate(in.To))
	}
	if in.From == "" || from.Bare().Equal(bare) {
		m.Direction = cache.DirectionOut
		m.Peer = to.Bare().String()
	} else {
		m.Direction = cache.DirectionIn
		m.Peer = from.Bare().String()
	}
	if in.Body != nil {
		if len(*in.Body) > maxBodyLen {
			return m, errors.New("mamsync: body too long")
		}
		m.Body = *in.Body
	}
	if in.OriginID != nil && len(in.OriginID.ID) <= maxIDLen {
		m.OriginID = in.OriginID.ID
	}
	m.Time = time.Now().UTC()
	for _, d := range []*wireDelay{delay, in.Delay} {
		if d == nil {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(d.Stamp))
		if err != nil {
			return m, fmt.Errorf("mamsync: invalid delay stamp %q", truncate(d.Stamp))
		}
		m.Time = t.UTC()
		break
	}
	m.Raw = bytes.Clone(raw)
	return m, nil
}

func sameBare(s string, bare jid.JID) bool {
	if s == "" {
		return false
	}
	if s == bare.String() {
		return true
	}
	j, err := jid.Parse(s)
	return err == nil && j.Bare().Equal(bare)
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Fin is the end of a MAM query page (XEP-0313 <fin/> with RSM).
type Fin struct {
	Complete bool
	First    string
	Last     string
	Count    int // -1 when the server does not say
}

type wireFin struct {
	XMLName  xml.Name
	Complete string `xml:"complete,attr"`
	Set      struct {
		First string  `xml:"first"`
		Last  string  `xml:"last"`
		Count *string `xml:"count"`
	} `xml:"http://jabber.org/protocol/rsm set"`
}

// ParseFin parses a serialized <fin xmlns='urn:xmpp:mam:2'>.
func ParseFin(raw []byte) (Fin, error) {
	var w wireFin
	if err := xml.Unmarshal(raw, &w); err != nil {
		return Fin{}, fmt.Errorf("mamsync: fin: %w", err)
	}
	if w.XMLName.Space != NSMAM || w.XMLName.Local != "fin" {
		return Fin{}, fmt.Errorf("mamsync: expected <fin xmlns='%s'>", NSMAM)
	}
	return w.fin()
}

func (w *wireFin) fin() (Fin, error) {
	f := Fin{Complete: w.Complete == "true" || w.Complete == "1", First: strings.TrimSpace(w.Set.First), Last: strings.TrimSpace(w.Set.Last), Count: -1}
	if len(f.First) > maxIDLen || len(f.Last) > maxIDLen {
		return Fin{}, errors.New("mamsync: fin: id too long")
	}
	if w.Set.Count != nil {
		n, err := strconv.Atoi(strings.TrimSpace(*w.Set.Count))
		if err != nil || n < 0 {
			return Fin{}, fmt.Errorf("mamsync: fin: invalid count %q", truncate(*w.Set.Count))
		}
		f.Count = n
	}
	return f, nil
}
