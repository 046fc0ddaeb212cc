package login

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"mellium.im/xmpp/jid"
)

// StartTLSResult describes a STARTTLS negotiation (RFC 6120 §5).
type StartTLSResult struct {
	// Offered reports that the server's stream features offered STARTTLS.
	Offered bool
	// RoundTrips counts the client's write-then-wait turns before the TLS
	// handshake: 1 when <starttls/> was pipelined with the stream header,
	// 2 when the features were read first.
	RoundTrips int
}

// StartTLS negotiates STARTTLS on conn, a plain TCP connection to the
// server of j: it sends the initial stream header (to j's domain, from j's
// bare JID), asks for TLS and returns once the server said <proceed/>; the
// caller then runs the TLS handshake on conn. With pipelined (the caller
// knows, from a cache, that the server offers STARTTLS) the header and
// <starttls/> go in one write: one round trip. Otherwise the features are
// read first: two. A server that does not offer STARTTLS is an error
// (ErrTLS): the stream never continues in plain text. At most
// MaxLoginBytes of the server's answer are read (ErrTooLarge beyond).
//
// The result counts what happened also when an error is returned. Errors
// are *Error with Step StepStartTLS; when ctx ends, every read and write on
// conn fails at once and the error matches the context's. StartTLS never
// closes conn.
func StartTLS(ctx context.Context, conn net.Conn, j jid.JID, pipelined bool) (StartTLSResult, error) {
	domain := j.Domainpart()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var res StartTLSResult
	if kind, err := startTLS(conn, j, pipelined, &res); err != nil {
		return res, NewError(ctx, StepStartTLS, domain, kind, err)
	}
	return res, nil
}

// startTLSRequest is the <starttls/> element.
const startTLSRequest = "<starttls xmlns='" + NSTLS + "'/>"

// startTLS runs the exchange; a failure comes with its kind (one of the
// sentinel errors).
func startTLS(conn net.Conn, j jid.JID, pipelined bool, res *StartTLSResult) (kind, err error) {
	first := appendHeader(nil, j.Domainpart(), j.Bare().String())
	if pipelined {
		first = append(first, startTLSRequest...)
	}
	if _, err := conn.Write(first); err != nil {
		return ErrConnection, err
	}
	res.RoundTrips = 1
	// The server sends nothing after <proceed/> until the TLS handshake, so
	// a buffering decoder loses nothing here. Whoever is on the path can
	// answer before TLS: what it can make the client buffer is bounded.
	d := xml.NewDecoder(&boundedReader{r: conn, n: MaxLoginBytes})
	var sawHeader bool
	for {
		tok, err := d.Token()
		if err != nil {
			return readErrorKind(err), err
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch {
		case start.Name == xml.Name{Space: NSStream, Local: "stream"}:
			sawHeader = true
		case !sawHeader:
			return ErrProtocol, fmt.Errorf("expected a stream header, got <%s>", start.Name.Local)
		case start.Name == xml.Name{Space: NSStream, Local: "features"}:
			if kind, err := startTLSFeatures(conn, d, start, pipelined, res); err != nil {
				return kind, err
			}
		case start.Name == xml.Name{Space: NSTLS, Local: "proceed"}:
			if err := d.Skip(); err != nil {
				return readErrorKind(err), err
			}
			return nil, nil
		case start.Name == xml.Name{Space: NSTLS, Local: "failure"}:
			return ErrTLS, errors.New("the server refused STARTTLS")
		case start.Name == xml.Name{Space: NSStream, Local: "error"}:
			return ErrRefused, errors.New("stream error during STARTTLS")
		default:
			return ErrProtocol, fmt.Errorf("unexpected <%s> during STARTTLS", start.Name.Local)
		}
	}
}

// startTLSFeatures reads the features and, unless it was pipelined, sends
// <starttls/>.
func startTLSFeatures(conn net.Conn, d *xml.Decoder, start xml.StartElement, pipelined bool, res *StartTLSResult) (kind, err error) {
	var f struct {
		StartTLS *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
	}
	if err := d.DecodeElement(&f, &start); err != nil {
		return readErrorKind(err), err
	}
	res.Offered = f.StartTLS != nil
	if !res.Offered {
		return ErrTLS, errors.New("the server does not offer STARTTLS")
	}
	if pipelined {
		return nil, nil
	}
	if _, err := conn.Write([]byte(startTLSRequest)); err != nil {
		return ErrConnection, err
	}
	res.RoundTrips++
	return nil, nil
}

// readErrorKind classifies an error reading the server's answer: data that
// is not XML, or too much of it, is ErrProtocol; the connection ending
// (also inside an element) is ErrConnection.
func readErrorKind(err error) error {
	var syn *xml.SyntaxError
	if errors.Is(err, ErrTooLarge) || (errors.As(err, &syn) && syn.Msg != "unexpected EOF") {
		return ErrProtocol
	}
	return ErrConnection
}

// boundedReader reads at most n bytes from r, then fails with ErrTooLarge.
type boundedReader struct {
	r io.Reader
	n int
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, fmt.Errorf("%w: more than %d bytes before TLS", ErrTooLarge, MaxLoginBytes)
	}
	if len(p) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= n
	return n, err
}
