package xmpptest

// XEP-0352: Client State Indication, top level or inline in Bind 2.

func init() {
	for _, st := range []connState{stateAuthed, stateBound} {
		register(st, nsCSI, "active", (*conn).handleCSI)
		register(st, nsCSI, "inactive", (*conn).handleCSI)
	}
}

// handleCSI records the XEP-0352 client state; nothing is answered.
func (c *conn) handleCSI(el *element) error {
	c.csi = el.name.Local
	return nil
}
