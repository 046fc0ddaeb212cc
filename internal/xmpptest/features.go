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
		if c.tlsState != nil {
			// XEP-0440. No -PLUS mechanism is offered (see Config.Mechanisms),
			// but the type the transport could bind to is advertised.
			f.add(newElement(nsSASLCB, "sasl-channel-binding").add(
				newElement(nsSASLCB, "channel-binding", "type", "tls-exporter")))
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
// features of XEP-0386 and XEP-0198.
func (c *conn) sasl2Feature() *element {
	a := newElement(nsSASL2, "authentication")
	for _, name := range c.cfg.Mechanisms {
		a.add(newElement(nsSASL2, "mechanism").addText(name))
	}
	inline := newElement(nsSASL2, "inline")
	if !c.cfg.NoBind2 {
		inline.add(bind2Feature())
	}
	inline.add(newElement(nsSM, "sm"))
	return a.add(inline)
}
