package wire

import (
	"errors"
	"fmt"
)

// Kind says which top-level element a byte of the stream ended.
type Kind uint8

const (
	// KindNone: no top-level element ended at this byte.
	KindNone Kind = iota
	// KindMessage, KindPresence and KindIQ: a stanza ended (RFC 6120 §8),
	// with or without a namespace prefix.
	KindMessage
	KindPresence
	KindIQ
	// KindOther: a top-level element that is not a stanza ended (<r/>,
	// <a/>, <stream:features/>, ...).
	KindOther
	// KindError: the stream broke a limit or a rule; Lexer.Err says which.
	// The lexer stays in error: every later byte is KindError too.
	KindError
)

// Stanza reports whether k is a message, presence or iq.
func (k Kind) Stanza() bool { return k >= KindMessage && k <= KindIQ }

// String returns "message", "presence", "iq", "other", "error" or "none".
func (k Kind) String() string {
	switch k {
	case KindMessage:
		return "message"
	case KindPresence:
		return "presence"
	case KindIQ:
		return "iq"
	case KindOther:
		return "other"
	case KindError:
		return "error"
	}
	return "none"
}

// Errors of the stream layer. They match ErrProtocol.
var (
	// ErrProtocol is a stream that breaks the XMPP rules the stream layer
	// checks. Package login's ErrProtocol is this error.
	ErrProtocol = errors.New("protocol error")
	// ErrTooLarge is an element larger or deeper than Limits allow.
	ErrTooLarge = fmt.Errorf("%w: element too large or too deep", ErrProtocol)
	// ErrRestrictedXML is a document type declaration (<!DOCTYPE ...>) or
	// another markup declaration, which RFC 6120 §11.1 forbids in a stream
	// (the answer is a <restricted-xml/> stream error).
	ErrRestrictedXML = fmt.Errorf("%w: restricted XML (a DTD or markup declaration)", ErrProtocol)
	// ErrText is character data other than white space between top-level
	// elements, which a stream never carries.
	ErrText = fmt.Errorf("%w: text between top-level elements", ErrProtocol)
)

// Limits bound what one top-level element of a stream may cost. A zero
// field means no limit.
type Limits struct {
	// MaxBytes bounds one top-level element, from its '<' to its end
	// (the stream header counts as one).
	MaxBytes int
	// MaxDepth bounds the nesting inside a top-level element (the element
	// itself is depth 1).
	MaxDepth int
}

// Lexer follows an XMPP stream byte by byte just enough to see where each
// top-level element (a child of <stream:stream>) begins and ends, and which
// it was. It is the project's one XML lexer below the decoder: the stream
// layer frames incoming and outgoing stanzas with it, counts them for
// stream management and enforces Limits with it. It does not check
// well-formedness (the decoder does); on well-formed input it finds the
// same elements as encoding/xml (FuzzLexer checks it).
//
// The stream header (a start tag at the top whose local name is "stream")
// opens the stream: what follows it is at the top again, and its end tag
// closes the stream. The zero Lexer is ready, with no limits.
type Lexer struct {
	lim       Limits
	state     lexState
	depth     int
	name      [16]byte // the current tag's local name (after any prefix)
	nameLen   int      // its length; len(name)+1 once it is longer
	prefixLen int      // the length of the prefix before the colon
	colons    int      // colons in the name
	kind      Kind     // the current top-level element's kind
	quote     byte
	slash     bool // a '/' was seen in the current start tag (self-closing)
	endTail   int  // progress through a terminator ("-->", "]]>", "?>")
	size      int  // bytes of the current top-level element
	err       error
}

// NewLexer returns a Lexer enforcing lim.
func NewLexer(lim Limits) Lexer { return Lexer{lim: lim} }

type lexState uint8

const (
	lexText   lexState = iota
	lexOpen            // after '<'
	lexName            // reading a start tag's name
	lexAttrs           // inside a start tag after its name
	lexQuoted          // inside an attribute value
	lexEnd             // inside an end tag
	lexBang            // after "<!": comment or CDATA
	lexComment
	lexCDATA
	lexPI
	lexError
)

// AtTop reports whether the lexer is between top-level elements.
func (l *Lexer) AtTop() bool { return l.depth == 0 && l.state == lexText }

// Depth is the nesting depth at the current byte (0 between top-level
// elements).
func (l *Lexer) Depth() int { return l.depth }

// Err is the error after KindError, else nil.
func (l *Lexer) Err() error { return l.err }

func (l *Lexer) fail(err error) Kind {
	l.state, l.err = lexError, err
	return KindError
}

