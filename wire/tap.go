package wire

import "slices"

// tapping reports whether a top-level element must be looked at before the
// decoder reads it.
func (c *Conn) tapping() bool {
	return c.skipLeft > 0 || (c.tap.Load() != nil && c.live.Load())
}

// offer reads the next top-level element ahead of the decoder while it may
// be one the tap or the features filter wants: a message the tap takes is
// counted as handled and gone; a stray features element is dropped; the
// bytes of anything else (or of a message the tap declines) are left in
// c.replay for the decoder, with their end counted when it reads them. It
// never reads a byte past the element it looks at, so it waits for no data
// the decoder would not wait for.
func (c *Conn) offer() error {
	var tap func([]byte) bool
	if p := c.tap.Load(); p != nil && c.live.Load() {
		tap = *p
	}
	wantFeatures := c.skipLeft > 0
	if wantFeatures {
		c.skipLeft--
	}
	buf, end, wanted, err := c.capture(tap != nil, wantFeatures)
	if cap(buf) <= 64<<10 {
		c.captured = buf[:0]
	}
	switch {
	case end == KindError:
		return c.refuse(err)
	case err != nil:
		if len(buf) == 0 {
			return err
		}
		c.replay, c.replayErr = slices.Clone(buf), err
	case !wanted:
		// Neither: the decoder reads it, and its end counts then.
		c.replay, c.replayEnd = slices.Clone(buf), end
	case end == KindOther:
		c.skipLeft = 0 // the stray features: dropped
	case tap(buf):
		c.handled()
	default:
		c.replay, c.replayEnd = slices.Clone(buf), end
	}
	return nil
}

// capture reads the next top-level element through the lexer into
// c.captured: its start tag, then, when it is a message (wantMessage) or a
// features element (wantFeatures), the rest of it. It returns the bytes
// read, the kind of the element if it ended within them (KindError with
// the lexer's error), and whether it is a whole element that was wanted. It
// stops after the start tag (or a comment, a processing instruction, an end
// tag) of anything else.
func (c *Conn) capture(wantMessage, wantFeatures bool) (buf []byte, end Kind, wanted bool, err error) {
	buf = c.captured[:0]
	defer func() { c.traceUnit(buf) }()
	started := false // the element's start tag has been read
	for {
		// Waits for more when nothing is buffered (the decoder would too).
		chunk, err := c.rb.peek(netReader{c})
		if err != nil {
			return buf, KindNone, false, err
		}
		for k, b := range chunk {
			end = c.in.Feed(b)
			stop := end != KindNone // the element ended, or an error
			if !stop && !started && c.in.state == lexText {
				started = true // its start tag ended: is it wanted?
				wanted = wantMessage && c.in.kind == KindMessage || wantFeatures && c.in.isLocal("features")
				stop = !wanted || c.in.depth == 0 // not ours, or not an element
			} else if end != KindNone && !started {
				started = true // a self-closing element
				wanted = wantMessage && end == KindMessage || wantFeatures && c.in.isLocal("features")
			}
			if stop {
				buf = append(buf, chunk[:k+1]...)
				c.rb.discard(k + 1)
				if end == KindError {
					return buf, end, false, c.in.Err()
				}
				return buf, end, wanted && end != KindNone, nil
			}
		}
		buf = append(buf, chunk...)
		c.rb.discard(len(chunk))
	}
}

// traceUnit adds bytes read ahead (capture) to the trace: the unit they
// belong to is traced once it ends.
func (c *Conn) traceUnit(p []byte) {
	if c.trace == nil || len(p) == 0 {
		return
	}
	c.traceIn = append(c.traceIn, p...)
	if c.in.AtTop() || c.in.state == lexError {
		c.trace(true, c.traceIn)
		c.traceIn = c.traceIn[:0]
	}
}
