package mamsync

import (
	"errors"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

var alice = jid.MustParse("alice@example.org")

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		raw     string
		kind    Kind
		id      string
		peer    string
		dir     Direction
		body    string
		errWant error // nil: ok; ErrNotArchived; errAny: any other error
	}{
		{"mam result (XEP-0313 example)", `<message xmlns='jabber:client' id='aeb213' to='alice@example.org/chamber'><result xmlns='urn:xmpp:mam:2' queryid='f27' id='28482-98726-73623'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25Z'/><message xmlns='jabber:client' to='alice@example.org/balcony' from='romeo@montague.lit/orchard' type='chat'><body>Call me but love</body></message></forwarded></result></message>`,
			KindResult, "28482-98726-73623", "romeo@montague.lit", DirectionIn, "Call me but love", nil},
		{"mam result, own message", `<message xmlns='jabber:client' from='alice@example.org'><result xmlns='urn:xmpp:mam:2' queryid='q' id='x1'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2024-01-01T00:00:00.123Z'/><message xmlns='jabber:client' from='alice@example.org/phone' to='bob@example.org'><body>hi</body></message></forwarded></result></message>`,
			KindResult, "x1", "bob@example.org", DirectionOut, "hi", nil},
		{"mam result from someone else", `<message xmlns='jabber:client' from='mallory@evil.example'><result xmlns='urn:xmpp:mam:2' queryid='q' id='x1'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='bob@example.org'><body>hi</body></message></forwarded></result></message>`,
			0, "", "", 0, "", errAny},
		{"live with stanza-id", `<message xmlns='jabber:client' from='bob@example.org/pc' to='alice@example.org' type='chat'><body>yo</body><stanza-id xmlns='urn:xmpp:sid:0' id='s9' by='alice@example.org'/><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>`,
			KindLive, "s9", "bob@example.org", DirectionIn, "yo", nil},
		{"live, stanza-id by someone else", `<message xmlns='jabber:client' from='bob@example.org/pc'><body>yo</body><stanza-id xmlns='urn:xmpp:sid:0' id='s9' by='bob@example.org'/></message>`,
			0, "", "", 0, "", ErrNotArchived},
		{"received carbon", `<message xmlns='jabber:client' from='alice@example.org' to='alice@example.org/r'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='bob@example.org/x' to='alice@example.org/other'><body>c</body><stanza-id xmlns='urn:xmpp:sid:0' id='c1' by='alice@example.org'/></message></forwarded></received></message>`,
			KindLive, "c1", "bob@example.org", DirectionIn, "c", nil},
		{"sent carbon", `<message xmlns='jabber:client' from='alice@example.org' to='alice@example.org/r'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='alice@example.org/other' to='bob@example.org'><body>s</body><stanza-id xmlns='urn:xmpp:sid:0' id='c2' by='alice@example.org'/></message></forwarded></sent></message>`,
			KindLive, "c2", "bob@example.org", DirectionOut, "s", nil},
		{"forged carbon", `<message xmlns='jabber:client' from='mallory@evil.example'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='bob@example.org/x'><body>c</body><stanza-id xmlns='urn:xmpp:sid:0' id='c1' by='alice@example.org'/></message></forwarded></received></message>`,
			0, "", "", 0, "", errAny},
		{"bad stamp", `<message xmlns='jabber:client'><result xmlns='urn:xmpp:mam:2' id='x'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='yesterday'/><message xmlns='jabber:client' from='b@c'/></forwarded></result></message>`,
			0, "", "", 0, "", errAny},
		{"not xml", `<message`, 0, "", "", 0, "", errAny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := Parse(alice, []byte(tc.raw))
			switch {
			case tc.errWant == nil && err != nil:
				t.Fatalf("err %v", err)
			case tc.errWant == ErrNotArchived && !errors.Is(err, ErrNotArchived):
				t.Fatalf("err %v, want ErrNotArchived", err)
			case tc.errWant == errAny && (err == nil || errors.Is(err, ErrNotArchived)):
				t.Fatalf("err %v, want a parse error", err)
			}
			if tc.errWant != nil {
				return
			}
			m := in.Message
			if in.Kind != tc.kind || m.StanzaID != tc.id || m.Peer != tc.peer || m.Direction != tc.dir || m.Body != tc.body || len(m.Raw) == 0 {
				t.Errorf("got %+v", in)
			}
		})
	}
	in, _ := Parse(alice, []byte(`<message xmlns='jabber:client'><result xmlns='urn:xmpp:mam:2' id='x'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25Z'/><message xmlns='jabber:client' from='b@c'/></forwarded></result></message>`))
	if !in.Message.Time.Equal(time.Date(2010, 7, 10, 23, 8, 25, 0, time.UTC)) {
		t.Errorf("time %v", in.Message.Time)
	}
}

