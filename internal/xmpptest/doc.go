// Package xmpptest runs an in-process XMPP server for tests, in the way
// net/http/httptest runs an HTTP server: NewServer listens on loopback
// port 0 with a generated certificate, TLSConfig returns a client
// configuration that trusts it, and Close waits for everything to stop.
// It is not a production server: it keeps everything in memory, trusts its
// callers and has no rosters, offline storage or federation.
// Messages with a body are kept in a minimal per-user archive (archive.go)
// that tests can read and seed (InjectArchive, InjectArchiveBulk for large
// archives, ExpireArchiveBefore) and clients can query with MAM (XEP-0313
// v1.1, urn:xmpp:mam:2 with #extended, paged with XEP-0059 RSM; mam.go).
//
// # What it serves
//
// Two listeners on 127.0.0.1: Direct TLS (XEP-0368), where TLS starts with
// the first byte, and a plain listener where STARTTLS is required before
// anything else (RFC 6120 §5). After TLS the server offers classic SASL
// (RFC 6120 §6, with a stream restart and §7 resource binding) and SASL2
// (XEP-0388) with inline Bind 2 (XEP-0386), inline Stream Management enable
// and resumption (XEP-0198), FAST tokens (XEP-0484), Carbons (XEP-0280) and
// CSI (XEP-0352). Mechanisms are
// SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN by default, SCRAM-SHA-512 and the
// -PLUS variants (tls-exporter, tls-server-end-point) on request, with
// XEP-0474 downgrade protection (Config.SSDP, the h= attribute;
// scram_server.go). Bound sessions exchange messages, IQs and directed
// presence; messages get a XEP-0359 stanza-id and Carbons copies. The zero
// Config serves all of it; the Config switches take features away to build a
// classic-only, SASL2-without-Bind-2 or TLS-variant server, and SetConfig
// changes them between logins (for tests of stale cached features).
// Config.Bind2Draft adds the XEP-0386 v0.3.0 draft (urn:xmpp:bind2:0, a
// top-level <bind/> after the classic SASL restart, bind2draft.go),
// Config.Latency delays every connection below TLS (latency.go), the
// Config.MAM* switches give MAM the page sizes, counts, metadata and id
// style of Prosody or ejabberd, and Config.Fault injects faults into chosen
// connections (a cut or stalled connection after N bytes, garbage or a stream
// error instead of or after the features, refused pipelining, extra features,
// an unexpected element before <success/>; fault.go).
//
// # FAST and stream resumption
//
// FAST (fast.go) advertises Config.FASTMechanisms (HT-SHA-256-NONE, -EXPR
// and -ENDP by default) in the SASL2 <inline/>, issues a token in <success/>
// for a <request-token/>, verifies HT-SHA-256-* authentications including
// their channel binding, answers with the Responder hash as additional
// data, keeps XEP-0484's two token slots per user and <user-agent/> id,
// checks the replay 'count', honours invalidate='true' and rotates tokens
// (Config.FASTRotate, Config.FASTTokenLifetime). A failed FAST
// <authenticate/> leaves the stream open for another one, such as a
// password login. Server.FailNextFAST, InvalidateFASTTokens and
// FASTTokenCount steer and observe it; Server.Logins counts password and
// FAST logins and resumptions per user.
//
// Stream management (sm.go) numbers the stanzas sent to an SM stream and
// keeps them until acknowledged, answers <r/>, applies <a/>, and sends <r/>
// itself with Config.SMRequestEvery. A resumable session whose connection is
// lost (Server.CutConnection does that on purpose) is kept for
// Config.SMResumeTimeout, receives and queues routed stanzas, and is resumed
// inline in SASL2 (<resumed/> in <success/>, no bind, no features) or top
// level, with the unacknowledged stanzas retransmitted. Server.SMSession
// shows a session's counters, Server.ExpireSMSessions and Config.Now end
// sessions without waiting, and Server.HandledCount tells how often a stanza
// id reached the server, for exactly-once tests.
//
// The server follows the specifications rather than any one client: it
// accepts any whitespace, attribute order and namespace prefixes, and data
// that arrives early, such as a stream header and <authenticate/> written in
// one segment before the server has said anything, or a restart header and
// a bind request queued behind </auth>. One bufio.Reader per transport
// feeds a new xml.Decoder at each stream restart, so pipelined bytes are
// never lost. Each top-level element is limited to 64 KiB; malformed input
// ends the stream with an RFC 6120 stream error.
//
// # Observing a login
//
// Conns returns one ConnLog per accepted connection. From the end of the TLS
// handshake it records every stream header and top-level element in each
// direction as an Event, with the number of items the server had written
// when the element arrived (ServerWritesBefore) and the number of client
// flights (ClientFlights). A test of a pipelining client asserts, for
// example, that <authenticate/> arrived before the server sent its features
// and that the whole login took one flight. Arrival is observed by a reader
// goroutine as soon as crypto/tls returns each record; TLSConfig disables
// dynamic record sizing so that one client Write is one record.
//
// # Concurrency
//
// Server and ConnLog methods are safe for concurrent use. Every goroutine the
// server starts (accept loops, one per connection and one reader per secured
// transport) has returned when Close returns; a ConnLog's Done channel is
// closed when its connection's goroutines have returned.
//
// # Extending
//
// conn.go is the connection state machine; protocol files register handlers
// for the states in which their elements are valid (register for top-level
// elements, registerIQ for IQ payloads): tls.go, sasl.go (mechanisms),
// sasl2.go, fast.go, classic.go, bind2.go, bind2draft.go, sm.go, csi.go,
// carbons.go, route.go (with archive.go), mam.go and stats.go.
// Every byte the server writes goes through conn.writeRaw and
// conn.writeBytesLocked, where Fault's byte limits apply; latency is added
// below TLS (latency.go); input passes through arrivalReader and byteCounter
// (wire.go), the place for faults on input.
package xmpptest
