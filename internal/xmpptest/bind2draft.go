package xmpptest

import (
	"encoding/xml"
	"strconv"
	"strings"
)

// XEP-0386 v0.3.0 (draft, namespace urn:xmpp:bind2:0), enabled by
// Config.Bind2Draft. Unlike the current Bind 2 (bind2.go) it is a top-level
// element sent after a classic SASL success and stream restart (or after
// SASL2 without inline bind): the client may pipeline the restart header and
// <bind xmlns='urn:xmpp:bind2:0'/> behind </auth> or its last SCRAM
// <response/>. In an authenticated, unbound session the server
//
//   - clears the user's offline messages without sending them: a no-op, as
//     the server stores none (messages to users without a session are only
//     archived, archive.go);
//   - binds a random resource;
//   - computes the unread messages per contact and the newest stanza-id of
//     the user's archive (archive.go);
//   - enables Carbons silently;
//   - answers <bound/> with <jid/>, <latest-id/> (left out when the archive
//     is empty) and <unreads/> (left out with Config.NoUnreads; present and
//     empty when nothing is unread).
//
// A <bind/> in any other state, or with Bind2Draft off, is a stream error
// (unsupported-stanza-type) like any unexpected element.

func init() {
	register(stateAuthed, nsBind2Draft, "bind", (*conn).handleBind2Draft)
}

func (c *conn) handleBind2Draft(el *element) error {
	if !c.cfg.Bind2Draft {
		return c.unhandled(el)
	}
	// Offline messages: none are stored, so there is nothing to clear.
	if err := c.bindResource(randomID(8)); err != nil {
		return err
	}
	c.carbons.Store(true)
	latest, unreads := c.srv.archiveState(c.user)

	bound := newElement(nsBind2Draft, "bound").add(newElement(nsBind2Draft, "jid").addText(c.jid.String()))
	if latest != "" {
		bound.add(newElement(nsBind2Draft, "latest-id").addText(latest))
	}
	if !c.cfg.NoUnreads {
		us := newElement(nsBind2Draft, "unreads")
		for _, u := range unreads {
			us.add(newElement(nsBind2Draft, "unread",
				"jid", u.peer, "read-id", u.readID, "unread-count", strconv.Itoa(u.count)))
		}
		bound.add(us)
	}
	c.state = stateBound
	c.log.set(func(l *ConnLog) { l.bind2Draft = true })

	items := []queuedOut{{bound.name, bound.appendXML(nil, nsClient)}}
	if c.cfg.AfterBound != "" {
		items = append(items, queuedOut{rawName(c.cfg.AfterBound), []byte(c.cfg.AfterBound)})
	}
	if err := c.writeItems(items...); err != nil {
		return err
	}
	c.markReady()
	return nil
}

// rawName is the name of the first element in raw XML, for the ConnLog;
// jabber:client when it declares no namespace, "raw" when it has none.
func rawName(raw string) xml.Name {
	d := xml.NewDecoder(strings.NewReader(raw))
	for {
		tok, err := d.Token()
		if err != nil {
			return name(nsClient, "raw")
		}
		if st, ok := tok.(xml.StartElement); ok {
			if st.Name.Space == "" {
				st.Name.Space = nsClient
			}
			return st.Name
		}
	}
}
