package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/pipebind/pipebind/login"
)

// What a login checks of the password, and when it asks for it.
//
// A cached FAST token or cached SCRAM keys stand in for the password: a
// login they carry succeeds whatever the password now is, and says nothing
// about it (Info.PasswordChecked). Config.VerifyPassword makes the login
// use the password itself. Config.PasswordFunc is only called when a login
// needs the password: not while a cached token stands in for it.

// PasswordChecked reports whether the server checked the password on this
// login: false when a FAST token or cached SCRAM keys stood in for it
// (Config.VerifyPassword forces a check).
func (i Info) PasswordChecked() bool {
	return i.Mechanism != "" && !i.FAST && !i.ScramKeysCached
}

// Credential names what authenticated this login: "fast-token",
// "scram-keys" (SCRAM with cached keys: the password was not used) or
// "password".
func (i Info) Credential() string {
	switch {
	case i.FAST:
		return "fast-token"
	case i.ScramKeysCached:
		return "scram-keys"
	}
	return "password"
}

// errEmptyPassword is what an empty password from Config.PasswordFunc
// returns: a password never sent.
var errEmptyPassword = fmt.Errorf("%w: the password is empty", ErrConfig)

// needPassword gets the password before an attempt that needs it, from
// Config.Password or Config.PasswordFunc; it does not call PasswordFunc
// while a cached FAST token may carry the login (the login then fails
// with login.ErrNeedPassword, or the token is refused, and the next
// attempt asks).
func (d *dialing) needPassword(ctx context.Context) error {
	if d.password != "" {
		return nil
	}
	if d.cfg.PasswordFunc != nil && d.adv.tokenCached() {
		return nil
	}
	pw, err := password(ctx, d.cfg)
	if err != nil {
		return err
	}
	if pw == "" {
		return errEmptyPassword
	}
	d.password = pw
	return nil
}

// tokenCached waits for the cache's FAST token (none without a cache, with
// Config.NoFAST or VerifyPassword) and reports whether there is one the
// next attempt may use.
func (a *advice) tokenCached() bool {
	if a.haveAll {
		return a.token != nil // nil once refused or found unusable
	}
	if a.rd == nil {
		return false
	}
	a.rd.block(a.rd.done) // counted in CacheWait
	return a.rd.token != nil
}

// passwordNeeded: the cached token could not carry the login (its
// mechanism not offered, or not allowed on this connection) and the
// password was not asked for. The next attempt asks for it and reads the
// features first, so it is not planned again from features that may be
// stale.
func (d *dialing) passwordNeeded(err error) bool {
	if d.password != "" || !errors.Is(err, login.ErrNeedPassword) {
		return false
	}
	d.log.Info().Msg("the cached FAST token cannot carry this login; asking for the password")
	d.adv.token = nil
	d.adv.features = nil
	return true
}

// verifyPassword makes lcfg log in with the password itself: no token,
// and SCRAM keys derived afresh (then stored as usual).
func verifyPassword(lcfg *login.Config) {
	lcfg.Token = nil
	if lcfg.KeyStore != nil {
		lcfg.KeyStore = storeOnly{lcfg.KeyStore}
	}
}

// storeOnly is a login.KeyStore that stores keys and never offers them.
type storeOnly struct{ login.KeyStore }

func (storeOnly) ScramKeys(string, []byte, int) (login.ScramKeys, bool) {
	return login.ScramKeys{}, false
}
