package xmpptest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
)

// Probes: the server asks a client session something and times the answer,
// as a server checking a client's liveness would (XEP-0199 ping, XEP-0198
// <r/>). Tests use them to show that a client answers while it is busy
// elsewhere.

// probes are a connection's outstanding questions.
type probes struct {
	mu   sync.Mutex
	iqs  map[string]chan error // by IQ id: nil for a result, the error otherwise
	acks []chan uint32         // waiting for the next <a/>
}

// ErrNoSession is returned by the probes for a JID with no bound session.
var ErrNoSession = errors.New("xmpptest: no such session")

// PingClient sends an XEP-0199 ping to the session full and returns how long
// its answer took. An error answer counts as an answer (the client is
// alive) and is returned with the time.
func (s *Server) PingClient(ctx context.Context, full string) (time.Duration, error) {
	c, err := s.probeTarget(full)
	if err != nil {
		return 0, err
	}
	id := "probe-" + randomID(8)
	ch := make(chan error, 1)
	c.probes.mu.Lock()
	if c.probes.iqs == nil {
		c.probes.iqs = make(map[string]chan error)
	}
	c.probes.iqs[id] = ch
	c.probes.mu.Unlock()
	defer func() {
		c.probes.mu.Lock()
		delete(c.probes.iqs, id)
		c.probes.mu.Unlock()
	}()
	iq := newElement(nsClient, "iq", "type", "get", "id", id, "from", s.domain, "to", c.jid.String())
	iq.add(newElement(nsPing, "ping"))
	start := time.Now()
	if err := c.send(iq); err != nil {
		return 0, err
	}
	select {
	case err := <-ch:
		return time.Since(start), err
	case <-ctx.Done():
		return 0, fmt.Errorf("xmpptest: ping of %s: %w", full, ctx.Err())
	}
}

// RequestAck sends a XEP-0198 <r/> to the session full and returns the h
// of its <a/> and how long it took.
func (s *Server) RequestAck(ctx context.Context, full string) (uint32, time.Duration, error) {
	c, err := s.probeTarget(full)
	if err != nil {
		return 0, 0, err
	}
	ch := make(chan uint32, 1)
	c.probes.mu.Lock()
	c.probes.acks = append(c.probes.acks, ch)
	c.probes.mu.Unlock()
	start := time.Now()
	if err := c.writeRaw(name(nsSM, "r"), false, []byte("<r xmlns='urn:xmpp:sm:3'/>")); err != nil {
		return 0, 0, err
	}
	select {
	case h := <-ch:
		return h, time.Since(start), nil
	case <-ctx.Done():
		return 0, 0, fmt.Errorf("xmpptest: <r/> to %s: %w", full, ctx.Err())
	}
}

func (s *Server) probeTarget(full string) (*conn, error) {
	j, err := jid.Parse(full)
	if err != nil {
		return nil, err
	}
	c := s.session(j)
	if c == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoSession, full)
	}
	return c, nil
}

// probeAnswer takes an IQ result or error from the client; it reports
// whether it answered a probe.
func (c *conn) probeAnswer(el *element) bool {
	c.probes.mu.Lock()
	ch := c.probes.iqs[el.attrValue("id")]
	c.probes.mu.Unlock()
	if ch == nil {
		return false
	}
	var err error
	if el.attrValue("type") == "error" {
		err = errors.New("xmpptest: the client answered the ping with an error")
	}
	select {
	case ch <- err:
	default:
	}
	return true
}

// ackArrived hands the client's <a/> to the RequestAck calls waiting.
func (c *conn) ackArrived(h uint32) {
	c.probes.mu.Lock()
	waiting := c.probes.acks
	c.probes.acks = nil
	c.probes.mu.Unlock()
	for _, ch := range waiting {
		ch <- h
	}
}
