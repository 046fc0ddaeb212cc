package login

import (
	"bytes"
	"encoding/xml"
	"strconv"
)

// secretText names the elements whose character data is a credential or a
// SASL payload: the SASL and SASL2 exchanges (PLAIN carries the password,
// SCRAM the proof and the server signature, FAST the token's HMAC).
var secretText = map[string]bool{
	"auth": true, "response": true, "challenge": true, "success": true,
	"initial-response": true, "additional-data": true,
}

// Redact returns element, a top-level unit of an XMPP stream as
// wire.Options.Trace gives it, with every secret it may hold replaced by
// "[redacted N bytes]": the character data of SASL and SASL2 <auth>,
// <authenticate>'s <initial-response>, <response>, <challenge>, <success>
// and <additional-data>, and the token attribute of a FAST <token/>.
// Everything else is returned byte for byte. Input it cannot read is
// replaced whole: a trace never shows what it could not check.
func Redact(element []byte) []byte {
	d := xml.NewDecoder(bytes.NewReader(element))
	var (
		out   []byte
		from  int64    // element[from:] is not copied to out yet
		stack []string // local names of the open elements
	)
	for {
		start := d.InputOffset()
		tok, err := d.RawToken()
		if err != nil {
			if start == int64(len(element)) {
				return append(out, element[from:]...)
			}
			return []byte("[unreadable element redacted, " + strconv.Itoa(len(element)) + " bytes]")
		}
		end := d.InputOffset()
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Local == "token" && hasAttr(t, "token") {
				out = append(out, element[from:start]...)
				out = appendStartRedacted(out, t, "token", bytes.HasSuffix(element[start:end], []byte("/>")))
				from = end
			}
			stack = append(stack, t.Name.Local)
		case xml.EndElement:
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case xml.CharData:
			if len(stack) > 0 && secretText[stack[len(stack)-1]] && len(bytes.TrimSpace(t)) > 0 {
				out = append(out, element[from:start]...)
				out = append(out, "[redacted "+strconv.FormatInt(end-start, 10)+" bytes]"...)
				from = end
			}
		}
	}
}

func hasAttr(t xml.StartElement, local string) bool {
	for _, a := range t.Attr {
		if a.Name.Local == local {
			return true
		}
	}
	return false
}

// appendStartRedacted writes t's start tag with the value of the attribute
// named secret redacted (and closed with "/>" when empty).
func appendStartRedacted(b []byte, t xml.StartElement, secret string, empty bool) []byte {
	b = append(b, '<')
	b = appendQName(b, t.Name)
	for _, a := range t.Attr {
		b = append(b, ' ')
		b = appendQName(b, a.Name)
		b = append(b, "='"...)
		if a.Name.Local == secret {
			b = append(b, "[redacted]"...)
		} else {
			var buf bytes.Buffer
			_ = xml.EscapeText(&buf, []byte(a.Value))
			b = append(b, buf.Bytes()...)
		}
		b = append(b, '\'')
	}
	if empty {
		return append(b, "/>"...)
	}
	return append(b, '>')
}

func appendQName(b []byte, n xml.Name) []byte {
	if n.Space != "" {
		b = append(b, n.Space...)
		b = append(b, ':')
	}
	return append(b, n.Local...)
}
