package client

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/rs/zerolog"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/login"
)

// Dial connects, secures and logs in, and returns a client whose session is
// being served. ctx bounds the whole login (together with Config.Timeout);
// once Dial returns, ctx no longer affects the connection. With
// Config.Reconnect the client then stays connected until Close (see
// Client); reconnections are bounded by Config.Timeout each.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if err := validate(cfg); err != nil { // validate.go
		return nil, err
	}
	if d := cfg.timeout(); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	c := &Client{
		cfg:    cfg,
		log:    clientLogger(&cfg),
		online: make(chan struct{}),
		ended:  make(chan struct{}),
	}
	c.ev.init(cfg.OnEvent, &c.log)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	openStart := time.Now()
	db, ownDB, cacheFault, err := openCache(ctx, cfg, c.log) // cachefault.go
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.db, c.ownDB, c.cacheFault, c.openTime = db, ownDB, cacheFault, time.Since(openStart)
	l, _, err := c.connect(ctx, nil)
	if err != nil {
		c.cancel()
		c.closeCache()
		return nil, err
	}
	c.watch(l)
	close(c.ev.ready) // callbacks start now: Dial itself calls back nothing
	return c, nil
}

// dialLink connects, secures and logs in (resuming the stream management
// session resume names, if any), with the cache's help, and returns the new
// connection, not yet started. It takes up to three attempts, each on a new
// connection (see retry), and calls Config.Trace.LoginDone once with the
// outcome, whatever step ended it (see Trace).
func (c *Client) dialLink(ctx context.Context, resume *login.Resume) (l *link, err error) {
	if d := c.cfg.timeout(); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	d := &dialing{c: c, cfg: c.cfg, log: c.log, resume: resume, start: time.Now()}
	d.info.CacheFault = c.cacheFault
	if t := d.cfg.Trace; t != nil && t.LoginDone != nil {
		defer func() { t.LoginDone(d.info, err) }()
	}
	var open time.Duration
	instance := func(context.Context) (*cache.Instance, error) { return c.inst, nil }
	if c.link() == nil {
		// The first login: the instance is claimed (a write) alongside
		// the connect, not before it.
		open, instance = c.openTime, c.claimInstance
	}
	d.adv = startAdvice(ctx, c.db, instance, d.cfg, open, d.log)
	defer d.adv.wait()
	if err = d.lookup(ctx); err != nil {
		return nil, err
	}
	if c.db != nil {
		d.keys = &keyStore{db: c.db, account: d.cfg.JID.Bare().String(), log: d.log}
	}
	for attempt := 1; ; attempt++ {
		d.info.Attempts = attempt
		if err := d.needPassword(ctx); err != nil { // verify.go
			return nil, err
		}
		st, err := d.attempt(ctx)
		if err == nil {
			return d.loggedIn(ctx, attempt, st), nil
		}
		if !d.retry(ctx, attempt, err) {
			d.forgetKeys(ctx, err)
			return nil, err
		}
	}
}

// dialing is the state of one dialLink.
type dialing struct {
	c        *Client
	cfg      Config
	log      zerolog.Logger
	resume   *login.Resume
	start    time.Time
	info     Info
	adv      *advice
	password string
	targets  []target
	keys     *keyStore // nil without a cache

	tokenRetried bool   // a refused FAST token already cost an attempt
	ahead        *ahead // what the current attempt writes behind its authentication
	rejected     string // the condition a refused token was refused with, on an earlier attempt
}

// password returns Config.Password, or asks Config.PasswordFunc.
func password(ctx context.Context, cfg Config) (string, error) {
	if cfg.PasswordFunc == nil {
		return cfg.Password, nil
	}
	pw, err := cfg.PasswordFunc(ctx)
	if err != nil {
		return "", fmt.Errorf("client: password: %w", err)
	}
	return pw, nil
}

// lookup finds the addresses to try, with the cached features where they
// decide the TLS mode or the STARTTLS pipelining.
func (d *dialing) lookup(ctx context.Context) error {
	if d.cfg.Addr != "" && d.cfg.TLS == TLSAuto {
		d.adv.needFeatures() // the cache says Direct TLS or STARTTLS
	}
	lookupStart := time.Now()
	targets, err := resolve(ctx, d.cfg, d.adv.features)
	if err != nil {
		return err
	}
	d.info.Timings.Lookup = time.Since(lookupStart)
	if d.cfg.TLS != TLSDirect {
		// A STARTTLS target pipelines <starttls/> when the cache says the
		// server offers it (login.StartTLS); with Direct TLS only the login
		// needs the features.
		d.adv.needFeatures()
	}
	d.targets = targets
	return nil
}

