package login

import (
	"crypto/tls"
	"slices"
	"strings"

	"mellium.im/sasl"
)

// mechanismByName returns the client mechanism for a SASL name.
func mechanismByName(name string) (sasl.Mechanism, bool) {
	switch name {
	case "PLAIN":
		return sasl.Plain, true
	case "SCRAM-SHA-1":
		return sasl.ScramSha1, true
	case "SCRAM-SHA-1-PLUS":
		return sasl.ScramSha1Plus, true
	case "SCRAM-SHA-256":
		return sasl.ScramSha256, true
	case "SCRAM-SHA-256-PLUS":
		return sasl.ScramSha256Plus, true
	}
	return sasl.Mechanism{}, false
}

func isPlus(name string) bool { return strings.HasSuffix(name, "-PLUS") }

// chooseMechanism returns the first of prefs that the server offers, this
// package implements, and the connection allows:
//   - -PLUS only on TLS 1.3 with tls-exporter listed by the server (XEP-0440);
//   - PLAIN only over a verified certificate unless allowPlain.
func chooseMechanism(prefs, offered, cbTypes []string, cs tls.ConnectionState, allowPlain bool) (string, bool) {
	verified := len(cs.VerifiedChains) > 0
	for _, m := range prefs {
		if !slices.Contains(offered, m) {
			continue
		}
		if _, ok := mechanismByName(m); !ok {
			continue
		}
		if isPlus(m) && (cs.Version < tls.VersionTLS13 || !slices.Contains(cbTypes, "tls-exporter")) {
			continue
		}
		if m == "PLAIN" && !verified && !allowPlain {
			continue
		}
		return m, true
	}
	return "", false
}
