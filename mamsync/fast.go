package mamsync

import (
	"bytes"
	"context"
	"encoding/xml"
)

// HandleRaw is the fast path for a MAM result of this syncer's queries:
// raw is one complete top-level element of the client stream, as it came
// off the wire (not yet decoded). If raw is a MAM result that
// HandleElement would consume, HandleRaw consumes it the same way (the
// same Incoming, the same Raw) and returns true; the caller then never
// decodes it. Otherwise it returns false and has done nothing: the caller
// decodes the element as usual (HandleElement). It does not retain raw.
//
// It reads raw with a tokenizer of the plain XML servers send for MAM
// results (see fastTokens), several times cheaper than encoding/xml;
// whatever that tokenizer does not read goes the usual way.
func (s *Syncer) HandleRaw(ctx context.Context, raw []byte) bool {
	if !bytes.Contains(raw, nsMAMBytes) {
		return false
	}
	t := newFastTokens(raw)
	if t == nil {
		return false
	}
	tok, err := t.Token()
	if err != nil {
		return false
	}
	start, ok := tok.(xml.StartElement)
	if !ok || start.Name.Space != nsClient || start.Name.Local != "message" {
		return false
	}
	_, in, perr, err := ReadMessage(s.cfg.Account, start, t)
	if err != nil || perr != nil || in.Kind != KindResult {
		return false
	}
	consumed, err := s.handle(ctx, in, nil)
	return consumed && err == nil
}

var nsMAMBytes = []byte(NSMAM)
