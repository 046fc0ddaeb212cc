package login

import (
	"crypto/tls"
	"slices"
	"strings"

	"mellium.im/sasl"
)

// mechanismByName returns the client mechanism for a SASL name.
func mechanismByName(name string) (sasl.Mechanism, bool) {
	if name == "PLAIN" {
		return sasl.Plain, true
	}
	return NewScram(name, nil)
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
