package login

import (
	"errors"
	"strings"
	"testing"
)

func TestParseDraftBound(t *testing.T) {
	// The example of XEP-0386 v0.3.0 §Performing the bind, with its stray
	// commas between attributes removed (as printed it is not well-formed).
	const spec = `<bound xmlns='urn:xmpp:bind2:0'>
  <jid>nurse@shakespeare.lit/abtet29a9fu</jid>
  <latest-id>balisoseb</latest-id>
  <unreads>
    <unread jid='romeo@shakespeare.lit' read-id='onuheuhoeu' unread-count='3'/>
    <unread jid='juliet@shakespeare.lit' read-id='koeunhth29' unread-count='43'/>
  </unreads>
</bound>`
	b, err := ParseDraftBound([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	if b.JID.String() != "nurse@shakespeare.lit/abtet29a9fu" || b.LatestID != "balisoseb" || len(b.Unreads) != 2 ||
		b.Unreads[0].JID.String() != "romeo@shakespeare.lit" || b.Unreads[0].ReadID != "onuheuhoeu" || b.Unreads[0].Count != 3 ||
		b.Unreads[1].Count != 43 || len(b.Rejected) != 0 {
		t.Errorf("spec example: %+v", b)
	}

	// Absent <unreads>: not tracked (nil). Empty: tracked, none (non-nil).
	b, err = ParseDraftBound([]byte(`<bound xmlns='urn:xmpp:bind2:0'><jid>a@b/c</jid></bound>`))
	if err != nil || b.Unreads != nil || b.LatestID != "" {
		t.Errorf("absent: %+v %v", b, err)
	}
	b, err = ParseDraftBound([]byte(`<bound xmlns='urn:xmpp:bind2:0'><jid>a@b/c</jid><latest-id>x</latest-id><unreads/></bound>`))
	if err != nil || b.Unreads == nil || len(b.Unreads) != 0 || b.LatestID != "x" {
		t.Errorf("empty: %+v %v", b, err)
	}

	// Hostile entries are rejected one by one; the good one stays.
	b, err = ParseDraftBound([]byte(`<bound xmlns='urn:xmpp:bind2:0'><jid>a@b/c</jid><unreads>
		<unread jid='ok@b' read-id='1' unread-count='2'/>
		<unread jid='ok@b/other' read-id='9' unread-count='5'/>
		<unread jid='neg@b' read-id='1' unread-count='-1'/>
		<unread jid='huge@b' read-id='1' unread-count='99999999999999999999'/>
		<unread jid='word@b' read-id='1' unread-count='many'/>
		<unread jid='@@' read-id='1' unread-count='1'/>
		<unread read-id='1' unread-count='1'/>
	</unreads></bound>`))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Unreads) != 1 || b.Unreads[0].JID.String() != "ok@b" || b.Unreads[0].Count != 2 || len(b.Rejected) != 6 {
		t.Errorf("hostile: %+v", b)
	}

	for name, in := range map[string]string{
		"no jid":     `<bound xmlns='urn:xmpp:bind2:0'/>`,
		"bare jid":   `<bound xmlns='urn:xmpp:bind2:0'><jid>a@b</jid></bound>`,
		"long id":    `<bound xmlns='urn:xmpp:bind2:0'><jid>a@b/c</jid><latest-id>` + strings.Repeat("x", maxIDLength+1) + `</latest-id></bound>`,
		"spec comma": `<bound xmlns='urn:xmpp:bind2:0'><jid>a@b/c</jid><unreads><unread jid='r@s' read-id='o', unread-count='3'/></unreads></bound>`,
		"wrong ns":   `<bound xmlns='urn:xmpp:bind:0'><jid>a@b/c</jid></bound>`,
		"too many":   `<bound xmlns='urn:xmpp:bind2:0'><jid>a@b/c</jid><unreads>` + strings.Repeat(`<unread jid='x@y' unread-count='1'/>`, maxUnreads+1) + `</unreads></bound>`,
	} {
		if _, err := ParseDraftBound([]byte(in)); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: err = %v, want ErrProtocol", name, err)
		}
	}
}

func FuzzParseDraftBound(f *testing.F) {
	f.Add([]byte(`<bound xmlns='urn:xmpp:bind2:0'><jid>nurse@shakespeare.lit/abtet29a9fu</jid><latest-id>balisoseb</latest-id><unreads><unread jid='romeo@shakespeare.lit' read-id='onuheuhoeu' unread-count='3'/></unreads></bound>`))
	f.Add([]byte(`<bound xmlns='urn:xmpp:bind2:0'><jid>a@b/c</jid><unreads/></bound>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseDraftBound(data)
		if err != nil {
			return
		}
		if b.JID.Resourcepart() == "" {
			t.Fatal("bound without a full JID")
		}
		seen := map[string]bool{}
		for _, u := range b.Unreads {
			if u.Count < 0 || seen[u.JID.String()] {
				t.Fatalf("invalid unread kept: %+v", u)
			}
			seen[u.JID.String()] = true
		}
	})
}
