package mds

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"
)

// TestMain fails the test binary when a goroutine a test started is still
// running after all tests have finished.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var (
	alice = jid.MustParse("alice@example.org")
	bob   = jid.MustParse("bob@example.org")
	room  = jid.MustParse("room@muc.example.org")
)

// request is an IQ the scripted server read.
type request struct {
	ID    string `xml:"id,attr"`
	Type  string `xml:"type,attr"`
	Inner []byte `xml:",innerxml"`
}

// withServer runs f with a session for alice whose server answers each IQ
// with answer(req), the answer's attributes after the IQ's id, and returns
// the requests the server read.
func withServer(t *testing.T, answer func(req request) string, f func(ctx context.Context, s *xmpp.Session)) []request {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, sc := net.Pipe()
	reqs := make(chan []request, 1)
	go func() {
		var seen []request
		defer func() { reqs <- seen }()
		d := xml.NewDecoder(sc)
		for {
			var req request
			if err := d.Decode(&req); err != nil {
				return
			}
			seen = append(seen, req)
			if _, err := fmt.Fprintf(sc, "<iq xmlns='jabber:client' id='%s' %s", req.ID, answer(req)); err != nil {
				return
			}
		}
	}()
	sess, err := xmpp.NewSession(ctx, alice.Domain(), alice, cc, 0,
		func(_ context.Context, in, out *stream.Info, _ *xmpp.Session, _ any) (xmpp.SessionState, io.ReadWriter, any, error) {
			in.XMLNS, out.XMLNS = "jabber:client", "jabber:client"
			return xmpp.Ready | xmpp.Authn | xmpp.Secure, nil, nil, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- sess.Serve(nil) }()
	f(ctx, sess)
	cc.Close()
	sc.Close()
	<-served
	return <-reqs
}

// result answers with an empty result.
func result(request) string { return "type='result'/>" }

// publishRequest is what a publish must carry.
type publishRequest struct {
	Publish struct {
		Node string `xml:"node,attr"`
		Item struct {
			ID        string `xml:"id,attr"`
			Displayed struct {
				StanzaID struct {
					ID string `xml:"id,attr"`
					By string `xml:"by,attr"`
				} `xml:"urn:xmpp:sid:0 stanza-id"`
			} `xml:"urn:xmpp:mds:displayed:0 displayed"`
		} `xml:"item"`
	} `xml:"http://jabber.org/protocol/pubsub publish"`
	Options struct {
		Form struct {
			Type   string `xml:"type,attr"`
			Fields []struct {
				Var   string `xml:"var,attr"`
				Type  string `xml:"type,attr"`
				Value string `xml:"value"`
			} `xml:"field"`
		} `xml:"jabber:x:data x"`
	} `xml:"http://jabber.org/protocol/pubsub publish-options"`
}

// TestPublish: the item, its stanza-id (escaped by the encoder, whatever it
// holds) and the publish options XEP-0490 asks for.
func TestPublish(t *testing.T) {
	const sid = `it's <1> & "2"`
	for _, tc := range []struct {
		name string
		by   jid.JID
		want string
	}{
		{"by the account (default)", jid.JID{}, "alice@example.org"},
		{"by a room", room, room.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reqs := withServer(t, result, func(ctx context.Context, s *xmpp.Session) {
				if err := Publish(ctx, s, Marker{Peer: jid.MustParse("bob@example.org/phone"), StanzaID: sid, By: tc.by}); err != nil {
					t.Fatal(err)
				}
			})
			if len(reqs) != 1 || reqs[0].Type != "set" {
				t.Fatalf("requests %+v, want one set", reqs)
			}
			var p publishRequest // the IQ's inner XML is the <pubsub/>
			if err := xml.Unmarshal(reqs[0].Inner, &p); err != nil {
				t.Fatal(err)
			}
			it := p.Publish.Item
			if p.Publish.Node != NS || it.ID != "bob@example.org" || it.Displayed.StanzaID.ID != sid || it.Displayed.StanzaID.By != tc.want {
				t.Errorf("published %+v", p.Publish)
			}
			if p.Options.Form.Type != "submit" {
				t.Errorf("publish-options form of type %q", p.Options.Form.Type)
			}
			got := fmt.Sprint(p.Options.Form.Fields)
			want := "[{FORM_TYPE hidden http://jabber.org/protocol/pubsub#publish-options} {pubsub#persist_items  true} " +
				"{pubsub#max_items  max} {pubsub#send_last_published_item  never} {pubsub#access_model  whitelist}]"
			if got != want {
				t.Errorf("publish-options %s\nwant %s", got, want)
			}
		})
	}
}

