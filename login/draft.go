package login

import (
	"context"
	"fmt"
)

// bind2Draft completes the XEP-0386 v0.3.0 path.
func (n *negotiation) bind2Draft(_ context.Context, _ *reader, _ plan) error {
	return fmt.Errorf("%w: the bind2-draft path is not implemented yet", ErrRefused)
}

// draftRestart is what the v0.3.0 draft pipelines after the final SASL
// message: the restart header and <bind xmlns='urn:xmpp:bind2:0'/>.
func (n *negotiation) draftRestart() []byte {
	return append(n.header(), "<bind xmlns='urn:xmpp:bind2:0'/>"...)
}
