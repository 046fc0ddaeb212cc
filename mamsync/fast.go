package mamsync

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"
)

// HandleRaw takes one complete top-level <message> of the client stream as
// it came off the wire, before the session decodes it (package wire's
// inbound tap), and reports whether mamsync consumed it:
//
//   - a MAM result of this syncer's queries is consumed: collected for the
//     query, never seen by the session;
//   - an archived live message (direct, or a carbon from the account) is
//     not consumed: the application's handler sees it, decoded once from
//     the wire. mamsync stores it in order (held while a query runs, queued
//     for StoreLive otherwise) and delivers it through OnMessage once
//     stored;
//   - anything else is not consumed and not kept.
//
// It runs on the session's reading goroutine and never blocks on the store.
// It does not retain raw.
func (s *Syncer) HandleRaw(raw []byte) bool {
	in, err := parseWire(s.cfg.Account, raw)
	if err != nil {
		if !errors.Is(err, ErrNotArchived) {
			s.log.Debug().Err(err).Msg("message not mirrored")
		}
		return false
	}
	return s.handle(in)
}

// parseWire reads a top-level message as it came off the wire: with a
// tokenizer of the plain XML servers send (fastTokens, several times cheaper
// than encoding/xml) when it can, with encoding/xml otherwise. Both feed the
// same parser (readMessage), so both give the same Incoming, with the same
// Raw: the message serialized on its own, its namespaces declared.
func parseWire(account jid.JID, raw []byte) (Incoming, error) {
	if len(raw) > maxRawLen {
		return Incoming{}, fmt.Errorf("mamsync: message of %d bytes exceeds %d", len(raw), maxRawLen)
	}
	if t := newFastTokens(raw); t != nil {
		if in, perr, err := readTop(account, t); err == nil {
			return in, perr
		}
		// Something the tokenizer does not read: encoding/xml reads it.
	}
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.DefaultSpace = nsClient // what the stream header declares
	in, perr, err := readTop(account, d)
	if err != nil {
		return Incoming{}, fmt.Errorf("mamsync: %w", err)
	}
	return in, perr
}

// readTop reads a top-level <message> from r: its start element, then the
// rest through readMessage.
func readTop(account jid.JID, r xml.TokenReader) (in Incoming, perr, err error) {
	tok, err := r.Token()
	if err != nil {
		return Incoming{}, nil, err
	}
	start, ok := tok.(xml.StartElement)
	if !ok || start.Name.Space != nsClient || start.Name.Local != "message" {
		return Incoming{}, fmt.Errorf("%w: not a jabber:client message", ErrNotArchived), nil
	}
	_, in, perr, err = readMessage(account, start, r)
	return in, perr, err
}