// attempt connects and secures a connection (to the first target that
// answers), then logs in on it, planned from the advice. On a failed login
// the connection is closed.
func (d *dialing) attempt(ctx context.Context) (*login.Stream, error) {
	tc, err := connect(ctx, d.cfg, d.targets, d.adv, &d.info, d.log)
	if err != nil {
		return nil, err
	}
	// The first write after TLS carries it all.
	if err := d.adv.needAll(&d.info); err != nil {
		tc.conn.Close()
		return nil, err
	}
	d.info.Instance = instanceName(d.c.inst)
	loginStart := time.Now()
	st, err := login.Negotiate(ctx, tc.conn, d.loginConfig(tc))
	d.info.Timings.Login = time.Since(loginStart)
	if err != nil {
		tc.conn.Close()
		return nil, err
	}
	return st, nil
}

// loginConfig is the login's configuration for an attempt on tc.
func (d *dialing) loginConfig(tc tlsConn) login.Config {
	cfg, a := d.cfg, d.adv
	lcfg := login.Config{
		JID:                cfg.JID.Bare(),
		Password:           d.password,
		Features:           a.features,
		Path:               cfg.Path,
		Mechanisms:         cfg.Mechanisms,
		InsecureAllowPlain: cfg.InsecureAllowPlain,
		UserAgent:          login.UserAgent{ID: a.uaID, Device: cfg.Device},
		Tag:                cfg.Tag,
		Inactive:           cfg.Inactive,
		NoCarbons:          cfg.NoCarbons,
		NoSM:               cfg.NoSM,
		DirectTLS:          tc.direct,
		StartTLSOffered:    tc.startTLSOffered,
		Logger:             cfg.Logger,
		Token:              a.token,
		RequestToken:       d.c.db != nil && !cfg.NoFAST,
		Pin:                a.pin,
		AllowDowngrade:     cfg.AllowDowngrade,
		Resume:             d.resume,
	}
	if !cfg.NoSM {
		lcfg.OnStanzaOut = d.c.sm.Record
	}
	if d.keys != nil {
		lcfg.KeyStore = d.keys
	}
	if t := cfg.WireTrace; t != nil {
		lcfg.Trace = func(in bool, el []byte) { t(in, login.Redact(el)) }
	}
	if cfg.VerifyPassword {
		verifyPassword(&lcfg) // verify.go
	}
	d.ahead = nil
	if a.features != nil && a.haveCursor && d.resume == nil {
		// A warm login with a message store: the presence, the first
		// archive page and the markers go in the login's write (a resumed
		// session needs none: the server sends what was missed).
		d.ahead = newAhead(cfg, a.cursor)
		lcfg.AfterAuth = d.ahead.bytes()
	}
	return lcfg
}

// retry decides whether a failed attempt is worth another on a new
// connection, and prepares it. There are three reasons, tried in this
// order:
//   - the server refused the pipelined login (a policy-violation or
//     unsupported-stanza-type stream error), on the first attempt: once
//     more with the features read first, which the cache then remembers;
//   - the server refused the FAST token and closed the stream before the
//     password could follow (login.ErrTokenRejected), once: the token is
//     deleted and the password used;
//   - the cached features were stale (login.IsStale), on the first
//     attempt: once more, planned from the live features;
//   - a cached FAST token could not carry the login while the password
//     had not been asked for (login.ErrNeedPassword), once: with the
//     password, from features read afresh (verify.go).
//
// So a login takes at most three attempts: a refused pipelining or a
// stale cache, then a refused or unusable token. Failures before the
// login (lookup, connect, TLS) never match.
func (d *dialing) retry(ctx context.Context, attempt int, err error) bool {
	switch {
	case attempt == 1 && d.pipeliningRefused(err):
	case d.tokenRefused(ctx, err):
	case attempt == 1 && d.stale(err):
	case d.passwordNeeded(err): // verify.go
	default:
		return false
	}
	return true
}

