package client

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/login"
)

// keyStore keeps one account's SCRAM keys in the cache (login.KeyStore). A
// cache error costs a PBKDF2, never the login.
type keyStore struct {
	db      *cache.DB
	account string
	log     zerolog.Logger
	used    bool // keys came from the cache on this login
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

func (k *keyStore) PutScramKeys(s login.ScramKeys) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := k.db.PutScramKeys(ctx, k.account, cache.ScramKeys{Mechanism: s.Mechanism, Salt: s.Salt, Iterations: s.Iterations, ClientKey: s.ClientKey, ServerKey: s.ServerKey})
	if err != nil {
		k.log.Warn().Err(err).Msg("could not cache SCRAM keys")
	}
}