var errAny = errors.New("any error")

func TestParseFinAndAnswers(t *testing.T) {
	f, err := ParseFin([]byte(`<fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><first index='0'>a</first><last>b</last><count>16</count></set></fin>`))
	if err != nil || !f.Complete || f.First != "a" || f.Last != "b" || f.Count != 16 {
		t.Errorf("fin %+v %v", f, err)
	}
	f, err = ParseFin([]byte(`<fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><last>b</last></set></fin>`))
	if err != nil || f.Complete || f.Count != -1 {
		t.Errorf("prosody-style fin %+v %v", f, err)
	}
	for _, bad := range []string{`<fin xmlns='urn:xmpp:mam:1'/>`, `<fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><count>-3</count></set></fin>`, `<fin`} {
		if _, err := ParseFin([]byte(bad)); err == nil {
			t.Errorf("ParseFin(%q) accepted", bad)
		}
	}
	if _, err := parseAnswer([]byte(`<iq xmlns='jabber:client' type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)); !errors.Is(err, errExpired) {
		t.Errorf("item-not-found: %v", err)
	}
	if _, err := parseAnswer([]byte(`<iq xmlns='jabber:client' type='error'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)); !errors.Is(err, ErrQuery) {
		t.Errorf("service-unavailable: %v", err)
	}
	tg, err := parseMetadata([]byte(`<iq xmlns='jabber:client' type='result'><metadata xmlns='urn:xmpp:mam:2'><start id='a' timestamp='2008-08-22T21:09:04Z'/><end id='z' timestamp='2020-04-20T14:34:21Z'/></metadata></iq>`))
	if err != nil || tg.LatestID != "z" || !tg.Known {
		t.Errorf("metadata %+v %v", tg, err)
	}
	tg, err = parseMetadata([]byte(`<iq xmlns='jabber:client' type='result'><metadata xmlns='urn:xmpp:mam:2'/></iq>`))
	if err != nil || tg.LatestID != "" || !tg.Known {
		t.Errorf("empty metadata %+v %v", tg, err)
	}
	if _, err := parseMetadata([]byte(`<iq xmlns='jabber:client' type='error'><error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)); !errors.Is(err, ErrNoMetadata) {
		t.Errorf("ejabberd metadata: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`<message xmlns='jabber:client'><result xmlns='urn:xmpp:mam:2' queryid='f27' id='28482'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25Z'/><message xmlns='jabber:client' from='romeo@montague.lit/orchard'><body>x</body></message></forwarded></result></message>`))
	f.Add([]byte(`<message xmlns='jabber:client' from='alice@example.org'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='bob@example.org/x'><body>c</body><stanza-id xmlns='urn:xmpp:sid:0' id='c1' by='alice@example.org'/></message></forwarded></received></message>`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		in, err := Parse(alice, raw)
		if err != nil {
			return
		}
		if in.Message.StanzaID == "" || len(in.Message.StanzaID) > maxIDLen {
			t.Fatalf("accepted a message without a valid archive id: %+v", in)
		}
	})
}

func FuzzParseFin(f *testing.F) {
	f.Add([]byte(`<fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><first index='0'>a</first><last>b</last><count>16</count></set></fin>`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		fin, err := ParseFin(raw)
		if err == nil && fin.Count < -1 {
			t.Fatal("negative count")
		}
		_, _ = parseAnswer(raw)
		_, _ = parseMetadata(raw)
	})
}
