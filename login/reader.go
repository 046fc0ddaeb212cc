package login

import (
	"encoding/xml"
	"fmt"
	"strings"

	"mellium.im/xmpp/stream"
)

// reader reads the server's top-level elements through the session's own
// decoder, so that nothing is read twice and nothing is lost.
type reader struct {
	d  *xml.Decoder
	in *stream.Info
}

// header reads a stream header (the first, or the one after a restart) into
// r.in.
func (r *reader) header() error {
	for {
		tok, err := r.d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name != (xml.Name{Space: NSStream, Local: "stream"}) {
				if t.Name.Local == "error" && t.Name.Space == NSStream {
					return r.streamError(t)
				}
				return protocolErrorf("expected a stream header, got <%s xmlns='%s'>", t.Name.Local, t.Name.Space)
			}
			*r.in = stream.Info{}
			if err := r.in.FromStartElement(t); err != nil {
				return protocolErrorf("stream header: %v", err)
			}
			if r.in.XMLNS != NSClient {
				return protocolErrorf("stream header: default namespace %q, want %q", r.in.XMLNS, NSClient)
			}
			return nil
		case xml.EndElement:
			return fmt.Errorf("%w: server closed the stream", ErrConnection)
		case xml.CharData:
			if len(strings.TrimSpace(string(t))) != 0 {
				return protocolErrorf("text before the stream header")
			}
		}
		// ProcInst (<?xml?>), comments and whitespace are skipped.
	}
}

// next returns the next top-level element's start. A <stream:error> is
// decoded and returned as a *StreamError; the end of the stream is an error.
func (r *reader) next() (xml.StartElement, error) {
	for {
		tok, err := r.d.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name == (xml.Name{Space: NSStream, Local: "error"}) {
				return xml.StartElement{}, r.streamError(t)
			}
			return t, nil
		case xml.EndElement:
			return xml.StartElement{}, fmt.Errorf("%w: server closed the stream", ErrConnection)
		case xml.CharData:
			if len(strings.TrimSpace(string(t))) != 0 {
				return xml.StartElement{}, protocolErrorf("unexpected text between elements")
			}
		}
	}
}

// streamError decodes a <stream:error> whose start was just read.
func (r *reader) streamError(start xml.StartElement) error {
	var e struct {
		Inner []struct {
			XMLName xml.Name
			Text    string `xml:",chardata"`
		} `xml:",any"`
	}
	if err := r.d.DecodeElement(&e, &start); err != nil {
		return &StreamError{Condition: "undefined-condition", Text: "unparsable stream error"}
	}
	se := &StreamError{Condition: "undefined-condition"}
	for _, in := range e.Inner {
		if in.XMLName.Space != NSStreamErrors {
			continue
		}
		if in.XMLName.Local == "text" {
			se.Text = truncate(in.Text, 512)
		} else {
			se.Condition = in.XMLName.Local
		}
	}
	return se
}

// truncate bounds server-provided text that ends up in errors.
func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
