package xmpptest

import (
	"crypto/tls"
	"encoding/xml"
	"slices"
	"sort"
	"sync"
	"time"
)

// Event is one top-level item on a connection's stream after TLS: a stream
// header, the closing </stream:stream> tag, or a top-level element.
type Event struct {
	// In is true for what the client sent, false for what the server sent.
	In bool
	// Name is the element's name. Stream headers and the closing tag are
	// named {http://etherx.jabber.org/streams stream}.
	Name xml.Name
	// End is true for the closing </stream:stream> tag.
	End bool
	// ServerWritesBefore is how many items the server had written (since TLS)
	// when this one was written (Out) or when its last byte reached the
	// server (In). An In event with ServerWritesBefore == 0 was sent before
	// the client could have seen anything from the server.
	ServerWritesBefore int
	// At is when the item was written, or when its last byte arrived. Items
	// the server wrote one after the other with the same name (the results
	// of a MAM page) are recorded as one run and share the At of the run's
	// first item: the log then grows with the number of runs, not of
	// stanzas, and a 100,000-message catch-up costs it a few kilobytes.
	At time.Time
}

// logEntry is one recorded item, or a run of n Out items with the same
// name (ev is the first; item k of the run has ServerWritesBefore
// ev.ServerWritesBefore+k).
type logEntry struct {
	ev Event
	n  int
}

// UserAgent is the SASL2 <user-agent/> a client sent.
type UserAgent struct {
	ID, Software, Device string
}

// arrival is one read of client data from the transport.
type arrival struct {
	end    int64 // stream offset just past the chunk
	writes int   // server writes done when it arrived
	at     time.Time
}

// ConnLog records what happened on one accepted connection. Observation
// starts after the TLS handshake (Direct TLS) or after the STARTTLS handshake.
// All methods are safe for concurrent use, also while the connection runs.
type ConnLog struct {
	directTLS bool
	remote    string
	done      chan struct{}

	mu         sync.Mutex
	events     []logEntry
	outs       int
	flights    int
	lastWrites int // server writes at the previous arrival; -1 before any
	arrivals   []arrival
	received   int64
	tlsState   *tls.ConnectionState
	clientALPN []string
	sawHeader  bool
	streamFrom string
	hasFrom    bool
	ua         UserAgent
	mechanism  string
	jid        string
	bind2Draft bool
	err        error
}

func newConnLog(directTLS bool, remote string) *ConnLog {
	return &ConnLog{directTLS: directTLS, remote: remote, done: make(chan struct{}), lastWrites: -1}
}

// Events returns a copy of the events so far in wire order: an In event
// appears after exactly ServerWritesBefore Out events, so a pipelined element
// is listed before server output it did not wait for, even though the server
// processed it later.
func (l *ConnLog) Events() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Event
	for _, e := range l.events {
		for k := range e.n {
			ev := e.ev
			ev.ServerWritesBefore += k
			out = append(out, ev)
		}
	}
	return out
}

// Received returns the first element the client sent with the given local
// name ("stream" for the stream header).
func (l *ConnLog) Received(local string) (Event, bool) { return l.find(true, local) }

// Sent returns the first element the server sent with the given local name.
func (l *ConnLog) Sent(local string) (Event, bool) { return l.find(false, local) }

func (l *ConnLog) find(in bool, local string) (Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e.ev.In == in && e.ev.Name.Local == local && !e.ev.End {
			return e.ev, true
		}
	}
	return Event{}, false
}

// ClientFlights returns the number of client flights the server saw: data
// arriving after the server had written something since the previous client
// data. The first data after TLS is flight 1; a client that pipelines its
// whole login shows 1.
func (l *ConnLog) ClientFlights() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.flights
}

// Done is closed when the connection has ended and its goroutines returned.
func (l *ConnLog) Done() <-chan struct{} { return l.done }

