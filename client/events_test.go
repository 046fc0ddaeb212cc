package client

import (
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestDispatcherBoundsHandlerErrors: Handler errors waiting for an OnEvent
// that does not keep up are bounded (the rest are dropped), connection
// events are not, and EventClosed still comes last.
func TestDispatcherBoundsHandlerErrors(t *testing.T) {
	release := make(chan struct{})
	var kinds []EventKind
	nop := zerolog.Nop()
	var d dispatcher
	d.init(func(e Event) {
		<-release
		kinds = append(kinds, e.Kind)
	}, &nop)
	close(d.ready)
	for range 3 * maxQueuedErrors {
		d.push(Event{Kind: EventError, Err: errors.New("refused")})
	}
	d.push(Event{Kind: EventOffline})
	d.stop(func() Event { return Event{Kind: EventClosed} })
	close(release)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the dispatcher did not finish")
	}
	// One error may have been taken off the queue before the others came.
	if n := len(kinds) - 2; n < maxQueuedErrors || n > maxQueuedErrors+1 {
		t.Errorf("%d Handler errors delivered, want %d (or one more)", n, maxQueuedErrors)
	}
	if k := kinds[len(kinds)-2:]; k[0] != EventOffline || k[1] != EventClosed {
		t.Errorf("last events %v, want offline, closed", k)
	}
}
