package sm

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/wire"
)

func newSMForTest() *Session {
	s := &Session{}
	s.Reset(State{Enabled: true, Resumable: true, ID: "sess1"}, jid.MustParse("a@b/c"))
	return s
}

// record is Record for a serialized stanza.
func (s *Session) record(p []byte) { s.Record(p, wire.KindMessage) }

func TestSMSessionAckAndResume(t *testing.T) {
	s := newSMForTest()
	for i := range 5 {
		s.record(fmt.Appendf(nil, "<message id='%d'/>", i))
	}
	if !s.NeedRequest() || s.NeedRequest() {
		t.Fatal("want exactly one outstanding <r/>")
	}
	if err := s.Ack(2); err != nil {
		t.Fatal(err)
	}
	if _, acked, n := s.Counters(); acked != 2 || n != 3 {
		t.Fatalf("acked=%d unacked=%d, want 2 and 3", acked, n)
	}
	r := s.Dropped(7)
	if r == nil || r.ID != "sess1" || r.H != 7 || r.JID.String() != "a@b/c" {
		t.Fatalf("resume = %+v", r)
	}
	resend, err := s.Resumed(3)
	if err != nil {
		t.Fatal(err)
	}
	if len(resend) != 2 || string(resend[0].Raw) != "<message id='3'/>" || string(resend[1].Raw) != "<message id='4'/>" {
		t.Fatalf("resend = %q", resend)
	}
	if got := s.Handled(4); got != 11 {
		t.Fatalf("handled = %d, want 7+4", got)
	}
}

func TestSMSessionAckBeyondSent(t *testing.T) {
	s := newSMForTest()
	s.record([]byte("<iq/>"))
	if err := s.Ack(2); !errors.Is(err, ErrAck) {
		t.Fatalf("ack(2) with one sent = %v, want ErrAck", err)
	}
	if _, err := s.Resumed(5); !errors.Is(err, ErrAck) {
		t.Fatalf("resumed(5) = %v, want ErrAck", err)
	}
	if s.Dropped(0) != nil {
		t.Fatal("a session with a bad ack is still offered for resumption")
	}
}

func TestSMSessionCounterWraps(t *testing.T) {
	s := newSMForTest()
	s.acked = ^uint32(0) - 1 // two before the wrap
	for range 4 {
		s.record([]byte("<presence/>"))
	}
	if err := s.Ack(1); err != nil { // 0xfffffffe -> 1 is 3 stanzas
		t.Fatal(err)
	}
	if _, _, n := s.Counters(); n != 1 {
		t.Fatalf("unacked = %d, want 1", n)
	}
}

func TestSMSessionOverflowStopsResumption(t *testing.T) {
	s := newSMForTest()
	for range MaxUnacked + 1 {
		s.record([]byte("<message/>"))
	}
	if _, _, n := s.Counters(); n != 0 {
		t.Fatalf("unacked after overflow = %d, want 0 (dropped)", n)
	}
	if s.Dropped(0) != nil {
		t.Fatal("an overflowed session is offered for resumption")
	}
}

// TestSMRequestEveryInBurst: during a burst, an <r/> is asked again every
// RequestEvery stanzas although one is outstanding, so that a server
// working through the backlog reports progress; never more often.
func TestSMRequestEveryInBurst(t *testing.T) {
	s := newSMForTest()
	var requests []int
	for i := range 5 * RequestEvery {
		s.record(fmt.Appendf(nil, "<message id='%d'/>", i))
		if s.NeedRequest() {
			requests = append(requests, i)
		}
	}
	want := []int{0, RequestEvery, 2 * RequestEvery, 3 * RequestEvery, 4 * RequestEvery}
	if !slices.Equal(requests, want) {
		t.Fatalf("<r/> after stanzas %v, want %v", requests, want)
	}
	if err := s.Ack(uint32(5 * RequestEvery)); err != nil {
		t.Fatal(err)
	}
	if s.NeedRequest() {
		t.Fatal("<r/> requested with nothing unacknowledged")
	}
	s.record([]byte("<message/>"))
	if !s.NeedRequest() || s.NeedRequest() {
		t.Fatal("after the acknowledgement, want one <r/> for the next stanza")
	}
}

func TestSMSessionDisabledRecordsNothing(t *testing.T) {
	s := &Session{}
	s.Reset(State{}, jid.JID{})
	s.record([]byte("<message/>"))
	if s.NeedRequest() {
		t.Fatal("<r/> requested without stream management")
	}
	if s.Dropped(0) != nil {
		t.Fatal("resume offered without stream management")
	}
}
