package mamsync

import (
	"encoding/xml"
	"strconv"
)

// nsXML is the namespace encoding/xml gives the xml: prefix.
const nsXML = "http://www.w3.org/XML/1998/namespace"

// rawWriter serializes the tokens of one element, as a decoder returned
// them (names resolved to namespaces), back into standalone XML: each
// element declares its namespace where it differs from its parent's (the
// root always declares its own), the decoder's own xmlns attributes are
// dropped, and a namespaced attribute gets a prefix declared on its
// element. Comments, processing instructions and directives are left out.
// It replaces an xml.Encoder on the hot path: it allocates nothing but its
// buffer and escapes only what needs escaping.
type rawWriter struct {
	b     []byte
	open  []frame // the elements not yet ended
	empty bool    // the last start tag is not closed yet: "/>" if empty
	// lossy is set when a name cannot be written so that it reads back the
	// same: a prefix bound to no namespace with a local name that is not a
	// name on its own (xmlns:p='' and <p:0/>, which XML forbids but
	// encoding/xml reads).
	lossy bool
}

// frame is an open element: its default namespace (inherited by its
// children) and the name its end tag repeats.
type frame struct {
	ns, qname string
}

// reset empties w for another element.
func (w *rawWriter) reset() {
	w.b, w.open, w.empty, w.lossy = w.b[:0], w.open[:0], false, false
}

func (w *rawWriter) token(tok xml.Token) {
	switch t := tok.(type) {
	case xml.StartElement:
		w.start(t)
	case xml.EndElement:
		w.end()
	case xml.CharData:
		w.closeStart()
		w.b = appendEscaped(w.b, []byte(t), false)
	}
}

func (w *rawWriter) closeStart() {
	if w.empty {
		w.b = append(w.b, '>')
		w.empty = false
	}
}

// nameStart reports whether a local name can stand as an XML name on its
// own. Decoders split "p:0" into prefix p and local name "0", which is not
// one; such a name keeps a prefix when written. (A non-ASCII first letter is
// treated the same way: the prefixed form is always valid.)
func nameStart(local string) bool {
	if local == "" {
		return false
	}
	c := local[0]
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == ':'
}

func (w *rawWriter) start(t xml.StartElement) {
	w.closeStart()
	parent, root := "", len(w.open) == 0
	if !root {
		parent = w.open[len(w.open)-1].ns
	}
	f := frame{ns: parent, qname: t.Name.Local}
	w.b = append(w.b, '<')
	switch {
	case nameStart(t.Name.Local):
		w.b = append(w.b, t.Name.Local...)
		if root || t.Name.Space != parent {
			w.b = appendAttr(w.b, "xmlns", "", t.Name.Space)
			f.ns = t.Name.Space
		}
	case t.Name.Space != "":
		f.qname = "e:" + t.Name.Local
		w.b = append(w.b, f.qname...)
		w.b = appendAttr(w.b, "xmlns:", "e", t.Name.Space)
	default:
		w.lossy = true
		w.b = append(w.b, t.Name.Local...)
	}
	prefixes := 0
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "xmlns", a.Name.Space == "" && a.Name.Local == "xmlns":
			// The decoder's declarations: names carry their namespace.
		case a.Name.Space == "":
			w.b = appendAttr(w.b, a.Name.Local, "", a.Value)
		case a.Name.Space == nsXML:
			w.b = appendAttr(w.b, "xml:", a.Name.Local, a.Value)
		default:
			prefixes++
			p := "a" + strconv.Itoa(prefixes)
			w.b = appendAttr(w.b, "xmlns:", p, a.Name.Space)
			w.b = appendAttr(w.b, p+":", a.Name.Local, a.Value)
		}
	}
	w.open = append(w.open, f)
	w.empty = true
}

func (w *rawWriter) end() {
	if len(w.open) == 0 {
		return // the decoder does not give unbalanced end elements
	}
	f := w.open[len(w.open)-1]
	w.open = w.open[:len(w.open)-1]
	if w.empty {
		w.b = append(w.b, "/>"...)
		w.empty = false
		return
	}
	w.b = append(w.b, "</"...)
	w.b = append(w.b, f.qname...)
	w.b = append(w.b, '>')
}

// appendAttr appends ` prefix+local='value'`.
func appendAttr(b []byte, prefix, local, value string) []byte {
	b = append(b, ' ')
	b = append(b, prefix...)
	b = append(b, local...)
	b = append(b, '=', '\'')
	b = appendEscaped(b, value, true)
	return append(b, '\'')
}

// appendEscaped appends s escaped as XML character data, or as an
// attribute value (quoted with ') when attr is set. Whitespace that
// attribute-value normalization would change is written as a character
// reference, as is a carriage return in text, so that the text reads back
// the same.
func appendEscaped[T string | []byte](b []byte, s T, attr bool) []byte {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '\r':
			esc = "&#xD;"
		case '\'':
			if !attr {
				continue
			}
			esc = "&apos;"
		case '"':
			if !attr {
				continue
			}
			esc = "&quot;"
		case '\n':
			if !attr {
				continue
			}
			esc = "&#xA;"
		case '\t':
			if !attr {
				continue
			}
			esc = "&#x9;"
		default:
			continue
		}
		b = append(b, s[last:i]...)
		b = append(b, esc...)
		last = i + 1
	}
	return append(b, s[last:]...)
}
