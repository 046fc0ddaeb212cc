package sm

import (
	"encoding/xml"
	"strconv"

	"github.com/rs/zerolog"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"

	"github.com/pipebind/pipebind/wire"
)

// Handler returns the xmpp.Handler of stream management on one connection
// of s: it answers the server's <r/> with <a h=.../> (the stanzas handled on
// earlier connections of the session plus conn.StanzasIn), applies the
// server's <a/> to the unacked queue, drops <enabled/> and <failed/>, and
// passes every other element to next. While stream management is off it
// only drops these elements.
func (s *Session) Handler(conn *wire.Conn, next xmpp.Handler, log zerolog.Logger) xmpp.Handler {
	return handler{s: s, conn: conn, next: next, log: log}
}

type handler struct {
	s    *Session
	conn *wire.Conn
	next xmpp.Handler
	log  zerolog.Logger
}

func (h handler) HandleXMPP(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	if start.Name.Space != NS {
		return h.next.HandleXMPP(t, start)
	}
	switch start.Name.Local {
	case "r":
		if !h.s.Enabled() {
			return nil
		}
		_, err := xmlstream.Copy(t, Ack(h.s.Handled(h.conn.StanzasIn())))
		return err
	case "a":
		if h.s.Enabled() {
			h.ack(start)
		}
		return nil
	case "enabled", "failed":
		return nil
	}
	return h.next.HandleXMPP(t, start)
}

// ack applies an <a/>; an invalid one is logged and ignored.
func (h handler) ack(start *xml.StartElement) {
	for _, at := range start.Attr {
		if at.Name.Local != "h" {
			continue
		}
		v, err := strconv.ParseUint(at.Value, 10, 32)
		if err != nil {
			h.log.Warn().Str("h", truncate(at.Value, 32)).Msg("stream management: invalid ack ignored")
			return
		}
		if err := h.s.Ack(uint32(v)); err != nil {
			h.log.Warn().Err(err).Msg("stream management: this session will not be resumed")
		}
	}
}
