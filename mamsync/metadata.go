package mamsync

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"

	"mellium.im/xmpp"
)

// ErrNoMetadata: the server does not answer MAM metadata queries (ejabberd
// 24.12); Reconcile then pages until the result set is complete.
var ErrNoMetadata = errors.New("mamsync: the archive has no metadata query")

// Metadata asks the archive for its newest id (XEP-0313 §5.1). An empty
// archive returns a Known target with an empty id.
func Metadata(ctx context.Context, sess *xmpp.Session) (Target, error) {
	req := "<iq type='get' id='" + randomID() + "'><metadata xmlns='urn:xmpp:mam:2'/></iq>"
	resp, err := sess.SendIQ(ctx, xml.NewDecoder(strings.NewReader(req)))
	if err != nil {
		return Target{}, fmt.Errorf("mamsync: metadata: %w", err)
	}
	defer resp.Close()
	raw, err := encode(resp)
	if err != nil {
		return Target{}, fmt.Errorf("mamsync: metadata: %w", err)
	}
	return parseMetadata(raw)
}

// parseMetadata reads the IQ answering a metadata query.
func parseMetadata(raw []byte) (Target, error) {
	var iq struct {
		Type     string `xml:"type,attr"`
		Metadata *struct {
			End *struct {
				ID string `xml:"id,attr"`
			} `xml:"end"`
		} `xml:"urn:xmpp:mam:2 metadata"`
	}
	if err := xml.Unmarshal(raw, &iq); err != nil {
		return Target{}, fmt.Errorf("%w: metadata: %v", ErrQuery, err)
	}
	switch {
	case iq.Type == "error":
		return Target{}, ErrNoMetadata
	case iq.Type != "result" || iq.Metadata == nil:
		return Target{}, fmt.Errorf("%w: metadata: unexpected answer", ErrQuery)
	}
	if iq.Metadata.End == nil {
		return Target{Known: true}, nil
	}
	id := strings.TrimSpace(iq.Metadata.End.ID)
	if id == "" || len(id) > maxIDLen {
		return Target{}, fmt.Errorf("%w: metadata: invalid end id", ErrQuery)
	}
	return Target{LatestID: id, Known: true}, nil
}
