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
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSASL2Success(data)
		if err == nil && s.AuthorizationIdentifier.Domainpart() == "" {
			t.Fatal("success without a valid authorization identifier")
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
