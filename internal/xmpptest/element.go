package xmpptest

import (
	"encoding/xml"
	"errors"
	"strconv"
	"strings"
)

// element is a generic XML tree: the server decodes every top-level element
// into one, inspects it, and re-encodes it when routing. Keeping the whole tree
// (unknown children included) lets stanzas pass through unchanged.
type element struct {
	name  xml.Name
	attr  []xml.Attr // namespace declarations are dropped; encode adds its own
	nodes []node     // *element or chars, in document order
}

// node is a child of an element: *element or chars.
type node interface{ isNode() }

// chars is character data inside an element.
type chars string

func (*element) isNode() {}
func (chars) isNode()    {}

// newElement returns an element with attributes given as name, value pairs;
// pairs with an empty value are left out.
func newElement(space, local string, attrs ...string) *element {
	e := &element{name: name(space, local)}
	for i := 0; i+1 < len(attrs); i += 2 {
		e.setAttr(attrs[i], attrs[i+1])
	}
	return e
}

// add appends children and returns e.
func (e *element) add(children ...*element) *element {
	for _, c := range children {
		if c != nil {
			e.nodes = append(e.nodes, c)
		}
	}
	return e
}

// addText appends character data and returns e.
func (e *element) addText(s string) *element {
	if s != "" {
		e.nodes = append(e.nodes, chars(s))
	}
	return e
}

// is reports whether e has the given namespace and local name.
func (e *element) is(space, local string) bool {
	return e != nil && e.name.Space == space && e.name.Local == local
}

// attrValue returns the value of the unqualified attribute local.
func (e *element) attrValue(local string) string {
	for _, a := range e.attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// setAttr sets (or, with an empty value, removes) the unqualified attribute local.
func (e *element) setAttr(local, value string) {
	for i, a := range e.attr {
		if a.Name.Space == "" && a.Name.Local == local {
			if value == "" {
				e.attr = append(e.attr[:i], e.attr[i+1:]...)
			} else {
				e.attr[i].Value = value
			}
			return
		}
	}
	if value != "" {
		e.attr = append(e.attr, xml.Attr{Name: xml.Name{Local: local}, Value: value})
	}
}

// children returns the child elements.
func (e *element) children() []*element {
	var out []*element
	for _, n := range e.nodes {
		if c, ok := n.(*element); ok {
			out = append(out, c)
		}
	}
	return out
}

// child returns the first child with the given name, or nil.
func (e *element) child(space, local string) *element {
	for _, n := range e.nodes {
		if c, ok := n.(*element); ok && c.is(space, local) {
			return c
		}
	}
	return nil
}

// removeChildren drops the child elements for which drop returns true.
func (e *element) removeChildren(drop func(*element) bool) {
	kept := e.nodes[:0]
	for _, n := range e.nodes {
		if c, ok := n.(*element); ok && drop(c) {
			continue
		}
		kept = append(kept, n)
	}
	clear(e.nodes[len(kept):])
	e.nodes = kept
}

// text returns the concatenated character data directly inside e.
func (e *element) text() string {
	var b strings.Builder
	for _, n := range e.nodes {
		if s, ok := n.(chars); ok {
			b.WriteString(string(s))
		}
	}
	return b.String()
}

// clone returns a deep copy of e.
func (e *element) clone() *element {
	c := &element{name: e.name, attr: append([]xml.Attr(nil), e.attr...)}
	c.nodes = make([]node, len(e.nodes))
	for i, n := range e.nodes {
		if ce, ok := n.(*element); ok {
			c.nodes[i] = ce.clone()
		} else {
			c.nodes[i] = n
		}
	}
	return c
}

// Limits on what the server decodes from a client.
const (
	maxElementBytes = 64 << 10 // per top-level element, tags and text included
	maxDepth        = 64       // nesting inside one top-level element
)

var (
	errTooLarge = errors.New("xmpptest: element exceeds size limit")
	errTooDeep  = errors.New("xmpptest: element nested too deeply")
	errDTD      = errors.New("xmpptest: DTD or directive in stream")
)

// decodeElement reads the rest of the element opened by start. Comments and
// processing instructions inside it are skipped.
func decodeElement(d *xml.Decoder, start xml.StartElement) (*element, error) {
	root := fromStart(start)
	stack := []*element{root}
	for len(stack) > 0 {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		top := stack[len(stack)-1]
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= maxDepth {
				return nil, errTooDeep
			}
			c := fromStart(t)
			top.nodes = append(top.nodes, c)
			stack = append(stack, c)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			top.nodes = append(top.nodes, chars(string(t)))
		case xml.Directive:
			return nil, errDTD
		}
	}
	return root, nil
}

func fromStart(s xml.StartElement) *element {
	e := &element{name: s.Name}
	for _, a := range s.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		e.attr = append(e.attr, a)
	}
	return e
}

// appendXML encodes e. defNS is the default namespace in scope: the stream's
// jabber:client at top level. Elements in the streams namespace use the
// "stream:" prefix the server's header declares.
func (e *element) appendXML(b []byte, defNS string) []byte {
	b = append(b, '<')
	childNS := defNS
	if e.name.Space == nsStream {
		b = append(b, "stream:"...)
		b = append(b, e.name.Local...)
	} else {
		b = append(b, e.name.Local...)
		if e.name.Space != defNS {
			b = appendAttr(b, "xmlns", e.name.Space)
			childNS = e.name.Space
		}
	}
	prefixes := 0
	for _, a := range e.attr {
		switch a.Name.Space {
		case "":
			b = appendAttr(b, a.Name.Local, a.Value)
		case nsXML:
			b = appendAttr(b, "xml:"+a.Name.Local, a.Value)
		default:
			prefixes++
			p := "ns" + strconv.Itoa(prefixes)
			b = appendAttr(b, "xmlns:"+p, a.Name.Space)
			b = appendAttr(b, p+":"+a.Name.Local, a.Value)
		}
	}
	if len(e.nodes) == 0 {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	for _, n := range e.nodes {
		switch n := n.(type) {
		case *element:
			b = n.appendXML(b, childNS)
		case chars:
			b = appendEscaped(b, string(n))
		}
	}
	b = append(b, "</"...)
	if e.name.Space == nsStream {
		b = append(b, "stream:"...)
	}
	b = append(b, e.name.Local...)
	return append(b, '>')
}

func appendAttr(b []byte, name, value string) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, "='"...)
	b = appendEscaped(b, value)
	return append(b, '\'')
}

type byteAppender struct{ b []byte }

func (w *byteAppender) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func appendEscaped(b []byte, s string) []byte {
	w := byteAppender{b}
	_ = xml.EscapeText(&w, []byte(s)) // writes to memory: cannot fail
	return w.b
}

// String encodes e for error messages and tests.
func (e *element) String() string { return string(e.appendXML(nil, nsClient)) }
