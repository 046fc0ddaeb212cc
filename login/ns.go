package login

// Namespaces this package speaks.
const (
	NSStream       = "http://etherx.jabber.org/streams"
	NSClient       = "jabber:client"
	NSTLS          = "urn:ietf:params:xml:ns:xmpp-tls"
	NSSASL         = "urn:ietf:params:xml:ns:xmpp-sasl"
	NSBind         = "urn:ietf:params:xml:ns:xmpp-bind"
	NSSession      = "urn:ietf:params:xml:ns:xmpp-session"
	NSStreamErrors = "urn:ietf:params:xml:ns:xmpp-streams"
	NSStanzaErrors = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSSASL2        = "urn:xmpp:sasl:2"    // XEP-0388
	NSBind2        = "urn:xmpp:bind:0"    // XEP-0386 (current)
	NSBind2Draft   = "urn:xmpp:bind2:0"   // XEP-0386 v0.3.0
	NSFAST         = "urn:xmpp:fast:0"    // XEP-0484
	NSCarbons      = "urn:xmpp:carbons:2" // XEP-0280
	NSCSI          = "urn:xmpp:csi:0"     // XEP-0352
	NSChannelBind  = "urn:xmpp:sasl-cb:0" // XEP-0440
	NSMAM          = "urn:xmpp:mam:2"     // XEP-0313
	NSStanzaID     = "urn:xmpp:sid:0"     // XEP-0359
)
