package client_test

import (
	"encoding/xml"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

func chatMessage(to, body string) xml.TokenReader {
	msg := stanza.Message{To: jid.MustParse(to), Type: stanza.ChatMessage}
	return msg.Wrap(xmlstream.Wrap(xmlstream.Token(xml.CharData(body)), xml.StartElement{Name: xml.Name{Local: "body"}}))
}
