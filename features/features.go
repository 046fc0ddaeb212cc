// Package features holds what pipebind knows of a server's stream features:
// the plain value that plans a login's first write (which path, which SASL
// mechanism, which inline features) and that the cache stores between
// logins. It has no dependencies, so that the protocol packages (login,
// mamsync) build without the SQLite cache.
package features

import (
	"reflect"
	"slices"
	"strings"
	"time"
)

// Version is the version of the Features structure as stored. A
// stored entry with another version is treated as a cache miss (and
// overwritten by the next successful login), never misread.
const Version = 1

// Features is what pipebind learned about one server's stream features on the
// last successful login. It is advice for planning the next login's first
// write, never a security decision: the live features always win.
//
// Slices hold names as the server advertised them (mechanism names,
// channel-binding types, namespaces), de-duplicated and in a stable order.
type Features struct {
	// Version is the package constant Version when written by this package.
	Version int `json:"v"`
	// Domain is the server's domain (the JID domainpart), the cache key.
	Domain string `json:"domain"`
	// SeenAt is when these features were read from the server.
	SeenAt time.Time `json:"seen_at"`

	// DirectTLS reports that the login that learned these features used
	// Direct TLS (XEP-0368); otherwise it used STARTTLS.
	DirectTLS bool `json:"direct_tls"`
	// StartTLS reports that the server offered <starttls/> before TLS.
	StartTLS bool `json:"starttls,omitempty"`

	// SASLMechanisms are the classic RFC 6120 SASL mechanisms
	// (urn:ietf:params:xml:ns:xmpp-sasl).
	SASLMechanisms []string `json:"sasl_mechanisms,omitempty"`
	// ChannelBindings are the channel-binding types of XEP-0440.
	ChannelBindings []string `json:"channel_bindings,omitempty"`

	// SASL2 reports <authentication xmlns='urn:xmpp:sasl:2'> (XEP-0388).
	SASL2 bool `json:"sasl2,omitempty"`
	// SASL2Mechanisms are the mechanisms listed in <authentication>.
	SASL2Mechanisms []string `json:"sasl2_mechanisms,omitempty"`
	// Bind2 reports an inline <bind xmlns='urn:xmpp:bind:0'> (XEP-0386).
	Bind2 bool `json:"bind2,omitempty"`
	// Bind2Inline are the namespaces the server lists inside Bind 2's
	// <inline> (for example urn:xmpp:carbons:2, urn:xmpp:sm:3,
	// urn:xmpp:csi:0).
	Bind2Inline []string `json:"bind2_inline,omitempty"`
	// SMInline reports inline stream management resumption in SASL2
	// (<sm xmlns='urn:xmpp:sm:3'/> inside <inline>).
	SMInline bool `json:"sm_inline,omitempty"`
	// FASTMechanisms are the XEP-0484 token mechanisms listed in <fast>.
	FASTMechanisms []string `json:"fast_mechanisms,omitempty"`

	// Bind2Draft reports <bind xmlns='urn:xmpp:bind2:0'/>, the XEP-0386
	// v0.3.0 draft whose servers accept the whole stream start pipelined.
	Bind2Draft bool `json:"bind2_draft,omitempty"`
	// ClassicBind reports RFC 6120 resource binding
	// (urn:ietf:params:xml:ns:xmpp-bind).
	ClassicBind bool `json:"classic_bind,omitempty"`
	// SM reports XEP-0198 stream management as a stream feature.
	SM bool `json:"sm,omitempty"`
	// CSI reports XEP-0352 client state indication as a stream feature.
	CSI bool `json:"csi,omitempty"`

	// NoPipeline records that the server refused a pipelined login (a
	// stream error before it had sent its features): the next logins read
	// the features before they write anything else.
	NoPipeline bool `json:"no_pipeline,omitempty"`

	// TLSGroup is the key exchange group the login's TLS handshake
	// negotiated, as its IANA TLS Supported Groups code point (crypto/tls's
	// CurveID: 29 is X25519, 4588 X25519MLKEM768); zero when unknown, or
	// when the server's certificate was not verified (only a verified
	// handshake authenticates the server's choice). Not a stream feature:
	// it plans the next ClientHello's key shares (package client), never
	// the login. A changed group makes Equal false, so the entry is
	// rewritten, but it never makes a login fail or retry.
	TLSGroup uint16 `json:"tls_group,omitempty"`
	// FastOpenDropped is when (Unix seconds) a login's SYN carrying data
	// (TCP Fast Open) got no answer and was sent again without data: a
	// path that drops such SYNs, as some middleboxes do, or a lost
	// packet. Not a stream feature either: package client dials the
	// server without Fast Open for a while after it, and login carries it
	// over from the cached features, as NoPipeline.
	FastOpenDropped int64 `json:"tfo_dropped,omitempty"`
}

// Normalize puts f in its canonical form, in place: Domain is lower-cased,
// trimmed of spaces and of a trailing dot; each slice is sorted, rid of
// duplicates and of empty names, and nil when nothing is left. It does not
// touch Version or SeenAt.
func (f *Features) Normalize() {
	f.Domain = DomainKey(f.Domain)
	f.SASLMechanisms = normalizeNames(f.SASLMechanisms)
	f.ChannelBindings = normalizeNames(f.ChannelBindings)
	f.SASL2Mechanisms = normalizeNames(f.SASL2Mechanisms)
	f.Bind2Inline = normalizeNames(f.Bind2Inline)
	f.FASTMechanisms = normalizeNames(f.FASTMechanisms)
}

// Equal reports whether f and other describe the same server features. It
// ignores SeenAt and Version (when, and in which record format, the features
// were written down), compares Domain as a cache key (case-insensitively) and
// each slice as a set (order and duplicates do not matter). Neither f nor
// other is modified.
//
// The login uses it to decide whether the live features differ from the
// cached ones and the entry needs refreshing.
func (f Features) Equal(other Features) bool {
	a, b := f.Normalized(), other.Normalized()
	a.Version, b.Version = 0, 0
	a.SeenAt, b.SeenAt = time.Time{}, time.Time{}
	// DeepEqual rather than a field list, so that a field added to Features
	// later takes part without anyone remembering to add it here.
	return reflect.DeepEqual(a, b)
}

// Normalized returns a normalized deep copy of f, leaving f and the arrays
// behind its slices untouched.
func (f Features) Normalized() Features {
	f.SASLMechanisms = slices.Clone(f.SASLMechanisms)
	f.ChannelBindings = slices.Clone(f.ChannelBindings)
	f.SASL2Mechanisms = slices.Clone(f.SASL2Mechanisms)
	f.Bind2Inline = slices.Clone(f.Bind2Inline)
	f.FASTMechanisms = slices.Clone(f.FASTMechanisms)
	f.Normalize()
	return f
}

// normalizeNames sorts names in place, drops duplicates and empty strings,
// and returns nil when nothing is left.
func normalizeNames(names []string) []string {
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if names[0] == "" { // "" sorts first and, compacted, occurs at most once
		names = names[1:]
	}
	if len(names) == 0 {
		return nil
	}
	return names
}

// DomainKey is the form of a domain used as the cache key: domainparts are
// case-insensitive, and a trailing dot (a fully qualified DNS name) names the
// same server (RFC 7622, section 3.2).
func DomainKey(domain string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(domain)), ".")
}
