package client

import (
	"context"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/login"
)

// advice is what the cache tells one dialLink, and what its retries learn
// on top. The cache is read on a goroutine while the lookup, the TCP
// connect and the TLS handshake are under way (cacheRead); its results are
// waited for where they are first needed: the features before the first
// byte that depends on them (resolve with Config.Addr and TLSAuto,
// STARTTLS pipelining: needFeatures), everything else before the first
// write after TLS (login.Negotiate: needAll). The cache is advice: a broken
// cache costs a round trip, not the login.
type advice struct {
	rd   *cacheRead // nil without a cache
	log  zerolog.Logger
	open time.Duration // the file's opening, counted on a Client's first login

	haveFeatures, haveAll bool

	// features plans the next attempt: the cached features, then what a
	// retry changed (NoPipeline, the live features).
	features *cache.Features
	// stored is what the cache holds, to know whether to write.
	stored *cache.Features
	uaID   string
	// token is the FAST token the next attempt may use; nil once refused.
	token *login.Token
	pin   string
	// cursor is the message store's sync cursor (haveCursor: it was read),
	// for a first archive page asked in the login's own write.
	cursor     string
	haveCursor bool
}

// instanceFunc returns the client's instance of the account in the cache
// (nil: the installation's), claiming it on the first login (see
// Client.claimInstance); an error stops the login.
type instanceFunc func(context.Context) (*cache.Instance, error)

// startAdvice starts reading the cache for a login to cfg's account; with
// no cache the advice is empty. The caller must call wait before the cache
// may be closed.
func startAdvice(ctx context.Context, db *cache.DB, inst instanceFunc, cfg Config, open time.Duration, log zerolog.Logger) *advice {
	a := &advice{log: log, open: open}
	if db != nil {
		a.rd = startCacheRead(ctx, db, inst, cfg, cfg.JID.Domainpart(), cfg.JID.Bare().String())
	}
	return a
}

// needFeatures waits for the cached features (nil if none or unreadable).
func (a *advice) needFeatures() {
	if a.haveFeatures {
		return
	}
	a.haveFeatures = true
	if a.rd != nil {
		a.features = a.rd.features(a.log)
		a.stored = a.features
	}
}

// needAll waits for the rest (the instance, installation id, FAST token,
// mechanism pin) and records in info how long the cache took and how long
// the login waited for it. It fails when the instance could not be
// claimed (ErrInstanceInUse).
func (a *advice) needAll(info *Info) error {
	a.needFeatures()
	if a.haveAll {
		return nil
	}
	if a.rd != nil {
		var err error
		if a.uaID, a.token, a.pin, err = a.rd.material(a.log); err != nil {
			return err
		}
		a.cursor, a.haveCursor = a.rd.cursor, a.rd.cursorErr == nil && a.rd.cursorRead
		info.Timings.Cache, info.Timings.CacheWait = a.rd.elapsed, a.rd.waited
	}
	// The first login opened the file, before anything else.
	info.Timings.Cache += a.open
	info.Timings.CacheWait += a.open
	a.haveAll = true
	return nil
}

// wait returns once the cache reads have ended: dialLink never leaves them
// running past the login, as the caller may close the cache as soon as it
// returns.
func (a *advice) wait() {
	if a.rd != nil {
		a.rd.wait()
	}
}

// cacheRead is the cache's part of a login, read on its own goroutine
// (startCacheRead) so that it overlaps the lookup, the TCP connect and the
// TLS handshake: the domain's features first, then the client's instance
// (claimed on its first login: a write), the installation id, a
// FAST token that has not expired (unless Config.NoFAST) and the pinned
// mechanism. The fields are written by that goroutine before it closes
// featDone (the features) and done (the rest), and read by the login only
// after; the warnings are logged by the login, in its own order.
type cacheRead struct {
	featDone, done chan struct{}
	start          time.Time

	feat    *cache.Features
	featErr error
	instErr error // the instance could not be claimed: no login

	uaID     string
	uaErr    error
	token    *login.Token
	tokenErr error
	pin      string
	pinErr   error
	// The message store's cursor, read unless Config.NoSync.
	cursor     string
	cursorRead bool
	cursorErr  error
	elapsed    time.Duration // the reads, from start to the last

	waited time.Duration // how long the login blocked on them
}

