package xmpptest

import (
	"crypto/sha1"
	"encoding/base64"
	"unicode/utf8"
)

// XEP-0386: Bind 2 (urn:xmpp:bind:0), processed inside SASL2 success
// (sasl2.go). The v0.3.0 draft (urn:xmpp:bind2:0) would get its own file.

// bind2Feature is the inline feature advertised inside SASL2's <inline/>,
// listing what can be enabled inside <bind/>.
func bind2Feature() *element {
	inline := newElement(nsBind2, "inline")
	for _, v := range []string{nsCarbons, nsCSI, nsSM} {
		inline.add(newElement(nsBind2, "feature", "var", v))
	}
	return newElement(nsBind2, "bind").add(inline)
}

// bindRequest is a parsed inline <bind/>.
type bindRequest struct {
	tag     string
	carbons bool     // <enable xmlns='urn:xmpp:carbons:2'/>
	sm      *element // <enable xmlns='urn:xmpp:sm:3'/>, nil if absent
	csi     string   // "active", "inactive" or ""
	other   []*element
}

func parseBind2(el *element) *bindRequest {
	r := &bindRequest{}
	for _, ch := range el.children() {
		switch {
		case ch.is(nsBind2, "tag"):
			r.tag = ch.text()
		case ch.is(nsCarbons, "enable"):
			r.carbons = true
		case ch.is(nsSM, "enable"):
			r.sm = ch
		case ch.is(nsCSI, "active"), ch.is(nsCSI, "inactive"):
			r.csi = ch.name.Local
		default:
			r.other = append(r.other, ch)
		}
	}
	return r
}

// bind2 binds a resource "<tag>.<random>" (with Config.StableResources,
// "<tag>~<hash of the user-agent id>", as Prosody 13 does) and enables what
// the request asks for, returning the <bound/> element for <success/>.
// Carbons are enabled silently (XEP-0386: no response needed), as Prosody
// does.
func (c *conn) bind2(req *bindRequest, userAgentID string) (*element, error) {
	res := randomID(4)
	if c.cfg.StableResources && userAgentID != "" {
		sum := sha1.Sum([]byte(userAgentID))
		res = "~" + base64.StdEncoding.EncodeToString(sum[:9])
	} else {
		res = "." + res
	}
	if tag := cleanTag(req.tag); tag != "" {
		res = tag + res
	} else {
		res = res[1:]
	}
	if err := c.bindResource(res); err != nil {
		return nil, err
	}
	if req.carbons {
		c.carbons.Store(true)
	}
	if req.csi != "" {
		c.csi = req.csi
	}
	bound := newElement(nsBind2, "bound")
	if req.sm != nil {
		bound.add(c.enableSM(req.sm))
		if c.sm.enabled {
			// Nothing is written to this stream before <success/>, which
			// carries <enabled/>: routed stanzas wait for markReady.
			c.wmu.Lock()
			c.startSMOutLocked()
			c.wmu.Unlock()
		}
	}
	return bound, nil
}

// cleanTag keeps a tag usable in a resourcepart: printable, at most 64 runes.
// bindResource still validates the result.
func cleanTag(tag string) string {
	out := make([]rune, 0, len(tag))
	for _, r := range tag {
		if r == utf8.RuneError || r < 0x21 || r == 0x7f {
			continue
		}
		if len(out) == 64 {
			break
		}
		out = append(out, r)
	}
	return string(out)
}
