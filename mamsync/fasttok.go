package mamsync

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"unicode/utf8"
)

// errDecline is returned by fastTokens for input outside the subset it
// reads: the caller then hands the element to encoding/xml, which reads
// (or rejects) it. It is never an error of the stream.
var errDecline = errors.New("mamsync: outside the fast tokenizer's subset")

// fastTokens reads one complete, serialized top-level element of a client
// stream (whose default namespace is jabber:client) and returns exactly the
// tokens encoding/xml's Decoder.Token returns for it there: the same names,
// resolved the same way, the same attributes (xmlns declarations included,
// in their order), the same character data. It reads a strict subset of
// XML and returns errDecline for anything else, never a different token:
//
//   - names are ASCII ([A-Za-z_][A-Za-z0-9._-]*, at most one prefix), and
//     every prefix is declared in the element (or is xml);
//   - no comments, CDATA sections, processing instructions or directives;
//   - no carriage returns (which XML normalizes), no character references
//     (&#…;), no entity but the five predefined ones;
//   - the whole element is valid UTF-8 of XML characters.
//
// That subset is what servers send for MAM results (Prosody, ejabberd,
// xmpptest all do); everything else takes the encoding/xml path, so the
// subset decides only speed, never what is read. FuzzFastTokens checks the
// equivalence token by token.
type fastTokens struct {
	b     []byte
	i     int
	open  []fastOpen
	ns    []fastNS // prefix bindings in scope, innermost last
	end   *xml.EndElement
	done  bool
	err   error
	nsTop string // the default namespace at the root
}

type fastOpen struct {
	qname []byte   // as written, for the end tag
	name  xml.Name // as resolved
	nsLen int      // len(ns) before this element's declarations
}

type fastNS struct {
	prefix, uri string
}

// newFastTokens returns a tokenizer of b, or nil when b cannot be in the
// subset at all (invalid UTF-8, a character XML forbids, a carriage return,
// a character reference, a comment, CDATA or a processing instruction).
func newFastTokens(b []byte) *fastTokens {
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' {
			return nil
		}
	}
	if !utf8.Valid(b) || bytes.Contains(b, []byte("&#")) || bytes.Contains(b, []byte("<!")) ||
		bytes.Contains(b, []byte("<?")) || bytes.Contains(b, []byte("\xef\xbf\xbe")) || bytes.Contains(b, []byte("\xef\xbf\xbf")) {
		return nil
	}
	return &fastTokens{b: b, nsTop: nsClient}
}

// Token implements xml.TokenReader.
func (t *fastTokens) Token() (xml.Token, error) {
	if t.err != nil {
		return nil, t.err
	}
	tok, err := t.token()
	if err != nil {
		t.err = err
		return nil, err
	}
	return tok, nil
}

func (t *fastTokens) token() (xml.Token, error) {
	if t.end != nil {
		e := *t.end
		t.end = nil
		t.pop()
		if t.done && t.i != len(t.b) {
			return nil, errDecline // something after the element
		}
		return e, nil
	}
	if t.done {
		return nil, io.EOF
	}
	if t.i >= len(t.b) {
		return nil, errDecline // the element did not end
	}
	if t.b[t.i] != '<' {
		if len(t.open) == 0 {
			return nil, errDecline // text outside the element
		}
		return t.text()
	}
	if t.i+1 < len(t.b) && t.b[t.i+1] == '/' {
		return t.endTag()
	}
	return t.startTag()
}

func (t *fastTokens) pop() {
	o := t.open[len(t.open)-1]
	t.open = t.open[:len(t.open)-1]
	t.ns = t.ns[:o.nsLen]
	if len(t.open) == 0 {
		t.done = true
	}
}

// text reads character data up to the next '<'.
func (t *fastTokens) text() (xml.Token, error) {
	j := bytes.IndexByte(t.b[t.i:], '<')
	if j < 0 {
		return nil, errDecline
	}
	raw := t.b[t.i : t.i+j]
	t.i += j
	if bytes.IndexByte(raw, '&') < 0 {
		return xml.CharData(raw), nil
	}
	out, ok := unescape(raw)
	if !ok {
		return nil, errDecline
	}
	return xml.CharData(out), nil
}

