package login

import (
	"crypto/tls"
	"fmt"
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

// KnownMechanism reports whether name is a password mechanism this package
// implements, one that Config.Mechanisms may list (see DefaultMechanisms).
// FAST mechanisms are not listed there: a token names its own (see
// FASTMechanisms and Config.Token).
func KnownMechanism(name string) bool { return slices.Contains(mechanismStrength[:], name) }

// CheckMechanisms returns an error matching ErrConfig when names (a
// Config.Mechanisms) lists a mechanism this package does not implement or
// lists none, so that such a mistake is found before connecting rather
// than reported as the server's refusal. A nil list is the default, valid.
func CheckMechanisms(names []string) error {
	if names == nil {
		return nil
	}
	if len(names) == 0 {
		return fmt.Errorf("%w: no SASL mechanism allowed", ErrConfig)
	}
	for _, m := range names {
		if !KnownMechanism(m) {
			return fmt.Errorf("%w: unknown SASL mechanism %q (known: %s)", ErrConfig, m, strings.Join(mechanismStrength[:], ", "))
		}
	}
	return nil
}