// Feed takes the next byte of the stream and says which top-level element,
// if any, it ended.
func (l *Lexer) Feed(b byte) Kind {
	if l.depth > 0 || l.state != lexText {
		l.size++
		if l.lim.MaxBytes > 0 && l.size > l.lim.MaxBytes && l.state != lexError {
			return l.fail(fmt.Errorf("%w: an element larger than %d bytes", ErrTooLarge, l.lim.MaxBytes))
		}
	}
	switch l.state {
	case lexText:
		return l.text(b)
	case lexOpen:
		l.open(b)
	case lexName:
		switch {
		case b == '>':
			return l.startDone()
		case b == '/':
			l.slash, l.state = true, lexAttrs
		case isSpace(b):
			l.state = lexAttrs
		default:
			l.nameByte(b)
		}
	case lexAttrs:
		return l.attrs(b)
	case lexQuoted:
		if b == l.quote {
			l.state = lexAttrs
		}
	case lexEnd:
		if b == '>' {
			return l.endDone()
		}
	case lexBang:
		// "<!--" or "<![CDATA[": decide on the first byte. Anything else
		// is a markup declaration (<!DOCTYPE ...>, <!ENTITY ...>).
		switch b {
		case '-':
			l.state = lexComment
		case '[':
			l.state = lexCDATA
		default:
			return l.fail(ErrRestrictedXML)
		}
	case lexComment:
		l.terminate(b, "-->")
	case lexCDATA:
		l.terminate(b, "]]>")
	case lexPI:
		l.terminate(b, "?>")
	case lexError:
		return KindError
	}
	return KindNone
}

func (l *Lexer) text(b byte) Kind {
	switch {
	case b == '<':
		l.state = lexOpen
		if l.depth == 0 {
			l.size = 1
		}
	case l.depth == 0 && !isSpace(b):
		return l.fail(ErrText)
	}
	return KindNone
}

func (l *Lexer) open(b byte) {
	switch b {
	case '/':
		l.state = lexEnd
	case '!':
		l.state, l.endTail = lexBang, 0
	case '?':
		l.state, l.endTail = lexPI, 0
	default:
		l.state, l.slash = lexName, false
		l.nameLen, l.prefixLen, l.colons = 0, 0, 0
		l.nameByte(b)
	}
}

func (l *Lexer) attrs(b byte) Kind {
	switch b {
	case '\'', '"':
		l.quote, l.state = b, lexQuoted
	case '/':
		l.slash = true
	case '>':
		return l.startDone()
	default:
		if !isSpace(b) {
			l.slash = false
		}
	}
	return KindNone
}

// terminate advances through a comment's, CDATA section's or processing
// instruction's terminator.
func (l *Lexer) terminate(b byte, term string) {
	l.endTail = advance(l.endTail, b, term)
	if l.endTail == len(term) {
		l.state = lexText
	}
}

// nameByte takes one byte of a start tag's name.
func (l *Lexer) nameByte(b byte) {
	switch {
	case b == ':':
		l.colons++
		if l.colons == 1 {
			l.prefixLen, l.nameLen = l.nameLen, 0 // the local name follows
		}
	case l.nameLen < len(l.name):
		l.name[l.nameLen] = b
		l.nameLen++
	default:
		l.nameLen = len(l.name) + 1 // too long to be a name we look for
	}
}

// local returns the start tag's local name as encoding/xml splits it
// (prefix:local, both parts non-empty, one colon at most), or nil when it
// is none of the names the lexer looks for.
func (l *Lexer) local() []byte {
	if l.nameLen == 0 || l.nameLen > len(l.name) {
		return nil
	}
	switch {
	case l.colons == 0, l.colons == 1 && l.prefixLen > 0:
		return l.name[:l.nameLen]
	}
	return nil
}

// isLocal reports whether the last start tag's local name is name.
func (l *Lexer) isLocal(name string) bool { return string(l.local()) == name }

// startDone handles the '>' of a start tag.
func (l *Lexer) startDone() Kind {
	l.state = lexText
	if l.depth == 0 {
		local := l.local()
		if string(local) == "stream" {
			return KindNone // the stream header: its children are at the top
		}
		l.kind = stanzaKind(local)
	}
	if l.slash {
		if l.depth == 0 {
			return l.kind
		}
		return KindNone
	}
	l.depth++
	if l.lim.MaxDepth > 0 && l.depth > l.lim.MaxDepth {
		return l.fail(fmt.Errorf("%w: elements nested deeper than %d", ErrTooLarge, l.lim.MaxDepth))
	}
	return KindNone
}

// endDone handles the '>' of an end tag.
func (l *Lexer) endDone() Kind {
	l.state = lexText
	if l.depth == 0 {
		return KindNone // </stream:stream>
	}
	l.depth--
	if l.depth == 0 {
		return l.kind
	}
	return KindNone
}

func advance(progress int, b byte, term string) int {
	if b == term[progress] {
		return progress + 1
	}
	if progress == 2 && len(term) == 3 && b == term[1] {
		return 2 // "--->" and "]]]>" still end the run
	}
	if b == term[0] {
		return 1
	}
	return 0
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// stanzaKind classifies a top-level element's local name.
func stanzaKind(local []byte) Kind {
	switch string(local) {
	case "message":
		return KindMessage
	case "presence":
		return KindPresence
	case "iq":
		return KindIQ
	}
	return KindOther
}
