package client

import (
	"encoding/xml"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
)

// EventKind says what happened to a client's connection.
type EventKind uint8

const (
	// EventConnecting: a reconnection attempt starts (Event.Attempt counts
	// them from 1 since the connection was lost).
	EventConnecting EventKind = iota + 1
	// EventOnline: a reconnection bound a new session (a fresh bind:
	// counters reset, the archive is reconciled again). Dial's own
	// connection is not an event: Dial returning is that news.
	EventOnline
	// EventResumed: the stream management session was resumed; Event.Resent
	// stanzas the server had not received were sent again.
	EventResumed
	// EventOffline: the connection was lost; Event.Err says why. With
	// Config.Reconnect, EventConnecting follows.
	EventOffline
	// EventClosed: the client has stopped for good: Close was called
	// (Event.Err is ErrClosed), the connection ended without
	// Config.Reconnect, reconnecting gave up, or an authentication failure
	// stopped it (Event.Err says which). It is the last event: Done is
	// closed once OnEvent has returned from it.
	EventClosed
	// EventError: Config.Handler returned an error (Event.Err wraps it).
	// The session goes on.
	EventError
)

// String returns the event's name: "connecting", "online", "resumed",
// "offline", "closed" or "error".
func (k EventKind) String() string {
	switch k {
	case EventConnecting:
		return "connecting"
	case EventOnline:
		return "online"
	case EventResumed:
		return "resumed"
	case EventOffline:
		return "offline"
	case EventClosed:
		return "closed"
	case EventError:
		return "error"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// MarshalText implements encoding.TextMarshaler.
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Event is a change of a client's connection, or an error of the
// application's Handler, given to Config.OnEvent.
type Event struct {
	Kind EventKind
	// Attempt numbers reconnection attempts since the connection was lost
	// (EventConnecting, and the EventOnline/EventResumed that ends them).
	Attempt int
	// Delay is the backoff waited before this attempt (EventConnecting).
	Delay time.Duration
	// Err is the cause of EventOffline and EventClosed, the failure of the
	// previous attempt on EventConnecting, and the Handler's error on
	// EventError.
	Err error
	// Info describes the new session (EventOnline, EventResumed).
	Info *Info
	// Resent counts the stanzas sent again after a resume (or, after a
	// failed resume, the unacknowledged messages sent on the new session).
	Resent int
}

// maxQueuedErrors bounds the Handler errors waiting for a slow OnEvent; past
// it they are logged and dropped. Connection events need no bound: a
// connection makes a handful, and reconnection attempts are spaced by the
// backoff.
const maxQueuedErrors = 1000

// dispatcher runs a client's callbacks. Events go through a queue to
// Config.OnEvent, in order, on one goroutine at a time, as nats.go's
// asyncCallbacksHandler does: a slow OnEvent stalls neither the
// connection's read loop nor the reconnect loop, and may call any method of
// the Client, Close included. Unlike nats.go, the goroutine runs only while
// there are events to deliver: an idle client keeps one goroutine, the one
// reading its connection.
//
// The dispatcher also counts the callbacks that run on the connection's
// own goroutines (Handler, OnMessage, OnSyncProgress), which Close cannot
// wait for, and stops them from starting once the client has stopped.
// Nothing is called back before Dial has returned.
type dispatcher struct {
	onEvent func(Event)
	log     *zerolog.Logger // the Client's
	ready   chan struct{}   // closed when Dial returns
	done    chan struct{}   // closed once EventClosed has been delivered

	mu       sync.Mutex
	queue    []Event
	errs     int  // EventErrors in queue
	running  bool // a goroutine delivers the queue
	stopping bool // the client has stopped: no event is queued, no callback starts
	final    func() Event
	calls    int // Handler, OnMessage, OnSyncProgress calls running
}

// init readies a dispatcher, which is a field of its Client (one object
// less per client: a fleet keeps thousands), for onEvent, logging to log.
func (d *dispatcher) init(onEvent func(Event), log *zerolog.Logger) {
	d.onEvent, d.log = onEvent, log
	d.ready, d.done = make(chan struct{}), make(chan struct{})
}

// push queues e, unless the client has stopped.
func (d *dispatcher) push(e Event) {
	if d.onEvent == nil {
		if e.Kind == EventError {
			d.log.Warn().Err(e.Err).Msg("Handler error (no Config.OnEvent to report it to)")
		}
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopping {
		return
	}
	if e.Kind == EventError {
		if d.errs >= maxQueuedErrors {
			d.log.Warn().Err(e.Err).Msg("Handler error dropped: OnEvent is not keeping up")
			return
		}
		d.errs++
	}
	d.queue = append(d.queue, e)
	d.startLocked()
}

// stop queues last, then ends the queue: once the events before have been
// delivered, the dispatcher calls final (which waits for the client's
// goroutines and returns EventClosed), delivers its event, closes done and
// exits. Only the first call counts.
func (d *dispatcher) stop(final func() Event, last ...Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopping {
		return
	}
	d.queue = append(d.queue, last...)
	d.stopping, d.final = true, final
	d.startLocked()
}

func (d *dispatcher) startLocked() {
	if !d.running {
		d.running = true
		go d.run()
	}
}

func (d *dispatcher) run() {
	<-d.ready
	for {
		d.mu.Lock()
		if len(d.queue) == 0 {
			final := d.final
			if final == nil {
				d.running = false
				d.mu.Unlock()
				return
			}
			d.mu.Unlock()
			// Nothing is queued any more (stopping): final waits for the
			// client's goroutines, then EventClosed comes last.
			d.deliver(final())
			close(d.done)
			return
		}
		e := d.queue[0]
		d.queue[0] = Event{}
		d.queue = d.queue[1:]
		if e.Kind == EventError {
			d.errs--
		}
		d.mu.Unlock()
		d.deliver(e)
	}
}

func (d *dispatcher) deliver(e Event) {
	if d.onEvent != nil {
		d.onEvent(e)
	}
}

// enter is called before an application callback runs on a connection's
// goroutine: it waits for Dial to return and reports whether the callback
// may run (not once the client has stopped, unless evenStopping). A true
// result must be followed by leave.
func (d *dispatcher) enter(evenStopping bool) bool {
	<-d.ready
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopping && !evenStopping {
		return false
	}
	d.calls++
	return true
}

func (d *dispatcher) leave() {
	d.mu.Lock()
	d.calls--
	d.mu.Unlock()
}

// busy reports whether an application callback is running on a
// connection's goroutine.
func (d *dispatcher) busy() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls > 0
}

// guard wraps f, an application callback called on the connection's
// goroutines (OnMessage, OnSyncProgress), with enter and leave. With
// evenStopping f is also called once the client is stopping: OnMessage's
// message has been stored, and a call skipped then would never come (the
// next run finds it stored). Close waits for such calls unless a callback
// is running, so none starts after a Close that has waited has returned.
func guard[T any](d *dispatcher, f func(T), evenStopping bool) func(T) {
	if f == nil {
		return nil
	}
	return func(v T) {
		if !d.enter(evenStopping) {
			return
		}
		defer d.leave()
		f(v)
	}
}

// appHandler runs Config.Handler. An error it returns after a failure to
// read the stream ends the session, as any read error does; any other
// error is the application's: it goes to OnEvent as EventError and the
// session goes on.
type appHandler struct {
	d    *dispatcher
	next xmpp.Handler
}

func (h appHandler) HandleXMPP(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	if !h.d.enter(false) {
		return nil // the client has stopped
	}
	r := &readWatch{TokenReadEncoder: t}
	err := func() error {
		defer h.d.leave()
		return h.next.HandleXMPP(r, start)
	}()
	if err == nil || r.err != nil {
		return err
	}
	h.d.push(Event{Kind: EventError, Err: fmt.Errorf("client: Handler: <%s>: %w", start.Name.Local, err)})
	return nil
}

// readWatch notes the first error reading the element a Handler was given,
// other than the io.EOF that ends it.
type readWatch struct {
	xmlstream.TokenReadEncoder
	err error
}

func (r *readWatch) Token() (xml.Token, error) {
	tok, err := r.TokenReadEncoder.Token()
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return tok, err
}
