package xmpptest

import "encoding/xml"

// Namespaces the server speaks. They are unexported: the package serves tests
// inside this module, and callers compare against the specs' literal strings.
const (
	nsStream      = "http://etherx.jabber.org/streams"
	nsStreamError = "urn:ietf:params:xml:ns:xmpp-streams"
	nsClient      = "jabber:client"
	nsTLS         = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL        = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsSASL2       = "urn:xmpp:sasl:2"
	nsSASLCB      = "urn:xmpp:sasl-cb:0"
	nsBind        = "urn:ietf:params:xml:ns:xmpp-bind"
	nsBind2       = "urn:xmpp:bind:0"
	nsBind2Draft  = "urn:xmpp:bind2:0" // XEP-0386 v0.3.0 (bind2draft.go)
	nsSession     = "urn:ietf:params:xml:ns:xmpp-session"
	nsStanzas     = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsSM          = "urn:xmpp:sm:3"
	nsFAST        = "urn:xmpp:fast:0" // XEP-0484 (fast.go)
	nsCSI         = "urn:xmpp:csi:0"
	nsCarbons     = "urn:xmpp:carbons:2"
	nsForward     = "urn:xmpp:forward:0"
	nsSID         = "urn:xmpp:sid:0"
	nsHints       = "urn:xmpp:hints"
	nsPing        = "urn:xmpp:ping"
	nsDiscoInfo   = "http://jabber.org/protocol/disco#info"
	nsMAM         = "urn:xmpp:mam:2" // XEP-0313 (mam.go)
	nsMAMExtended = "urn:xmpp:mam:2#extended"
	nsRSM         = "http://jabber.org/protocol/rsm"
	nsDataForms   = "jabber:x:data"
	nsDelay       = "urn:xmpp:delay"
	nsXML         = "http://www.w3.org/XML/1998/namespace"
)

// name is shorthand for an xml.Name.
func name(space, local string) xml.Name { return xml.Name{Space: space, Local: local} }

// streamName is the name recorded for stream headers and the closing tag.
var streamName = name(nsStream, "stream")
