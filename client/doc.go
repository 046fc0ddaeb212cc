// Package client logs an XMPP account in with the fewest round trips and
// hands back a served mellium.im/xmpp session.
//
// # Establishing a Connection
//
// Dial looks up the server (XEP-0368 SRV records _xmpps-client and
// _xmpp-client, or Config.Addr), connects, secures the connection (Direct
// TLS, or STARTTLS), and logs in through package login:
//
//	c, err := client.Dial(ctx, client.Config{
//		JID:       jid.MustParse("alice@example.org"),
//		Password:  pw,
//		CachePath: "/var/lib/mybot/pipebind.db",
//	})
//
// With a feature cache (Config.CachePath or Config.Cache) the second login
// to a server writes the stream header and a SASL2 <authenticate> with an
// inline Bind 2 request in one write: PLAIN completes in one round trip
// after TLS, SCRAM in two. Without a cache entry the features are read
// first (one more round trip) and stored. A cache that no longer matches
// the server costs at most one reconnect, and the live features always
// decide the mechanism.
//
// # Connecting Securely
//
// TLS certificates are verified against the system roots (or
// Config.TLSConfig). PLAIN is only used over a verified certificate; the
// default mechanism preference is SCRAM with channel binding
// (tls-exporter, TLS 1.3), then SCRAM, then PLAIN. A STARTTLS server that
// does not offer STARTTLS is an error: the stream never continues in
// plain text.
//
// With a cache, SCRAM's ClientKey and ServerKey are stored per account and
// mechanism (never the password), so the next SCRAM login costs no PBKDF2
// while the server's salt and iteration count stay the same; the server's
// signature is still verified on every login. The stored keys stand in for
// the password: a login the server refuses forgets them, and
// cache.DB.ForgetScramKeys removes them at once (for example when the user
// changes the password).
//
// # TCP Fast Open
//
// On Linux the default dialer asks for TCP Fast Open (RFC 7413;
// Config.NoFastOpen turns it off): after a first connection has fetched a
// cookie from the server, the SYN carries the TLS ClientHello, and a server
// with Fast Open on answers with its SYN-ACK and its ServerHello together:
// TCP and TLS 1.3 take one round trip instead of two. Info.FastOpen says
// whether the SYN carried data and whether the server accepted it, as the
// kernel reports (TCP_INFO). The SYN carries only the ClientHello, which is
// sent in the clear anyway; a replayed SYN (RFC 7413 §6) makes the server
// start a handshake nobody finishes, and no credential or stanza ever
// rides in it.
//
// The ClientHello must fit in the SYN, about one MSS. Go's default one
// carries an X25519MLKEM768 key share (post-quantum hybrid) and an X25519
// one, about 1.5 KB: too big. So the client remembers, in the feature
// cache, the group each server negotiated over a verified certificate
// (features.Features.TLSGroup), and the key shares follow it
// (Info.KeyShare):
//
//   - A server that negotiated X25519 although the ClientHello offered
//     X25519MLKEM768 (Prosody 13 on OpenSSL 3.0 does) gets an X25519 key
//     share alone, and the classical groups only, in a ClientHello of
//     about 250 bytes. It gains nothing from an ML-KEM share it does not
//     use: the session key comes from X25519 either way. The server's
//     choice is authentic: in TLS 1.3 it signs the transcript, the groups
//     offered included (RFC 8446 §4.4.3), so an attacker without its key
//     cannot have made a verified handshake pick X25519; an unverified
//     handshake records no group. crypto/tls sends a key share for the
//     first group of its own fixed order, whatever the order of
//     CurvePreferences, so this ClientHello cannot also list
//     X25519MLKEM768 for a HelloRetryRequest: instead, once a day
//     (keyShareRecheck) one login offers the default groups again, and a
//     server that has gained ML-KEM is then remembered with it.
//   - A server that negotiated X25519MLKEM768 keeps Go's default
//     ClientHello: post-quantum protection is never given up for a round
//     trip; its SYN carries the first part of the ClientHello and TLS takes
//     two round trips, as without Fast Open.
//   - With no cache entry, another group, or Fast Open not asked for on
//     the socket, Go's default; CurvePreferences set in Config.TLSConfig
//     are never overridden (set them to insist on post-quantum groups).
//
// A server name with several addresses is dialed without Fast Open (with
// a cookie, a Fast Open connect returns before the SYN leaves, which would
// defeat Happy Eyeballs and the failover to the next address). After a
// login whose SYN with data was dropped, the server is dialed without Fast
// Open for an hour (Info.FastOpen.Backoff; the cache remembers it). A path that drops SYNs
// with data (some middleboxes do) still logs in: the kernel retransmits
// the SYN without data after its initial RTO (1 s) and, after repeated
// losses, stops sending data in SYNs to that server for a while
// (RELIABILITY.md gives the bound measured). With Fast Open and a cookie
// connect returns at once, so Timings.Connect is near zero and the TCP
// handshake's round trip is counted in Timings.TLS (see Timings); a
// refused connection then fails the handshake, and is reported as a
// connect error all the same (StepConnect, ErrConnection).
//
// # Sending
//
// Client.Send writes a stanza, given as a token stream (mellium's stanza
// types make one: stanza.Message{...}.Wrap(payload)). It is the one way to
// send: while the client reconnects it waits for the new connection, and
// with stream management it keeps what it wrote until the server has
// acknowledged it (asking with <r/>), to send it again after a drop.
//
// Client.SendIQ sends a request and returns its answer, bounded by
// Config.RequestTimeout and by the connection: a connection that ends
// first makes it return an *UnansweredError at once. Client.Session
// returns the current connection's *xmpp.Session for mellium's packages
// that take one (roster, disco, ...); mellium's own SendIQ on it waits
// for an answer until its context ends, even once the connection is gone.
// Writing on it directly neither waits while the client
// reconnects nor asks for acknowledgements. Dial already runs its Serve
// loop and passes incoming elements to Config.Handler. Close ends the
// stream, closes the connection and waits for the client's goroutines. A
// Client is safe for concurrent use.
//
// # Receiving
//
// Config.Handler gets every incoming element that is not an answer to an
// IQ the session sent, on the goroutine that reads the connection, one at
// a time: the start element, and a token reader of what follows it up to
// its end. To decode a message, put the start element back in front:
//
//	d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t))
//	err := d.Decode(&m) // m: struct{ stanza.Message; Body string `xml:"body"` }
//
// (xml.NewTokenDecoder(t).DecodeElement(&m, start) fails: that decoder
// meets an end element it never saw start.) A Handler must not wait: hand
// the message to a goroutine of yours and reply from there with Send,
// which waits while the client reconnects. An error the Handler returns is
// the application's: OnEvent receives it as EventError and the session
// goes on; to end the session, call Close. ExampleConfig_handler and
// examples/echobot are a complete bot.
//
// Client.Status says whether the client is online, reconnecting or
// closed; Client.Flush waits until the server has processed everything
// sent before it (one round trip), for a program that sends and exits.
//
// # Callbacks
//
// Dial calls back nothing: its connection is its result. Afterwards,
// Config.OnEvent hears of the connection's changes (offline, connecting,
// online, resumed, closed) and of the Handler's errors, in order, on one
// goroutine of the client's, as nats.go delivers its connection events:
// never on the goroutine reading the connection, so a slow OnEvent holds up
// neither that nor the reconnection. Config.Handler, OnMessage and
// OnSyncProgress run on the connection's goroutines. Any callback may call
// Close: Close never waits for a callback, and Done is closed once the last
// one (OnEvent with EventClosed) has returned.
//
// # Passwords, FAST tokens and cached keys
//
// With a cache, a FAST token (XEP-0484) or the cached SCRAM keys stand in
// for the password: such a login succeeds whatever the password now is,
// and Info.PasswordChecked says so. Config.VerifyPassword logs in with the
// password itself. Config.PasswordFunc is asked only when the password is
// needed (never while a token carries the login), and an empty password is
// never sent. cache.DB.ForgetCredentials drops an account's token, keys
// and pin at once. The FAST mechanisms are login.FASTMechanisms
// (HT-SHA-256, -384, -512 and the SHA3 family): a token is requested for
// the first the server offers in that order, channel binding (EXPR, ENDP,
// UNIQ, NONE) before the longer hash; never UNIQ on TLS 1.3, never NONE
// over an unverified certificate.
//
// # Errors
//
// A failed Dial returns a *login.Error; match the cause with errors.Is:
// ErrAuth (wrong credentials), ErrRefused, ErrProtocol, ErrTLS, ErrTimeout,
// ErrConnection, ErrInsecure, and context.Canceled when ctx was cancelled.
// ErrConfig is the caller's own mistake (an unknown mechanism in
// Config.Mechanisms, no password ...), found before connecting.
// Its Step says which part failed (login.StepLookup, StepConnect,
// StepStartTLS, StepTLS, then the login's own steps).
// No error or log line ever contains a password or SASL payload.
package client
