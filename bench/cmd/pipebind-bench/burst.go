package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"

	"github.com/pipebind/pipebind/login"
)

// burst writes, by hand, the first flight after TLS of a pipelined SASL2
// login as pipebind's warm logins write it: the stream header (with from=,
// which Prosody needs to offer FAST), <authenticate> with a user agent and
// Bind 2 enabling carbons, SM and CSI. Prosody's first-flight timings
// (serverCosts) and the floor-fast peer use it.
type burst struct{ domain, user, password string }

// bind2 is pipebind's Bind 2 request.
const bind2 = "<bind xmlns='urn:xmpp:bind:0'><tag>pipebind</tag><enable xmlns='urn:xmpp:carbons:2'/><enable xmlns='urn:xmpp:sm:3' resume='true'/><active xmlns='urn:xmpp:csi:0'/></bind>"

func (b burst) header() string {
	return "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='" +
		b.domain + "' from='" + b.user + "@" + b.domain + "'>"
}

// auth is an <authenticate> for mech with the initial response ir, the
// user agent uaID and extra (FAST elements) before the Bind 2 request.
func (b burst) auth(mech, ir, uaID, extra string) string {
	return "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='" + mech + "'><initial-response>" + ir + "</initial-response>" +
		"<user-agent id='" + uaID + "'><software>pipebind</software></user-agent>" + extra + bind2 + "</authenticate>"
}

func (b burst) plainIR() string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + b.user + "\x00" + b.password))
}

// tokenRequest is a PLAIN login that asks for a FAST token for mech
// (XEP-0484), bound to the user agent uaID.
func (b burst) tokenRequest(mech, uaID string) string {
	return b.header() + b.auth("PLAIN", b.plainIR(), uaID, "<request-token xmlns='urn:xmpp:fast:0' mechanism='"+mech+"'/>")
}

// fast is the login with a FAST token on the connection cs. With -EXPR the
// initiator hash binds the connection's tls-exporter data, so it is
// computed per connection, after the handshake.
func (b burst) fast(mech, token, uaID string, cs tls.ConnectionState) (string, error) {
	var cb []byte
	if mech == "HT-SHA-256-EXPR" {
		var err error
		if cb, err = login.ChannelBindingData(cs, login.CBTLSExporter); err != nil {
			return "", err
		}
	}
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte("Initiator"))
	mac.Write(cb)
	ir := base64.StdEncoding.EncodeToString(append([]byte(b.user+"\x00"), mac.Sum(nil)...))
	return b.header() + b.auth(mech, ir, uaID, "<fast xmlns='urn:xmpp:fast:0'/>"), nil
}