// Err returns why the connection ended: nil after a polite close, otherwise
// the I/O or protocol error. Meaningful after Done is closed.
func (l *ConnLog) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// DirectTLS reports whether the connection came in on the Direct TLS listener.
func (l *ConnLog) DirectTLS() bool { return l.directTLS }

// RemoteAddr returns the client's address.
func (l *ConnLog) RemoteAddr() string { return l.remote }

// TLSState returns the negotiated TLS state once the handshake is done.
func (l *ConnLog) TLSState() (tls.ConnectionState, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tlsState == nil {
		return tls.ConnectionState{}, false
	}
	return *l.tlsState, true
}

// ClientALPN returns the ALPN protocols the client offered (XEP-0368 clients
// offer "xmpp-client").
func (l *ConnLog) ClientALPN() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.clientALPN...)
}

// StreamFrom returns the 'from' of the first stream header after TLS, and
// whether the header had one.
func (l *ConnLog) StreamFrom() (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.streamFrom, l.hasFrom
}

// UserAgent returns the SASL2 <user-agent/> of the last <authenticate/>.
func (l *ConnLog) UserAgent() UserAgent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ua
}

// Mechanism returns the SASL mechanism of the last successful authentication.
func (l *ConnLog) Mechanism() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mechanism
}

// BoundJID returns the full JID bound on the connection, or "".
func (l *ConnLog) BoundJID() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.jid
}

// Bind2Draft reports whether the session was bound with the XEP-0386 v0.3.0
// draft (<bind xmlns='urn:xmpp:bind2:0'/>).
func (l *ConnLog) Bind2Draft() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bind2Draft
}

// recordOut notes that the server is about to write an item.
func (l *ConnLog) recordOut(n xml.Name, end bool, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k := len(l.events) - 1; k >= 0 && !end {
		if last := &l.events[k]; !last.ev.In && !last.ev.End && last.ev.Name == n {
			last.n++
			l.outs++
			return
		}
	}
	l.events = append(l.events, logEntry{ev: Event{Name: n, End: end, ServerWritesBefore: l.outs, At: at}, n: 1})
	l.outs++
}

// arrived notes that n bytes of client data arrived.
func (l *ConnLog) arrived(n int, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lastWrites < 0 || l.outs > l.lastWrites {
		l.flights++
	}
	l.lastWrites = l.outs
	l.received += int64(n)
	l.arrivals = append(l.arrivals, arrival{end: l.received, writes: l.outs, at: at})
}

// recordIn records a client item whose last byte is at stream offset off.
func (l *ConnLog) recordIn(n xml.Name, end bool, off int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Find the arrival holding off; earlier ones are no longer needed since
	// offsets only grow.
	i := sort.Search(len(l.arrivals), func(i int) bool { return l.arrivals[i].end > off })
	ev := Event{In: true, Name: n, End: end, ServerWritesBefore: l.outs, At: time.Now()}
	if i < len(l.arrivals) {
		ev.ServerWritesBefore = l.arrivals[i].writes
		ev.At = l.arrivals[i].at
		l.arrivals = l.arrivals[i:]
	}
	// Insert before the Out item numbered ServerWritesBefore (0-based),
	// splitting the run that holds it.
	pos, skip := len(l.events), l.outs-ev.ServerWritesBefore
	for skip > 0 && pos > 0 {
		e := &l.events[pos-1]
		if e.ev.In {
			pos--
			continue
		}
		if e.n <= skip {
			skip -= e.n
			pos--
			continue
		}
		tail := logEntry{ev: e.ev, n: skip}
		tail.ev.ServerWritesBefore += e.n - skip
		e.n -= skip
		l.events = slices.Insert(l.events, pos, tail)
		skip = 0
	}
	l.events = slices.Insert(l.events, pos, logEntry{ev: ev, n: 1})
}

// set runs f under the log's lock.
func (l *ConnLog) set(f func(l *ConnLog)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(l)
}