func startCacheRead(ctx context.Context, db *cache.DB, instance instanceFunc, cfg Config, domain, account string) *cacheRead {
	r := &cacheRead{featDone: make(chan struct{}), done: make(chan struct{}), start: time.Now()}
	go func() {
		defer close(r.done)
		if f, ok, err := db.Features(ctx, domain); err != nil {
			r.featErr = err
		} else if ok {
			r.feat = &f
		}
		close(r.featDone)
		inst, err := instance(ctx)
		if err != nil {
			r.instErr = err
			return
		}
		name := ""
		if inst != nil {
			r.uaID, name = inst.UserAgentID, inst.Name
		} else if r.uaID, r.uaErr = db.InstallationID(ctx); r.uaErr != nil {
			r.uaID = ""
		}
		if !cfg.NoFAST && !cfg.VerifyPassword {
			t, ok, err := db.FastTokenOf(ctx, account, name)
			switch {
			case err != nil:
				r.tokenErr = err
			case ok:
				r.token = &login.Token{Mechanism: t.Mechanism, Secret: t.Token, Expiry: t.Expiry}
			}
		}
		r.pin, _, r.pinErr = db.MechanismPin(ctx, account)
		if !cfg.NoSync {
			r.cursor, r.cursorErr = db.Cursor(ctx, account)
			r.cursorRead = true
		}
		r.elapsed = time.Since(r.start)
	}()
	return r
}

// block waits for ch, adding the time spent to r.waited.
func (r *cacheRead) block(ch chan struct{}) {
	select {
	case <-ch:
		return
	default:
	}
	t := time.Now()
	<-ch
	r.waited += time.Since(t)
}

// features waits for the cached features (nil if none or unreadable).
func (r *cacheRead) features(log zerolog.Logger) *cache.Features {
	r.block(r.featDone)
	if r.featErr != nil {
		log.Warn().Err(r.featErr).Msg("feature cache unreadable; reading features from the server")
	}
	return r.feat
}

// material waits for the rest of the reads: the installation id, the FAST
// token and the mechanism pin. An unreadable entry costs a warning; an
// instance that could not be claimed is an error.
func (r *cacheRead) material(log zerolog.Logger) (uaID string, token *login.Token, pin string, err error) {
	r.block(r.done)
	if r.instErr != nil {
		return "", nil, "", r.instErr
	}
	if r.uaErr != nil {
		log.Warn().Err(r.uaErr).Msg("no installation id; omitting the SASL2 user-agent")
	}
	if r.tokenErr != nil {
		log.Warn().Err(r.tokenErr).Msg("FAST token unreadable; logging in with the password")
	}
	if r.pinErr != nil {
		log.Warn().Err(r.pinErr).Msg("mechanism pin unreadable; downgrade protection limited to XEP-0474 for this login")
	}
	return r.uaID, r.token, r.pin, nil
}

// wait returns once the reads have ended.
func (r *cacheRead) wait() { <-r.done }

func forgetToken(ctx context.Context, db *cache.DB, account string, inst *cache.Instance, log zerolog.Logger) {
	if db == nil {
		return
	}
	if err := db.ForgetFastTokenOf(ctx, account, instanceName(inst)); err != nil {
		log.Warn().Err(err).Msg("could not delete a refused FAST token")
	}
}

// recordLogin stores, in one transaction, what the login taught: changed
// features, a new (or rotated) FAST token or the removal of a refused one,
// a stronger mechanism pin, and the SCRAM keys it derived (keys, nil if
// none).
func recordLogin(ctx context.Context, db *cache.DB, inst *cache.Instance, cfg Config, res *login.Result, stored *cache.Features, pin string, keys *cache.ScramKeys, log zerolog.Logger) {
	rec := cache.LoginRecord{Account: cfg.JID.Bare().String(), Instance: instanceName(inst), ScramKeys: keys}
	f := res.Features
	f.Domain = cfg.JID.Domainpart()
	f.SeenAt = time.Now().UTC()
	if stored == nil || !stored.Equal(f) || keyShareRecheckDue(stored, f.SeenAt) {
		rec.Features = &f // a recheck of the key shares refreshes SeenAt
	}
	switch t := res.NewToken; {
	case t != nil && !cfg.NoFAST:
		rec.Token = &cache.FastToken{Mechanism: t.Mechanism, Token: t.Secret, Expiry: t.Expiry}
	case res.TokenRejected != "":
		rec.ForgetToken = true
	}
	if !res.FAST && res.Mechanism != "" && !strings.HasPrefix(res.Mechanism, "HT-") && res.Mechanism != pin &&
		(pin == "" || login.Stronger(res.Mechanism, pin) || cfg.AllowDowngrade) {
		rec.Pin = res.Mechanism
	}
	if rec.Features == nil && rec.Token == nil && !rec.ForgetToken && rec.Pin == "" && rec.ScramKeys == nil {
		return
	}
	if err := db.RecordLogin(ctx, rec); err != nil {
		log.Warn().Err(err).Msg("could not record the login in the cache (features, FAST token, pin, SCRAM keys)")
	}
}

// instanceName is the name of inst ("" for the default instance, or none).
func instanceName(inst *cache.Instance) string {
	if inst == nil {
		return ""
	}
	return inst.Name
}
