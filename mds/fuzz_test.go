package mds

import (
	"encoding/xml"
	"errors"
	"strings"
	"testing"

	"mellium.im/xmpp/stanza"
)

// FuzzReadAnswer feeds arbitrary IQ answers to the parser Fetch (and, for
// error answers, Publish) uses: it never panics, and what it returns holds
// to the package's bounds.
func FuzzReadAnswer(f *testing.F) {
	f.Add("<iq type='result'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:mds:displayed:0'>" +
		item("bob@example.org", "s1", "alice@example.org") + item("room@muc.example.org", "r1", "room@muc.example.org") +
		item("carol@example.org", "c1", "eve@evil.example") + "</items></pubsub></iq>")
	f.Add("<iq type='result'/>")
	f.Add("<iq type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>" +
		"<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>gone</text></error></iq>")
	f.Add("<iq type='error'><error type='wait'/></iq>")
	f.Fuzz(func(t *testing.T, answer string) {
		p := itemsParser{account: alice}
		err := readAnswer(xml.NewDecoder(strings.NewReader(answer)), p.read)
		var se stanza.Error
		if errors.As(err, &se) {
			if se.Condition == "" || len(se.Condition) > maxConditionLen || len(se.Text[""]) > maxTextLen+len("…") {
				t.Fatalf("stanza error %#v", se)
			}
		}
		if len(p.markers) > MaxItems {
			t.Fatalf("%d markers", len(p.markers))
		}
		for _, m := range p.markers {
			if m.StanzaID == "" || len(m.StanzaID) > MaxIDLen || !m.Peer.Equal(m.Peer.Bare()) ||
				(!m.By.Equal(alice) && !m.By.Equal(m.Peer)) {
				t.Fatalf("accepted marker %+v", m)
			}
		}
	})
}