// unescape replaces the five predefined entities; anything else is not
// in the subset.
func unescape(raw []byte) ([]byte, bool) {
	out := make([]byte, 0, len(raw))
	for len(raw) > 0 {
		k := bytes.IndexByte(raw, '&')
		if k < 0 {
			return append(out, raw...), true
		}
		out = append(out, raw[:k]...)
		raw = raw[k:]
		semi := bytes.IndexByte(raw, ';')
		if semi < 0 {
			return nil, false
		}
		switch string(raw[1:semi]) {
		case "lt":
			out = append(out, '<')
		case "gt":
			out = append(out, '>')
		case "amp":
			out = append(out, '&')
		case "apos":
			out = append(out, '\'')
		case "quot":
			out = append(out, '"')
		default:
			return nil, false
		}
		raw = raw[semi+1:]
	}
	return out, true
}

func isSpaceByte(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

func (t *fastTokens) skipSpace() {
	for t.i < len(t.b) && isSpaceByte(t.b[t.i]) {
		t.i++
	}
}

// qname reads a name: prefix and local part, each [A-Za-z_][A-Za-z0-9._-]*.
func (t *fastTokens) qname() (raw []byte, prefix, local string, ok bool) {
	start := t.i
	colon := -1
	for t.i < len(t.b) {
		c := t.b[t.i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_':
		case '0' <= c && c <= '9', c == '.', c == '-':
			if t.i == start || t.i == colon+1 {
				return nil, "", "", false
			}
		case c == ':':
			if colon >= 0 || t.i == start {
				return nil, "", "", false
			}
			colon = t.i
		default:
			goto done
		}
		t.i++
	}
done:
	raw = t.b[start:t.i]
	if len(raw) == 0 || colon == t.i-1 {
		return nil, "", "", false
	}
	if colon < 0 {
		return raw, "", intern(raw), true
	}
	return raw, intern(t.b[start:colon]), intern(t.b[colon+1 : t.i]), true
}

// intern returns the common names of MAM results without allocating.
func intern(b []byte) string {
	switch string(b) {
	case "message":
		return "message"
	case "result":
		return "result"
	case "forwarded":
		return "forwarded"
	case "delay":
		return "delay"
	case "body":
		return "body"
	case "stanza-id":
		return "stanza-id"
	case "origin-id":
		return "origin-id"
	case "xmlns":
		return "xmlns"
	case "from":
		return "from"
	case "to":
		return "to"
	case "id":
		return "id"
	case "type":
		return "type"
	case "by":
		return "by"
	case "stamp":
		return "stamp"
	case "queryid":
		return "queryid"
	case "chat":
		return "chat"
	case "active":
		return "active"
	case "markable":
		return "markable"
	case "request":
		return "request"
	}
	return string(b)
}

// internValue returns the common namespaces without allocating.
func internValue(b []byte) string {
	switch string(b) {
	case nsClient:
		return nsClient
	case NSMAM:
		return NSMAM
	case NSForward:
		return NSForward
	case NSDelay:
		return NSDelay
	case NSStanzaID:
		return NSStanzaID
	case "chat":
		return "chat"
	}
	return string(b)
}

// attrValue reads a quoted attribute value.
func (t *fastTokens) attrValue() (string, bool) {
	if t.i >= len(t.b) {
		return "", false
	}
	q := t.b[t.i]
	if q != '"' && q != '\'' {
		return "", false
	}
	j := bytes.IndexByte(t.b[t.i+1:], q)
	if j < 0 {
		return "", false
	}
	raw := t.b[t.i+1 : t.i+1+j]
	t.i += j + 2
	if bytes.IndexByte(raw, '<') >= 0 {
		return "", false
	}
	if bytes.IndexByte(raw, '&') < 0 {
		return internValue(raw), true
	}
	out, ok := unescape(raw)
	if !ok {
		return "", false
	}
	return string(out), true
}

func (t *fastTokens) lookup(prefix string) (string, bool) {
	for k := len(t.ns) - 1; k >= 0; k-- {
		if t.ns[k].prefix == prefix {
			return t.ns[k].uri, true
		}
	}
	if prefix == "" {
		return t.nsTop, true
	}
	return "", false
}

func (t *fastTokens) startTag() (xml.Token, error) {
	t.i++ // '<'
	raw, prefix, local, ok := t.qname()
	if !ok {
		return nil, errDecline
	}
	nsLen := len(t.ns)
	attrs, ok := t.attrs()
	if !ok {
		return nil, errDecline
	}
	empty := t.b[t.i] == '/'
	if empty {
		if t.i+1 >= len(t.b) || t.b[t.i+1] != '>' {
			return nil, errDecline
		}
		t.i += 2
	} else {
		t.i++
	}
	name, ok := t.resolve(prefix, local, attrs)
	if !ok || len(t.open) >= 128 {
		return nil, errDecline
	}
	t.open = append(t.open, fastOpen{qname: raw, name: name, nsLen: nsLen})
	if empty {
		t.end = &xml.EndElement{Name: name}
	}
	return xml.StartElement{Name: name, Attr: attrs}, nil
}

// attrs reads a start tag's attributes, up to its '>' or '/', and puts its
// namespace declarations in scope.
func (t *fastTokens) attrs() ([]xml.Attr, bool) {
	var attrs []xml.Attr
	for {
		hadSpace := t.i < len(t.b) && isSpaceByte(t.b[t.i])
		t.skipSpace()
		if t.i >= len(t.b) {
			return nil, false
		}
		if c := t.b[t.i]; c == '>' || c == '/' {
			return attrs, true
		}
		if !hadSpace {
			return nil, false
		}
		_, ap, al, ok := t.qname()
		if !ok {
			return nil, false
		}
		t.skipSpace()
		if t.i >= len(t.b) || t.b[t.i] != '=' {
			return nil, false
		}
		t.i++
		t.skipSpace()
		v, ok := t.attrValue()
		if !ok {
			return nil, false
		}
		attrs = append(attrs, xml.Attr{Name: xml.Name{Space: ap, Local: al}, Value: v})
		switch {
		case ap == "xmlns":
			if al == "xml" || al == "xmlns" {
				return nil, false
			}
			t.ns = append(t.ns, fastNS{al, v})
		case ap == "" && al == "xmlns":
			t.ns = append(t.ns, fastNS{"", v})
		}
	}
}

// resolve gives the element's name and its attributes' their namespaces, as
// encoding/xml's translate does, once the element's own declarations are in
// scope.
func (t *fastTokens) resolve(prefix, local string, attrs []xml.Attr) (xml.Name, bool) {
	if prefix == "xmlns" {
		return xml.Name{}, false
	}
	name := xml.Name{Local: local}
	if prefix == "xml" {
		name.Space = nsXML
	} else {
		uri, ok := t.lookup(prefix)
		if !ok {
			return xml.Name{}, false
		}
		name.Space = uri
	}
	for k := range attrs {
		a := &attrs[k].Name
		switch a.Space {
		case "", "xmlns":
		case "xml":
			a.Space = nsXML
		default:
			uri, ok := t.lookup(a.Space)
			if !ok {
				return xml.Name{}, false
			}
			a.Space = uri
		}
	}
	return name, true
}

func (t *fastTokens) endTag() (xml.Token, error) {
	t.i += 2 // "</"
	raw, _, _, ok := t.qname()
	if !ok || len(t.open) == 0 {
		return nil, errDecline
	}
	t.skipSpace()
	if t.i >= len(t.b) || t.b[t.i] != '>' {
		return nil, errDecline
	}
	t.i++
	o := t.open[len(t.open)-1]
	if !bytes.Equal(raw, o.qname) {
		return nil, errDecline
	}
	t.pop()
	if t.done && t.i != len(t.b) {
		return nil, errDecline // something after the element
	}
	return xml.EndElement{Name: o.name}, nil
}
