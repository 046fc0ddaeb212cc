package cache

import "github.com/pipebind/pipebind/features"

// Features is a server's stream features as the cache stores them; the type
// lives in package features so that the protocol packages need no SQLite.
type Features = features.Features

// FeaturesVersion is the version of the Features structure as stored. A
// stored entry with another version is treated as a cache miss (and
// overwritten by the next successful login), never misread.
const FeaturesVersion = features.Version

// domainKey is the form of a domain used as the cache key.
func domainKey(domain string) string { return features.DomainKey(domain) }
