package mamsync

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
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
	Message Message
}

// Parse classifies a serialized top-level <message> received by account and
// returns it as an archive entry, with Message.Raw a copy of raw. It trusts
// MAM results and carbons only from the account itself (an empty or the
// account's bare from), and an archive id only when its by= is the account
// (XEP-0359). A message that is not archived for this account returns
// ErrNotArchived; malformed input returns another error. It never panics.
//
// Parse and HandleRaw share one parser (readMessage); Parse keeps raw
// itself as Message.Raw.
func Parse(account jid.JID, raw []byte) (Incoming, error) {
	if len(raw) > maxRawLen {
		return Incoming{}, fmt.Errorf("mamsync: message of %d bytes exceeds %d", len(raw), maxRawLen)
	}
	d := xml.NewDecoder(bytes.NewReader(raw))
	var start xml.StartElement
	for start.Name.Local == "" {
		tok, err := d.Token()
		if err != nil {
			return Incoming{}, fmt.Errorf("mamsync: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			start = t
		case xml.EndElement:
			return Incoming{}, errors.New("mamsync: unexpected end element")
		}
	}
	p := tokenParser{r: d}
	in, perr, err := p.message(account, start)
	if err != nil {
		return Incoming{}, fmt.Errorf("mamsync: %w", err)
	}
	if perr != nil {
		return Incoming{}, perr
	}
	in.Message.Raw = bytes.Clone(raw)
	return in, nil
}

// readMessage reads a top-level <message> from r, whose start element the
// caller has read (r yields its content and then its end element, as
// mellium hands a stanza to a handler), and returns it serialized together
// with what Parse would make of the serialization: the Incoming (its
// Message.Raw is raw) or the reason it is not an archive entry (perr:
// ErrNotArchived, or a malformed message). err is a failure to read r: the
// stream is then unusable. The element is read in one pass, token by token,
// and is always read to its end, also when perr is set, so that raw is the
// whole message.
func readMessage(account jid.JID, start xml.StartElement, r xml.TokenReader) (raw []byte, in Incoming, perr, err error) {
	st := readers.Get().(*readState)
	defer func() {
		if cap(st.w.b) <= maxPooledWriter {
			st.w.reset()
			readers.Put(st)
		}
	}()
	p := tokenParser{r: r, w: &st.w, jids: &st.jids}
	p.w.token(start)
	in, perr, err = p.message(account, start)
	if err != nil {
		return nil, Incoming{}, nil, err
	}
	// The serialization is built in a pooled buffer and kept in one of its
	// exact size: it is held until stored, a batch of them at a time.
	raw = bytes.Clone(p.w.b)
	switch {
	case perr != nil:
	case len(raw) > maxRawLen:
		perr = fmt.Errorf("mamsync: message of %d bytes exceeds %d", len(raw), maxRawLen)
	case p.w.lossy:
		perr = errors.New("mamsync: message with a name that cannot be serialized")
	}
	if perr != nil {
		return raw, Incoming{}, perr, nil
	}
	in.Message.Raw = raw
	return raw, in, nil, nil
}

// readers are readMessage's serialization buffers and JID caches.
var readers = sync.Pool{New: func() any { return &readState{w: rawWriter{b: make([]byte, 0, 2048)}} }}

type readState struct {
	w    rawWriter
	jids jidCache
}

// maxPooledWriter bounds the buffers kept for reuse.
const maxPooledWriter = 64 << 10

// msgFields are the parts of a <message> (top-level or forwarded) that
// mamsync reads.
type msgFields struct {
	from, to   string
	hasBody    bool
	bodyTooBig bool
	body       []byte
	delay      *string // the first urn:xmpp:delay stamp, if any
	stanzaIDs  []wireSID
	originID   *string
}

type wireSID struct {
	ID string
	By string
}

// forwarded is a XEP-0297 <forwarded/>: its delay and message.
type forwarded struct {
	delay *string
	msg   *msgFields
}

// mamResult is a XEP-0313 <result/>.
type mamResult struct {
	queryID, id string
	fw          *forwarded
}

// tokenParser reads one element from a token stream, serializing what it
// reads to w when w is not nil. It reads with loops, not callbacks: it
// runs once per message on the session's Serve goroutine.
type tokenParser struct {
	r    xml.TokenReader
	w    *rawWriter
	jids *jidCache // nil: no cache
}

// next returns the next token. Reaching the end of r inside the element is
// io.ErrUnexpectedEOF.
func (p *tokenParser) next() (xml.Token, error) {
	tok, err := p.r.Token()
	if tok != nil {
		if p.w != nil {
			p.w.token(tok)
		}
		return tok, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return nil, err
}

// skip reads to the end of the element whose start was just read.
func (p *tokenParser) skip() error {
	for depth := 0; ; {
		tok, err := p.next()
		if err != nil {
			return err
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			if depth == 0 {
				return nil
			}
			depth--
		}
	}
}

// child reads the content of the element whose start was read last (or
// whose last child was read to its end) up to its next child element, and
// returns that child's start; ok is false when the element ended instead.
// The caller reads the child to its end (skip, or child again on its
// content).
func (p *tokenParser) child() (start xml.StartElement, ok bool, err error) {
	for {
		tok, err := p.next()
		if err != nil {
			return xml.StartElement{}, false, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, true, nil
		case xml.EndElement:
			return xml.StartElement{}, false, nil
		}
	}
}

// text reads the element whose start was just read to its end and appends
// its own character data (not its children's) to *b, up to max bytes;
// more sets *over.
func (p *tokenParser) text(b *[]byte, max int, over *bool) error {
	for {
		tok, err := p.next()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if err := p.skip(); err != nil {
				return err
			}
		case xml.EndElement:
			return nil
		case xml.CharData:
			if len(*b)+len(t) > max {
				*over = true
			} else {
				*b = append(*b, t...)
			}
		}
	}
}

// attr returns the value of start's unqualified attribute local.
func attr(start xml.StartElement, local string) (string, bool) {
	for _, a := range start.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// stamp returns start's stamp attribute, allocated once.
func stamp(start xml.StartElement) *string {
	s, _ := attr(start, "stamp")
	return &s
}

// fields reads a <message>'s content into f. When outer is not nil (the
// top-level message) it also reads a MAM <result/> and carbons into outer.
func (p *tokenParser) fields(start xml.StartElement, f *msgFields, outer *outerParts) error {
	f.from, _ = attr(start, "from")
	f.to, _ = attr(start, "to")
	ns := start.Name.Space
	for {
		c, ok, err := p.child()
		if err != nil || !ok {
			return err
		}
		switch {
		case c.Name.Space == ns && c.Name.Local == "body" && !f.hasBody:
			// The first body is the message's.
			f.hasBody = true
			err = p.text(&f.body, maxBodyLen, &f.bodyTooBig)
		case outer != nil && c.Name.Space == NSMAM && c.Name.Local == "result" && outer.result == nil:
			outer.result = &mamResult{}
			outer.result.queryID, _ = attr(c, "queryid")
			outer.result.id, _ = attr(c, "id")
			err = p.forwardedIn(&outer.result.fw)
		case outer != nil && c.Name.Space == NSCarbons && (c.Name.Local == "received" || c.Name.Local == "sent") && !outer.carbon:
			outer.carbon = true
			err = p.forwardedIn(&outer.carbonFw)
		default:
			switch {
			case c.Name.Space == NSDelay && c.Name.Local == "delay":
				if f.delay == nil {
					f.delay = stamp(c)
				}
			case c.Name.Space == NSStanzaID && c.Name.Local == "stanza-id":
				if len(f.stanzaIDs) < maxStanzaIDs {
					id, _ := attr(c, "id")
					by, _ := attr(c, "by")
					f.stanzaIDs = append(f.stanzaIDs, wireSID{ID: id, By: by})
				}
			case c.Name.Space == NSStanzaID && c.Name.Local == "origin-id":
				if f.originID == nil {
					s, _ := attr(c, "id")
					f.originID = &s
				}
			}
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
}

// maxStanzaIDs bounds the <stanza-id/>s read from one message.
const maxStanzaIDs = 16

// outerParts are what only a top-level message carries.
type outerParts struct {
	result   *mamResult
	carbon   bool
	carbonFw *forwarded
}

// forwardedIn reads the content of a <result/> or carbon: the first
// <forwarded/> goes to *fw.
func (p *tokenParser) forwardedIn(fw **forwarded) error {
	for {
		c, ok, err := p.child()
		if err != nil || !ok {
			return err
		}
		if *fw != nil || c.Name.Space != NSForward || c.Name.Local != "forwarded" {
			err = p.skip()
		} else {
			*fw = &forwarded{}
			err = p.forwarded(*fw)
		}
		if err != nil {
			return err
		}
	}
}

// forwarded reads a <forwarded/>'s content: its delay and first message.
func (p *tokenParser) forwarded(f *forwarded) error {
	for {
		c, ok, err := p.child()
		if err != nil || !ok {
			return err
		}
		switch {
		case c.Name.Space == nsClient && c.Name.Local == "message" && f.msg == nil:
			f.msg = &msgFields{}
			err = p.fields(c, f.msg, nil)
		case c.Name.Space == NSDelay && c.Name.Local == "delay" && f.delay == nil:
			f.delay = stamp(c)
			err = p.skip()
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
}

// message reads a top-level message (its start already read) and
// classifies it. perr is why it is not an archive entry; err a failure to
// read the token stream.
func (p *tokenParser) message(account jid.JID, start xml.StartElement) (in Incoming, perr, err error) {
	var (
		f     msgFields
		outer outerParts
	)
	if err := p.fields(start, &f, &outer); err != nil {
		return Incoming{}, nil, err
	}
	if start.Name.Local != "message" {
		return Incoming{}, fmt.Errorf("mamsync: <%s> is not a message", truncate(start.Name.Local)), nil
	}
	in, perr = classify(account.Bare(), &f, &outer, p.jids)
	return in, perr, nil
}

// jidCache remembers the last few JIDs parsed: the messages of a MAM page
// are between the same few addresses, and parsing one (PRECIS, IDNA) costs
// more than the rest of a message.
type jidCache struct {
	e    [4]jidEntry
	next int
}

type jidEntry struct {
	s, bareStr string
	bare       jid.JID
	err        error
	set        bool
}

// bare parses s and returns its bare JID and that JID's string form.
func (c *jidCache) bare(s string) (jid.JID, string, error) {
	if c != nil {
		for i := range c.e {
			if e := &c.e[i]; e.set && e.s == s {
				return e.bare, e.bareStr, e.err
			}
		}
	}
	j, err := jid.Parse(s)
	var e jidEntry
	if err == nil {
		e.bare = j.Bare()
		e.bareStr = e.bare.String()
	}
	e.s, e.err, e.set = s, err, true
	if c != nil {
		c.e[c.next] = e
		c.next = (c.next + 1) % len(c.e)
	}
	return e.bare, e.bareStr, e.err
}

// classify turns a read message into an archive entry.
func classify(bare jid.JID, f *msgFields, outer *outerParts, jids *jidCache) (Incoming, error) {
	fromSelf := f.from == "" || sameBare(f.from, bare, jids)
	switch {
	case outer.result != nil:
		if !fromSelf {
			return Incoming{}, fmt.Errorf("mamsync: MAM result from %q, not the account's archive", truncate(f.from))
		}
		r := outer.result
		if r.id == "" || len(r.id) > maxIDLen {
			return Incoming{}, errors.New("mamsync: MAM result without a valid id")
		}
		if r.fw == nil || r.fw.msg == nil {
			return Incoming{}, errors.New("mamsync: MAM result without a forwarded message")
		}
		m, err := entry(bare, r.fw.msg, r.fw.delay, jids)
		if err != nil {
			return Incoming{}, err
		}
		m.StanzaID = r.id
		return Incoming{Kind: KindResult, QueryID: r.queryID, Message: m}, nil
	case outer.carbon:
		if !fromSelf {
			// XEP-0280 §11: carbons from anyone but the account are forged.
			return Incoming{}, fmt.Errorf("mamsync: carbon from %q ignored", truncate(f.from))
		}
		fw := outer.carbonFw
		if fw == nil || fw.msg == nil {
			return Incoming{}, errors.New("mamsync: carbon without a forwarded message")
		}
		return live(bare, fw.msg, fw.delay, jids)
	}
	return live(bare, f, nil, jids)
}

func live(bare jid.JID, f *msgFields, delay *string, jids *jidCache) (Incoming, error) {
	id := ""
	for _, s := range f.stanzaIDs {
		if sameBare(s.By, bare, jids) {
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
	m, err := entry(bare, f, delay, jids)
	if err != nil {
		return Incoming{}, err
	}
	m.StanzaID = id
	return Incoming{Kind: KindLive, Message: m}, nil
}

// entry builds the cache record of a (forwarded or direct) message, without
// its id and Raw. delay is the forwarding's stamp, preferred to the
// message's own.
func entry(bare jid.JID, f *msgFields, delay *string, jids *jidCache) (Message, error) {
	var m Message
	from, fromStr, err := jids.bare(f.from)
	if err != nil && f.from != "" {
		return m, fmt.Errorf("mamsync: invalid from %q", truncate(f.from))
	}
	_, toStr, err := jids.bare(f.to)
	if err != nil && f.to != "" {
		return m, fmt.Errorf("mamsync: invalid to %q", truncate(f.to))
	}
	if f.from == "" || from.Equal(bare) {
		m.Direction = DirectionOut
		m.Peer = toStr
	} else {
		m.Direction = DirectionIn
		m.Peer = fromStr
	}
	if f.bodyTooBig {
		return m, errors.New("mamsync: body too long")
	}
	m.Body = string(f.body)
	if f.originID != nil && len(*f.originID) <= maxIDLen {
		m.OriginID = *f.originID
	}
	d := delay
	if d == nil {
		d = f.delay
	}
	if d == nil {
		m.Time = time.Now().UTC()
		return m, nil
	}
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(*d))
	if err != nil {
		return m, fmt.Errorf("mamsync: invalid delay stamp %q", truncate(*d))
	}
	m.Time = t.UTC()
	return m, nil
}

func sameBare(s string, bare jid.JID, jids *jidCache) bool {
	if s == "" {
		return false
	}
	if s == bare.String() {
		return true
	}
	j, _, err := jids.bare(s)
	return err == nil && j.Equal(bare)
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