// pipeliningRefused: a server that refuses pipelined data (or did not
// expect what the cache planned) gets the features first, and the cache
// remembers it.
func (d *dialing) pipeliningRefused(err error) bool {
	f := d.adv.features
	var serr *login.StreamError
	if f == nil || f.NoPipeline || !errors.As(err, &serr) ||
		(serr.Condition != "policy-violation" && serr.Condition != "unsupported-stanza-type") {
		return false
	}
	d.log.Info().Str("condition", serr.Condition).Msg("the server refused the pipelined login; retrying without pipelining")
	nf := *f
	nf.NoPipeline = true
	d.adv.features = &nf
	return true
}

// tokenRefused: the server refused the token and closed the stream before
// the password could follow: forget it, log in with the password.
func (d *dialing) tokenRefused(ctx context.Context, err error) bool {
	if d.adv.token == nil || d.tokenRetried || !errors.Is(err, login.ErrTokenRejected) {
		return false
	}
	d.log.Info().Msg("FAST token refused; retrying with the password")
	forgetToken(ctx, d.c.db, d.cfg.JID.Bare().String(), d.c.inst, d.log)
	d.adv.token, d.tokenRetried = nil, true
	if se := (*login.SASLError)(nil); errors.As(err, &se) {
		d.rejected = se.Condition // Info says it of the login that follows
	}
	return true
}

// stale: the server changed since the cache was written. The retry is
// planned from what it offers now; the cache is only written after a
// successful login.
func (d *dialing) stale(err error) bool {
	se, ok := login.IsStale(err)
	if !ok {
		return false
	}
	d.log.Info().Str("reason", se.Reason).Msg("feature cache stale; retrying with live features")
	live := se.Live
	live.Domain = d.cfg.JID.Domainpart()
	d.adv.features = &live
	return true
}

// forgetKeys deletes the cached SCRAM keys after a final failure that
// refused them: the password may have changed with the salt kept, so the
// next login derives them afresh.
func (d *dialing) forgetKeys(ctx context.Context, err error) {
	if d.keys == nil || !d.keys.used || !errors.Is(err, login.ErrAuth) {
		return
	}
	if ferr := d.c.db.ForgetScramKeys(ctx, d.cfg.JID.Bare().String()); ferr != nil {
		d.log.Warn().Err(ferr).Msg("could not forget SCRAM keys")
	}
}

// loggedIn completes Info, records what the login taught in the cache and
// returns the new link.
func (d *dialing) loggedIn(ctx context.Context, attempt int, st *login.Stream) *link {
	info, db, res := &d.info, d.c.db, &st.Result
	res.Features.FastOpenDropped = fastOpenDropped(d.adv.stored, info.FastOpen, time.Now())
	info.Result = *res
	if info.TokenRejected == "" {
		info.TokenRejected = d.rejected
	}
	info.ScramKeysCached = d.keys != nil && d.keys.used
	if attempt > 1 {
		info.Source = login.SourceNetwork
	}
	info.Timings.Total = time.Since(d.start)
	if db != nil {
		recordLogin(ctx, db, d.c.inst, d.cfg, res, d.adv.stored, d.adv.pin, d.keys.record(), d.log)
	}
	if t := info.NewToken; t != nil {
		// Stored; the application's copy of Info never holds the secret.
		info.NewToken = &login.Token{Mechanism: t.Mechanism, Expiry: t.Expiry}
	}
	d.log.Debug().
		Str("bound", res.JID.String()).
		Str("path", res.Path.String()).
		Str("features", res.Source.String()).
		Str("mechanism", res.Mechanism).
		Int("round_trips", res.RoundTrips).
		Dur("total", info.Timings.Total).
		Msg("logged in")
	l := newLink(&d.c.cfg, st, *info, db, &d.c.sm, d.log)
	l.dialStart = d.start
	if a := d.ahead; a != nil && res.AfterAuthSent {
		l.ahead = a
	} else if a != nil {
		// Written with a FAST token the server refused: answers to them,
		// if any come, are dropped; the sync asks again.
		l.stale = map[string]bool{a.mam.ID: true, a.mdsID: true}
	}
	return l
}

// clientLogger is cfg.Logger with the client's fields. A logger that never
// writes (the zero Logger, or one at zerolog.Disabled) is returned as is:
// With allocates a 500-byte buffer, kept for the client's life, which a
// fleet of silent bots would pay a thousand times for nothing.
func clientLogger(cfg *Config) zerolog.Logger {
	l := cfg.Logger
	if l.GetLevel() == zerolog.Disabled || reflect.ValueOf(l).IsZero() {
		return l
	}
	return l.With().Str("component", "client").Str("jid", cfg.JID.Bare().String()).Logger()
}
