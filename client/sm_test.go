package client

import (
	"errors"
	"fmt"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/login"
)

func newSMForTest() *smSession {
	s := &smSession{}
	s.reset(&login.Result{JID: jid.MustParse("a@b/c"), SM: login.SMState{Enabled: true, Resumable: true, ID: "sess1"}})
	return s
}

func TestSMSessionAckAndResume(t *testing.T) {
	s := newSMForTest()
	for i := range 5 {
		s.onStanza(fmt.Appendf(nil, "<message id='%d'/>", i))
	}
	if !s.needRequest() || s.needRequest() {
		t.Fatal("want exactly one outstanding <r/>")
	}
	if err := s.ack(2); err != nil {
		t.Fatal(err)
	}
	if _, acked, n := s.counters(); acked != 2 || n != 3 {
		t.Fatalf("acked=%d unacked=%d, want 2 and 3", acked, n)
	}
	r := s.dropped(7)
	if r == nil || r.ID != "sess1" || r.H != 7 || r.JID.String() != "a@b/c" {
		t.Fatalf("resume = %+v", r)
	}
	resend, err := s.resumed(3)
	if err != nil {
		t.Fatal(err)
	}
	if len(resend) != 2 || string(resend[0]) != "<message id='3'/>" || string(resend[1]) != "<message id='4'/>" {
		t.Fatalf("resend = %q", resend)
	}
	if got := s.handled(4); got != 11 {
		t.Fatalf("handled = %d, want 7+4", got)
	}
}

func TestSMSessionAckBeyondSent(t *testing.T) {
	s := newSMForTest()
	s.onStanza([]byte("<iq/>"))
	if err := s.ack(2); !errors.Is(err, ErrSMAck) {
		t.Fatalf("ack(2) with one sent = %v, want ErrSMAck", err)
	}
	if _, err := s.resumed(5); !errors.Is(err, ErrSMAck) {
		t.Fatalf("resumed(5) = %v, want ErrSMAck", err)
	}
	if s.dropped(0) != nil {
		t.Fatal("a session with a bad ack is still offered for resumption")
	}
}

func TestSMSessionCounterWraps(t *testing.T) {
	s := newSMForTest()
	s.acked = ^uint32(0) - 1 // two before the wrap
	for range 4 {
		s.onStanza([]byte("<presence/>"))
	}
	if err := s.ack(1); err != nil { // 0xfffffffe -> 1 is 3 stanzas
		t.Fatal(err)
	}
	if _, _, n := s.counters(); n != 1 {
		t.Fatalf("unacked = %d, want 1", n)
	}
}

func TestSMSessionOverflowStopsResumption(t *testing.T) {
	s := newSMForTest()
	for range maxUnacked + 1 {
		s.onStanza([]byte("<message/>"))
	}
	if _, _, n := s.counters(); n != 0 {
		t.Fatalf("unacked after overflow = %d, want 0 (dropped)", n)
	}
	if s.dropped(0) != nil {
		t.Fatal("an overflowed session is offered for resumption")
	}
}

func TestSMSessionDisabledRecordsNothing(t *testing.T) {
	s := &smSession{}
	s.reset(&login.Result{})
	s.onStanza([]byte("<message/>"))
	if s.needRequest() {
		t.Fatal("<r/> requested without stream management")
	}
	if s.dropped(0) != nil {
		t.Fatal("resume offered without stream management")
	}
}
