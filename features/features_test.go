package features

import (
	"slices"
	"testing"
	"time"
)

func TestNormalize(t *testing.T) {
	f := Features{
		Domain:          " Example.ORG. ",
		SASLMechanisms:  []string{"SCRAM-SHA-256", "PLAIN", "SCRAM-SHA-256", "", "PLAIN"},
		ChannelBindings: []string{},
		SASL2Mechanisms: []string{""},
		Bind2Inline:     []string{"urn:xmpp:sm:3", "urn:xmpp:carbons:2"},
		FASTMechanisms:  []string{"HT-SHA-256-NONE"},
	}
	f.Normalize()
	if f.Domain != "example.org" {
		t.Errorf("Domain = %q, want example.org", f.Domain)
	}
	for _, tc := range []struct {
		name      string
		got, want []string
	}{
		{"SASLMechanisms", f.SASLMechanisms, []string{"PLAIN", "SCRAM-SHA-256"}},
		{"ChannelBindings", f.ChannelBindings, nil},
		{"SASL2Mechanisms", f.SASL2Mechanisms, nil},
		{"Bind2Inline", f.Bind2Inline, []string{"urn:xmpp:carbons:2", "urn:xmpp:sm:3"}},
		{"FASTMechanisms", f.FASTMechanisms, []string{"HT-SHA-256-NONE"}},
	} {
		if !slices.Equal(tc.got, tc.want) || (tc.want == nil) != (tc.got == nil) {
			t.Errorf("%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
}

func TestEqual(t *testing.T) {
	base := Features{
		Version:         Version,
		Domain:          "example.org",
		SeenAt:          time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		DirectTLS:       true,
		SASLMechanisms:  []string{"PLAIN", "SCRAM-SHA-256"},
		SASL2:           true,
		SASL2Mechanisms: []string{"PLAIN", "SCRAM-SHA-256"},
		Bind2:           true,
		Bind2Inline:     []string{"urn:xmpp:carbons:2", "urn:xmpp:sm:3"},
	}
	for _, tc := range []struct {
		name  string
		edit  func(f *Features)
		equal bool
	}{
		{"same", func(*Features) {}, true},
		{"other SeenAt", func(f *Features) { f.SeenAt = time.Now() }, true},
		{"zero Version", func(f *Features) { f.Version = 0 }, true},
		{"domain case", func(f *Features) { f.Domain = "Example.Org" }, true},
		{"slice order and duplicates", func(f *Features) {
			f.SASLMechanisms = []string{"SCRAM-SHA-256", "PLAIN", "PLAIN"}
		}, true},
		{"empty vs nil", func(f *Features) { f.FASTMechanisms = []string{} }, true},
		{"other domain", func(f *Features) { f.Domain = "example.net" }, false},
		{"bool differs", func(f *Features) { f.Bind2 = false }, false},
		{"DirectTLS differs", func(f *Features) { f.DirectTLS = false }, false},
		{"mechanism added", func(f *Features) {
			f.SASL2Mechanisms = append(f.SASL2Mechanisms, "SCRAM-SHA-256-PLUS")
		}, false},
		{"mechanism removed", func(f *Features) { f.SASLMechanisms = []string{"PLAIN"} }, false},
		// The TLS group is compared too: a change rewrites the cache entry
		// (it never decides a retry: that is login's checkLive).
		{"TLS group differs", func(f *Features) { f.TLSGroup = 4588 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			other := base
			other.SASLMechanisms = slices.Clone(base.SASLMechanisms)
			other.SASL2Mechanisms = slices.Clone(base.SASL2Mechanisms)
			tc.edit(&other)
			if got := base.Equal(other); got != tc.equal {
				t.Errorf("base.Equal(other) = %v, want %v", got, tc.equal)
			}
			if got := other.Equal(base); got != tc.equal {
				t.Errorf("other.Equal(base) = %v, want %v", got, tc.equal)
			}
		})
	}
}

func TestEqualDoesNotModify(t *testing.T) {
	a := Features{Domain: "Example.org", SASLMechanisms: []string{"b", "a", "a"}}
	b := Features{Domain: "example.org", SASLMechanisms: []string{"a", "b"}}
	if !a.Equal(b) {
		t.Fatal("a.Equal(b) = false, want true")
	}
	if a.Domain != "Example.org" || !slices.Equal(a.SASLMechanisms, []string{"b", "a", "a"}) {
		t.Errorf("Equal modified its receiver: %+v", a)
	}
}
