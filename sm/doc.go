// Package sm is XEP-0198 Stream Management, alone: the elements a client
// sends and reads (enable, enabled, resume, resumed, failed, r, a), and a
// Session that keeps a stream management session's state across
// connections: the counters, with h wrapping at 2^32 (XEP-0198 §4), and the
// stanzas the server has not acknowledged yet.
//
// The mechanism is here; the policy is the caller's (package client): when
// to ask for a resumption, what to send again after one failed, what to tell
// the application. The stanzas themselves are counted and captured on the
// wire by package wire (wire.Conn.StanzasIn, wire.Options.OnStanzaOut);
// Session.Record is the outbound hook and Session.Handler answers and
// applies acknowledgements.
//
// A Session is safe for concurrent use.
package sm
