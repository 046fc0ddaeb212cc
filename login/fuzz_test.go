package login

import (
	"bytes"
	"encoding/xml"
	"testing"

	"mellium.im/xmpp/stream"
)

func FuzzParseFeatures(f *testing.F) {
	f.Add([]byte(prosodyFeatures))
	f.Add([]byte(draftFeatures))
	f.Add([]byte(`<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fe, err := ParseFeatures(data)
		if err == nil && fe.Version != 0 && len(fe.SASLMechanisms) > maxListed {
			t.Fatalf("unbounded list: %d", len(fe.SASLMechanisms))
		}
	})
}

func FuzzParseSASL2Success(f *testing.F) {
	f.Add([]byte(prosodySuccess))
	f.Add([]byte(`<success xmlns='urn:xmpp:sasl:2'><additional-data>dj1wTk5ERlZFUXh1WHhDb1NFaVc4R0VaKzFSU289</additional-data><authorization-identifier>user@example.org</authorization-identifier></success>`))
	// XEP-0484 token (Prosody's expiry has fractional seconds), XEP-0198
	// inline resume answers.
	f.Add([]byte(`<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>alice@localhost/r</authorization-identifier><token xmlns='urn:xmpp:fast:0' expiry='2026-12-16T14:36:15.123456Z' token='WXZzciBwYmFmdmZnZiBqdmd1IGp2eXFhcmZm'/><bound xmlns='urn:xmpp:bind:0'/></success>`))
	f.Add([]byte(`<success xmlns='urn:xmpp:sasl:2'><additional-data>AAAA</additional-data><authorization-identifier>user@example.com/res</authorization-identifier><resumed xmlns='urn:xmpp:sm:3' h='345' previd='0312a1b8'/></success>`))
	f.Add([]byte(`<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>user@example.com</authorization-identifier><failed xmlns='urn:xmpp:sm:3' h='2'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed><bound xmlns='urn:xmpp:bind:0'/></success>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSASL2Success(data)
		if err != nil {
			return
		}
		if s.AuthorizationIdentifier.Domainpart() == "" {
			t.Fatal("success without a valid authorization identifier")
		}
		if tok := s.Token; tok != nil && (len(tok.Secret) == 0 || len(tok.Secret) > maxTokenLen || tok.Expiry.IsZero()) {
			t.Fatalf("accepted token %v with %d secret bytes", tok, len(tok.Secret))
		}
		if r := s.Resumed; r != nil && r.PrevID == "" {
			t.Fatal("resumed without previd")
		}
	})
}

// FuzzReader feeds arbitrary server bytes to the element reader used during
// the login (stream header, stream errors, SASL failures).
func FuzzReader(f *testing.F) {
	f.Add([]byte(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' version='1.0'><stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>no</text></stream:error>`))
	f.Add([]byte(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><failure xmlns='urn:xmpp:sasl:2'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/><text>x</text></failure>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &reader{d: xml.NewDecoder(bytes.NewReader(data)), in: &stream.Info{}}
		if err := r.header(); err != nil {
			return
		}
		for range 8 {
			start, err := r.next()
			if err != nil {
				return
			}
			if start.Name.Local == "failure" {
				_ = saslFailure(r.d, start)
				continue
			}
			if err := r.d.Skip(); err != nil {
				return
			}
		}
	})
}
