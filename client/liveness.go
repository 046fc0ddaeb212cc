package client

import (
	"context"
	"encoding/xml"
	"fmt"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/pipebind/pipebind/sm"
)

// nsPing is XEP-0199's namespace.
const nsPing = "urn:xmpp:ping"

// liveness watches one link after its login (Config.KeepAlive): after Idle
// without a byte from the server it sends a probe, and if nothing arrives
// within Timeout it closes the connection as dead. It holds no goroutine
// while it waits: a timer fires, decides, and re-arms itself. A nil
// *liveness (checks off) does nothing.
type liveness struct {
	c             *link
	idle, timeout time.Duration

	mu      sync.Mutex
	timer   *time.Timer
	probing bool      // a probe is out
	mark    time.Time // what LastRead said when it was sent
	stopped bool
}

func newLiveness(c *link) *liveness {
	idle, timeout, on := c.cfg.KeepAlive.values()
	if !on {
		return nil
	}
	return &liveness{c: c, idle: idle, timeout: timeout}
}

// start arms the first check, Idle from now.
func (lv *liveness) start() {
	if lv == nil {
		return
	}
	lv.mu.Lock()
	defer lv.mu.Unlock()
	lv.arm(lv.idle)
}

// arm schedules fire after d (lv.mu held). Each armed timer is one of the
// link's goroutines to wait for, until it has run or been stopped.
func (lv *liveness) arm(d time.Duration) {
	if lv.stopped {
		return
	}
	lv.c.wg.Add(1)
	if lv.timer == nil {
		lv.timer = time.AfterFunc(d, lv.fire)
		return
	}
	lv.timer.Reset(d)
}

// stop ends the checks (the session has ended).
func (lv *liveness) stop() {
	if lv == nil {
		return
	}
	lv.mu.Lock()
	defer lv.mu.Unlock()
	lv.stopped = true
	if lv.timer != nil && lv.timer.Stop() {
		lv.c.wg.Done() // its share: it will not run
	}
}

// fire is the timer's work: probe after a silence, or decide on the probe.
func (lv *liveness) fire() {
	defer lv.c.wg.Done()
	lv.mu.Lock()
	if lv.stopped {
		lv.mu.Unlock()
		return
	}
	last := lv.c.conn.LastRead()
	switch silent := time.Since(last); {
	case !lv.probing && silent < lv.idle:
		lv.arm(lv.idle - silent) // something arrived meanwhile
	case !lv.probing:
		lv.probing, lv.mark = true, last
		lv.arm(lv.timeout) // before the probe: a write may block on a dead link
		lv.mu.Unlock()
		lv.probe()
		return
	case !last.Equal(lv.mark):
		lv.probing = false // answered
		lv.arm(max(lv.idle-silent, 0))
	default:
		lv.stopped = true
		lv.mu.Unlock()
		lv.c.die(&DropError{Err: fmt.Errorf("%w within %v, after %v of silence", ErrDeadLink, lv.timeout, silent.Round(time.Millisecond)), Timeout: true})
		return
	}
	lv.mu.Unlock()
}

// probe asks the server for an answer: an <r/> with stream management, a
// ping otherwise. Only that some byte arrives matters; a failure to write
// is the link's to report.
func (lv *liveness) probe() {
	c := lv.c
	if c.sm.Enabled() {
		_ = c.sess.Send(c.ctx, sm.Request())
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, lv.timeout)
	defer cancel()
	iq := stanza.IQ{Type: stanza.GetIQ, To: c.info.JID.Domain()}
	resp, err := c.sess.SendIQ(ctx, iq.Wrap(xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: nsPing, Local: "ping"}})))
	if err == nil {
		resp.Close()
	}
}

// die closes the connection of a dead link; serve reports cause.
func (c *link) die(cause error) {
	c.mu.Lock()
	if c.dead == nil && !c.closed {
		c.dead = cause
	}
	c.mu.Unlock()
	c.log.Info().Err(cause).Msg("link dead")
	c.conn.Close()
}

// pingHandler answers the server's XEP-0199 pings (a server checking this
// client's liveness) and passes everything else on.
type pingHandler struct{ next xmpp.Handler }

func (h pingHandler) HandleXMPP(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	if start.Name.Local != "iq" || attrValue(start, "type") != "get" {
		return h.next.HandleXMPP(t, start)
	}
	var taken []xml.Token // read to find the payload
	var child xml.StartElement
	for child.Name.Local == "" {
		tok, err := t.Token()
		if err != nil {
			return err
		}
		taken = append(taken, xml.CopyToken(tok))
		if s, ok := tok.(xml.StartElement); ok {
			child = s
		} else if _, ok := tok.(xml.CharData); !ok {
			break // an empty IQ, or a comment: not a ping
		}
	}
	if child.Name != (xml.Name{Space: nsPing, Local: "ping"}) {
		// Not a ping: the handler sees the IQ whole.
		readers := make([]xml.TokenReader, 0, len(taken)+1)
		for _, tok := range taken {
			readers = append(readers, xmlstream.Token(tok))
		}
		return h.next.HandleXMPP(replayed{TokenReadEncoder: t, r: xmlstream.MultiReader(append(readers, t)...)}, start)
	}
	reply := stanza.IQ{Type: stanza.ResultIQ, ID: attrValue(start, "id")}
	if from, err := jid.Parse(attrValue(start, "from")); err == nil {
		reply.To = from
	}
	_, err := xmlstream.Copy(t, reply.Wrap(nil))
	return err
}

// replayed reads r (a token already taken, then the rest) and writes to the
// session.
type replayed struct {
	xmlstream.TokenReadEncoder
	r xml.TokenReader
}

func (r replayed) Token() (xml.Token, error) { return r.r.Token() }

func attrValue(start *xml.StartElement, local string) string {
	for _, a := range start.Attr {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}
