package xmpptest

// features returns the <stream:features/> for the connection's state.
func (c *conn) features() *element {
	f := newElement(nsStream, "features")
	switch c.state {
	case stateStartTLS:
		// RFC 6120 §5.3.1: TLS is mandatory, so nothing else is offered.
		f.add(newElement(nsTLS, "starttls").add(newElement(nsTLS, "required")))
	case stateAuth:
		if c.cfg.Bind2Draft && !c.cfg.Bind2DraftPostAuthOnly {
			f.add(newElement(nsBind2Draft, "bind"))
		}
		f.add(c.classicMechanisms())
		if !c.cfg.NoSASL2 {
			f.add(c.sasl2Feature())
		}
		if cbs := c.advertisedChannelBindings(); cbs != nil {
			// XEP-0440: the types the transport can bind to (the SSDP hash
			// of scram_server.go covers the same list).
			cb := newElement(nsSASLCB, "sasl-channel-binding")
			for _, t := range cbs {
				cb.add(newElement(nsSASLCB, "channel-binding", "type", t))
			}
			f.add(cb)
		}
	case stateAuthed:
		if c.cfg.Bind2Draft {
			f.add(newElement(nsBind2Draft, "bind")) // XEP-0386 v0.3.0 §Discovering support
		}
		f.add(newElement(nsBind, "bind"), newElement(nsSM, "sm"), newElement(nsCSI, "csi"))
	case stateBound:
		f.add(newElement(nsSM, "sm"), newElement(nsCSI, "csi"))
	}
	return f
}

// classicMechanisms is the RFC 6120 §6.4.1 <mechanisms/> feature.
func (c *conn) classicMechanisms() *element {
	m := newElement(nsSASL, "mechanisms")
	for _, name := range c.cfg.Mechanisms {
		m.add(newElement(nsSASL, "mechanism").addText(name))
	}
	return m
}

// sasl2Feature is the XEP-0388 <authentication/> feature with the inline
// features of XEP-0386, XEP-0198 (resumption) and XEP-0484.
func (c *conn) sasl2Feature() *element {
	a := newElement(nsSASL2, "authentication")
	for _, name := range c.cfg.Mechanisms {
		a.add(newElement(nsSASL2, "mechanism").addText(name))
	}
	inline := newElement(nsSASL2, "inline")
	if !c.cfg.NoBind2 {
		inline.add(bind2Feature())
	}
	if !c.cfg.NoSMResume {
		inline.add(newElement(nsSM, "sm")) // XEP-0198 §inline-resume
	}
	if !c.cfg.NoFAST && len(c.cfg.FASTMechanisms) > 0 {
		fast := newElement(nsFAST, "fast") // XEP-0484 §support
		for _, m := range c.cfg.FASTMechanisms {
			fast.add(newElement(nsFAST, "mechanism").addText(m))
		}
		inline.add(fast)
	}
	return a.add(inline)
}
