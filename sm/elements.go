package sm

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/wire"
)

// NS is the namespace of XEP-0198 (version 3).
const NS = "urn:xmpp:sm:3"

// nsStanzas is the namespace of RFC 6120 stanza error conditions, which a
// <failed/> carries.
const nsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"

// State is what the server said about stream management when it was
// enabled (or resumed).
type State struct {
	Enabled   bool   `json:"enabled"`
	ID        string `json:"id,omitempty"`
	Resumable bool   `json:"resumable"`
	Max       int    `json:"max,omitempty"`
	Location  string `json:"location,omitempty"`
}

// Resume identifies a stream management session to resume.
type Resume struct {
	// ID is the session id from the server's <enabled id=.../>.
	ID string
	// H is the number of stanzas the client handled in that session.
	H uint32
	// JID is the session's full JID, used when the server's answer names
	// only the bare JID.
	JID jid.JID
}

// Limits on what the server's elements may carry into the client's state.
const (
	maxID   = 1024
	maxCond = 64
)

// AppendEnable appends <enable/>, asking for a resumable session when
// resume is set.
func AppendEnable(b []byte, resume bool) []byte {
	if resume {
		return append(b, "<enable xmlns='urn:xmpp:sm:3' resume='true'/>"...)
	}
	return append(b, "<enable xmlns='urn:xmpp:sm:3'/>"...)
}

// AppendResume appends <resume previd=... h=.../>.
func AppendResume(b []byte, r Resume) []byte {
	b = append(b, "<resume xmlns='urn:xmpp:sm:3' previd='"...)
	b = appendEscaped(b, r.ID)
	b = append(b, "' h='"...)
	b = strconv.AppendUint(b, uint64(r.H), 10)
	return append(b, "'/>"...)
}

func appendEscaped(b []byte, s string) []byte {
	var sb strings.Builder
	_ = xml.EscapeText(&sb, []byte(s))
	return append(b, sb.String()...)
}

// request and ack are the elements as tokens (Request, Ack), for a
// session's encoder.
var requestName = xml.Name{Space: NS, Local: "r"}

// Request returns an <r/> as a token stream, to send through a session.
func Request() xml.TokenReader {
	start := xml.StartElement{Name: requestName}
	return &tokens{toks: []xml.Token{start, start.End()}}
}

// Ack returns <a h=.../> as a token stream.
func Ack(h uint32) xml.TokenReader {
	start := xml.StartElement{
		Name: xml.Name{Space: NS, Local: "a"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "h"}, Value: strconv.FormatUint(uint64(h), 10)}},
	}
	return &tokens{toks: []xml.Token{start, start.End()}}
}

type tokens struct{ toks []xml.Token }

func (t *tokens) Token() (xml.Token, error) {
	if len(t.toks) == 0 {
		return nil, io.EOF
	}
	tok := t.toks[0]
	t.toks = t.toks[1:]
	return tok, nil
}

// Enabled is <enabled/> as encoding/xml decodes it.
type Enabled struct {
	ID       string `xml:"id,attr"`
	Resume   string `xml:"resume,attr"`
	Max      string `xml:"max,attr"`
	Location string `xml:"location,attr"`
}

// State checks e and returns the state it announces. An invalid max or a
// resumable session without an id is an error matching wire.ErrProtocol.
func (e Enabled) State() (State, error) {
	st := State{
		Enabled:   true,
		ID:        truncate(e.ID, maxID),
		Resumable: e.Resume == "true" || e.Resume == "1",
		Location:  truncate(e.Location, maxID),
	}
	if e.Max != "" {
		m, err := strconv.Atoi(e.Max)
		if err != nil || m < 0 {
			return st, fmt.Errorf("%w: sm enabled: invalid max %q", wire.ErrProtocol, truncate(e.Max, 32))
		}
		st.Max = m
	}
	if st.Resumable && st.ID == "" {
		return st, fmt.Errorf("%w: sm enabled: resumable without id", wire.ErrProtocol)
	}
	return st, nil
}

// Resumed is <resumed/> as encoding/xml decodes it.
type Resumed struct {
	PrevID string `xml:"previd,attr"`
	H      string `xml:"h,attr"`
}

// Parse checks r and returns the resumed session's id and the server's h:
// how many of the client's stanzas it received.
func (r Resumed) Parse() (prevID string, h uint32, err error) {
	v, perr := strconv.ParseUint(r.H, 10, 32)
	switch {
	case perr != nil:
		return "", 0, fmt.Errorf("%w: sm resumed: invalid h %q", wire.ErrProtocol, truncate(r.H, 32))
	case r.PrevID == "":
		return "", 0, fmt.Errorf("%w: sm resumed without previd", wire.ErrProtocol)
	}
	return truncate(r.PrevID, maxID), uint32(v), nil
}

// Failed is <failed/> as encoding/xml decodes it.
type Failed struct {
	Conditions []struct {
		XMLName xml.Name
	} `xml:",any"`
}

// Condition returns the stanza error condition of f, or
// "undefined-condition".
func (f Failed) Condition() string {
	for _, c := range f.Conditions {
		if c.XMLName.Space == nsStanzas && c.XMLName.Local != "text" {
			return truncate(c.XMLName.Local, maxCond)
		}
	}
	return "undefined-condition"
}

// truncate bounds server-provided text kept in the client's state.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
