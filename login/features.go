package login

import (
	"encoding/xml"
	"slices"
	"strings"

	"github.com/pipebind/pipebind/features"
)

// maxListed bounds how many names of one kind (mechanisms, inline features,
// channel-binding types) are kept from a server's features.
const maxListed = 64

// wireFeatures is the XML shape of <stream:features> as far as pipebind cares.
type wireFeatures struct {
	StartTLS *struct {
		Required *struct{} `xml:"required"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
	Mechanisms *struct {
		Mechanism []string `xml:"mechanism"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-sasl mechanisms"`
	Authentication *struct {
		Mechanism []string `xml:"mechanism"`
		Inline    struct {
			Bind *struct {
				Inline struct {
					Feature []struct {
						Var string `xml:"var,attr"`
					} `xml:"feature"`
				} `xml:"inline"`
			} `xml:"urn:xmpp:bind:0 bind"`
			SM   *struct{} `xml:"urn:xmpp:sm:3 sm"`
			FAST *struct {
				Mechanism []string `xml:"mechanism"`
			} `xml:"urn:xmpp:fast:0 fast"`
		} `xml:"inline"`
	} `xml:"urn:xmpp:sasl:2 authentication"`
	ChannelBinding *struct {
		ChannelBinding []struct {
			Type string `xml:"type,attr"`
		} `xml:"channel-binding"`
	} `xml:"urn:xmpp:sasl-cb:0 sasl-channel-binding"`
	Bind       *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
	Bind2Draft *struct{} `xml:"urn:xmpp:bind2:0 bind"`
	SM         *struct{} `xml:"urn:xmpp:sm:3 sm"`
	CSI        *struct{} `xml:"urn:xmpp:csi:0 csi"`
}

// decodeFeatures reads the <stream:features> element whose start has just
// been read from d.
func decodeFeatures(d *xml.Decoder, start xml.StartElement) (features.Features, error) {
	var w wireFeatures
	if err := d.DecodeElement(&w, &start); err != nil {
		return features.Features{}, readError("features", err)
	}
	return w.features(), nil
}

// ParseFeatures parses a serialized <stream:features> element (with the
// stream namespace bound) into the cache's structure. It is what the login
// does with the server's features, exposed for tests, fuzzing and tools.
func ParseFeatures(data []byte) (features.Features, error) {
	d := xml.NewDecoder(strings.NewReader(string(data)))
	for {
		tok, err := d.Token()
		if err != nil {
			return features.Features{}, protocolErrorf("features: %v", err)
		}
		if start, ok := tok.(xml.StartElement); ok {
			if start.Name.Local != "features" || start.Name.Space != NSStream {
				return features.Features{}, protocolErrorf("features: unexpected <%s xmlns='%s'>", start.Name.Local, start.Name.Space)
			}
			return truncated(decodeFeatures(d, start))
		}
	}
}

func (w *wireFeatures) features() features.Features {
	var f features.Features
	f.Version = features.Version
	if w.StartTLS != nil {
		f.StartTLS = true
	}
	if w.Mechanisms != nil {
		f.SASLMechanisms = names(w.Mechanisms.Mechanism)
	}
	if a := w.Authentication; a != nil {
		f.SASL2 = true
		f.SASL2Mechanisms = names(a.Mechanism)
		if b := a.Inline.Bind; b != nil {
			f.Bind2 = true
			vars := make([]string, 0, len(b.Inline.Feature))
			for _, v := range b.Inline.Feature {
				vars = append(vars, v.Var)
			}
			f.Bind2Inline = names(vars)
		}
		f.SMInline = a.Inline.SM != nil
		if a.Inline.FAST != nil {
			f.FASTMechanisms = names(a.Inline.FAST.Mechanism)
		}
	}
	if cb := w.ChannelBinding; cb != nil {
		types := make([]string, 0, len(cb.ChannelBinding))
		for _, t := range cb.ChannelBinding {
			types = append(types, t.Type)
		}
		f.ChannelBindings = names(types)
	}
	f.ClassicBind = w.Bind != nil
	f.Bind2Draft = w.Bind2Draft != nil
	f.SM = w.SM != nil
	f.CSI = w.CSI != nil
	return f
}

// names trims, drops empty and duplicate names, bounds the count and sorts.
func names(in []string) []string {
	out := make([]string, 0, len(in))
	for _, n := range in {
		n = strings.TrimSpace(n)
		if n == "" || len(n) > 256 || slices.Contains(out, n) {
			continue
		}
		out = append(out, n)
		if len(out) == maxListed {
			break
		}
	}
	if len(out) == 0 {
		return nil
	}
	slices.Sort(out)
	return out
}

// mergePostAuth folds what the post-authentication features say into the
// pre-authentication record that is cached.
func mergePostAuth(pre *features.Features, post features.Features) {
	pre.SM = pre.SM || post.SM
	pre.CSI = pre.CSI || post.CSI
	pre.Bind2Draft = pre.Bind2Draft || post.Bind2Draft
	pre.ClassicBind = pre.ClassicBind || post.ClassicBind
}
