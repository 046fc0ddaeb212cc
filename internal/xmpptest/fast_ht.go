package xmpptest

import (
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"hash"
	"strings"
)

// The HT mechanisms xmpptest implements: HT-<hash>-<binding>, the hash
// one of SHA-256, SHA-384, SHA-512, SHA3-256, SHA3-384 and SHA3-512 (what
// MongooseIM offers besides SHA-256), the binding one of NONE, EXPR, ENDP
// and UNIQ. Config.FASTMechanisms chooses which are offered.
var htHashes = map[string]func() hash.Hash{
	"SHA-256":  sha256.New,
	"SHA-384":  sha512.New384,
	"SHA-512":  sha512.New,
	"SHA3-256": func() hash.Hash { return sha3.New256() },
	"SHA3-384": func() hash.Hash { return sha3.New384() },
	"SHA3-512": func() hash.Hash { return sha3.New512() },
}

var htBindings = map[string]string{
	"NONE": "",
	"EXPR": "tls-exporter",
	"ENDP": "tls-server-end-point",
	"UNIQ": "tls-unique",
}

// htMechanism parses an HT mechanism name into its channel-binding type
// ("" for NONE) and hash.
func htMechanism(mech string) (cb string, h func() hash.Hash, ok bool) {
	rest, ok := strings.CutPrefix(mech, "HT-")
	if !ok {
		return "", nil, false
	}
	i := strings.LastIndexByte(rest, '-')
	if i < 0 {
		return "", nil, false
	}
	h, okHash := htHashes[rest[:i]]
	cb, okCB := htBindings[rest[i+1:]]
	return cb, h, okHash && okCB
}
