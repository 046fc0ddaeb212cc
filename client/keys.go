package client

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/login"
)

// keyStore keeps one account's SCRAM keys in the cache (login.KeyStore). A
// cache error costs a PBKDF2, never the login.
//
// Keys a login derives are not written when SCRAM has verified them, in the
// middle of the login, but with the login's record once it has succeeded
// (recordLogin): one write per login, bounded by the login's context. In a
// storm of first logins on one cache, a write of its own waited in the
// cache's queue behind the whole fleet's, on the login's critical path, and
// was lost when that took longer than its 5 s.
type keyStore struct {
	db      *cache.DB
	account string
	log     zerolog.Logger
	used    bool // keys came from the cache on this login

	mu      sync.Mutex
	derived *login.ScramKeys // derived and verified on this login, to record
}

func (k *keyStore) ScramKeys(mechanism string, salt []byte, iterations int) (login.ScramKeys, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, ok, err := k.db.ScramKeysFor(ctx, k.account, mechanism, salt, iterations)
	if err != nil {
		k.log.Warn().Err(err).Msg("SCRAM key cache unreadable")
		return login.ScramKeys{}, false
	}
	if ok {
		k.used = true
	}
	return login.ScramKeys{Mechanism: c.Mechanism, Salt: c.Salt, Iterations: c.Iterations, ClientKey: c.ClientKey, ServerKey: c.ServerKey}, ok
}

// PutScramKeys keeps s for the login's record.
func (k *keyStore) PutScramKeys(s login.ScramKeys) {
	k.mu.Lock()
	k.derived = &s
	k.mu.Unlock()
}

// record returns the keys to record in cache form, nil if none. A login
// that fails after SCRAM has verified its keys records nothing: none of
// those failures leads to another attempt (retry), and the next login
// derives them again.
func (k *keyStore) record() *cache.ScramKeys {
	if k == nil {
		return nil
	}
	k.mu.Lock()
	s := k.derived
	k.mu.Unlock()
	if s == nil {
		return nil
	}
	return &cache.ScramKeys{Mechanism: s.Mechanism, Salt: s.Salt, Iterations: s.Iterations, ClientKey: s.ClientKey, ServerKey: s.ServerKey}
}