// TestErrorAnswers: an IQ error is a stanza.Error matched by condition
// (and type), whatever else the server puts in it; a malformed answer is an
// error that is not one.
func TestErrorAnswers(t *testing.T) {
	long := strings.Repeat("x", 10000)
	for _, tc := range []struct {
		name   string
		answer string
		want   stanza.Error
		text   string
	}{
		{"item-not-found", "type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
			stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}, ""},
		{"text first", "type='error'><error type='cancel'><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no</text><feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
			stanza.Error{Condition: stanza.FeatureNotImplemented}, "no"},
		{"no condition", "type='error'><error type='wait'/></iq>", stanza.Error{Type: stanza.Wait, Condition: stanza.UndefinedCondition}, ""},
		{"no error element", "type='error'/>", stanza.Error{Condition: stanza.UndefinedCondition}, ""},
		{"foreign and huge condition", "type='error'><error type='auth'><" + long + " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><x xmlns='urn:example'/><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
			stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}, ""},
		{"huge text", "type='error'><error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>" + long + "</text></error></iq>",
			stanza.Error{Condition: stanza.NotAllowed}, long[:maxTextLen] + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answer := func(request) string { return tc.answer }
			var errs []error
			withServer(t, answer, func(ctx context.Context, s *xmpp.Session) {
				errs = append(errs, Publish(ctx, s, Marker{Peer: bob, StanzaID: "1"}))
				_, err := Fetch(ctx, s)
				errs = append(errs, err)
			})
			for i, err := range errs {
				var se stanza.Error
				switch {
				case !errors.Is(err, tc.want) || !errors.As(err, &se):
					t.Errorf("call %d: %v, want %v", i, err, tc.want)
				case se.Text[""] != tc.text:
					t.Errorf("call %d: text %q, want %q", i, se.Text[""], tc.text)
				}
			}
		})
	}
}

// pubsubResult is a result holding a <pubsub/> with the given children.
func pubsubResult(children ...string) func(request) string {
	return func(request) string {
		return "type='result'><pubsub xmlns='http://jabber.org/protocol/pubsub'>" + strings.Join(children, "") + "</pubsub></iq>"
	}
}

// itemsOf is the <items/> of node with the given <item/>s.
func itemsOf(node string, item ...string) string {
	return "<items node='" + node + "'>" + strings.Join(item, "") + "</items>"
}

// TestMalformedAnswers: what a session would not deliver as an IQ answer
// (so only the parser sees it) is an error, short, and no stanza.Error.
func TestMalformedAnswers(t *testing.T) {
	long := strings.Repeat("x", 10000)
	for name, answer := range map[string]string{
		"odd type":         "<iq type='" + long + "'/>",
		"not an IQ":        "<message type='error'/>",
		"nothing":          "",
		"not closed":       "<iq type='error'><error><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'></error></iq>",
		"truncated result": "<iq type='result'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:mds:displayed:0'>",
	} {
		t.Run(name, func(t *testing.T) {
			p := itemsParser{account: alice}
			err := readAnswer(xml.NewDecoder(strings.NewReader(answer)), p.read)
			var se stanza.Error
			if err == nil || errors.As(err, &se) || len(err.Error()) > 200 {
				t.Errorf("err = %.200v, want a short error that is no stanza.Error", err)
			}
		})
	}
}

// items is an answer to Fetch holding the given <item/>s.
func items(item ...string) func(request) string { return pubsubResult(itemsOf(NS, item...)) }

// item is a marker item.
func item(id string, sids ...string) string {
	s := "<item id='" + id + "'><displayed xmlns='urn:xmpp:mds:displayed:0'>"
	for i := 0; i+1 < len(sids); i += 2 {
		s += "<stanza-id xmlns='urn:xmpp:sid:0' id='" + sids[i] + "' by='" + sids[i+1] + "'/>"
	}
	return s + "</displayed></item>"
}

// TestFetch: the request, and which markers of a mixed, partly hostile
// answer are kept.
func TestFetch(t *testing.T) {
	answer := pubsubResult(itemsOf("another", item("mallory@example.org", "m1", "alice@example.org")), itemsOf(NS,
		item("bob@example.org", "s1", "alice@example.org"),                               // one-to-one
		item("room@muc.example.org", "r1", "room@muc.example.org"),                       // groupchat
		item("carol@example.org", "c1", "eve@evil.example"),                              // wrong by
		item("dave@example.org", "d0", "eve@evil.example", "d1", "alice@example.org/pc"), // the second stanza-id is right
		item("@not a jid", "x1", "alice@example.org"),
		item("erin@example.org", "", "alice@example.org"),                               // empty id
		item("frank@example.org", strings.Repeat("f", MaxIDLen+1), "alice@example.org"), // id too long
		item("grace@example.org", "g1", "not a jid@@"),
		"<item id='heidi@example.org'/>", // no marker
		"<item id='ivan@example.org'><junk xmlns='urn:example'>"+strings.Repeat("<a><b/></a>", 1000)+"</junk>"+
			"<displayed xmlns='urn:xmpp:mds:displayed:0'><junk/><stanza-id xmlns='urn:xmpp:sid:0' id='i1' by='alice@example.org'><x/></stanza-id></displayed></item>",
		"<other xmlns='urn:example'><item id='judy@example.org'/></other>",
	), "<other xmlns='urn:example'/>")
	var got []Marker
	reqs := withServer(t, answer, func(ctx context.Context, s *xmpp.Session) {
		var err error
		if got, err = Fetch(ctx, s); err != nil {
			t.Fatal(err)
		}
	})
	want := []Marker{
		{Peer: bob, StanzaID: "s1", By: alice},
		{Peer: room, StanzaID: "r1", By: room},
		{Peer: jid.MustParse("dave@example.org"), StanzaID: "d1", By: alice},
		{Peer: jid.MustParse("ivan@example.org"), StanzaID: "i1", By: alice},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("markers %v\nwant    %v", got, want)
	}
	var req struct {
		Items struct {
			Node     string `xml:"node,attr"`
			MaxItems string `xml:"max_items,attr"`
		} `xml:"http://jabber.org/protocol/pubsub items"`
	}
	if len(reqs) != 1 || reqs[0].Type != "get" {
		t.Fatalf("requests %+v, want one get", reqs)
	}
	if err := xml.Unmarshal(reqs[0].Inner, &req); err != nil || req.Items.Node != NS || req.Items.MaxItems != fmt.Sprint(MaxItems) {
		t.Errorf("request %s: %+v, %v", reqs[0].Inner, req, err)
	}
}

// TestFetchBounds: no more than MaxItems markers (an answer with more is an
// error), and an empty node or answer is no marker.
func TestFetchBounds(t *testing.T) {
	many := make([]string, MaxItems+1)
	for i := range many {
		many[i] = item(fmt.Sprintf("u%d@example.org", i), fmt.Sprint(i), "alice@example.org")
	}
	for _, tc := range []struct {
		name   string
		answer func(request) string
		n      int
		err    error
	}{
		{"MaxItems", items(many[:MaxItems]...), MaxItems, nil},
		{"one more", items(many...), 0, errTooMany},
		{"empty node", items(), 0, nil},
		{"empty result", result, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withServer(t, tc.answer, func(ctx context.Context, s *xmpp.Session) {
				got, err := Fetch(ctx, s)
				if len(got) != tc.n || !errors.Is(err, tc.err) {
					t.Errorf("%d markers, %v; want %d, %v", len(got), err, tc.n, tc.err)
				}
			})
		})
	}
}

// TestFetchRequestAhead: the request written ahead is Fetch's, and
// ParseFetch reads its answer as Fetch does.
func TestFetchRequestAhead(t *testing.T) {
	req := string(FetchRequest("a'1"))
	for _, want := range []string{"<iq type='get' id='a&#39;1'>", "node='" + NS + "'", "max_items='1000'"} {
		if !strings.Contains(req, want) {
			t.Errorf("request %q lacks %q", req, want)
		}
	}
	account := jid.MustParse("alice@example.org")
	answer := `<iq type='result' id='a'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:mds:displayed:0'>` +
		`<item id='bob@example.org'><displayed xmlns='urn:xmpp:mds:displayed:0'><stanza-id xmlns='urn:xmpp:sid:0' id='s1' by='alice@example.org'/></displayed></item>` +
		`</items></pubsub></iq>`
	got, err := ParseFetch(account, []byte(answer))
	if err != nil || len(got) != 1 || got[0].StanzaID != "s1" || got[0].Peer.String() != "bob@example.org" {
		t.Fatalf("ParseFetch = %+v, %v", got, err)
	}
	_, err = ParseFetch(account, []byte(`<iq type='error' id='a'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`))
	if !errors.Is(err, stanza.Error{Condition: stanza.ItemNotFound}) {
		t.Fatalf("an error answer: %v", err)
	}
}
