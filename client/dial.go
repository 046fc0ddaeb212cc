package client

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/cache"
	"github.com/pipebind/pipebind/login"
)

// target is one address to try, with its TLS mode.
type target struct {
	addr   string
	direct bool
	// fallback: on a non-TLS answer, retry this address with STARTTLS.
	fallback bool
}

// Dial connects, secures and logs in, and returns a client whose session is
// being served. ctx bounds the whole login (together with Config.Timeout);
// once Dial returns, ctx no longer affects the connection. With
// Config.Reconnect the client then stays connected until Close (see
// Client); reconnections are bounded by Config.Timeout each.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.JID.Localpart() == "" || cfg.JID.Domainpart() == "" {
		return nil, fmt.Errorf("client: Config.JID %q must be an account address (user@domain)", cfg.JID)
	}
	if cfg.Password == "" && cfg.PasswordFunc == nil {
		return nil, errors.New("client: Config.Password or Config.PasswordFunc is required")
	}
	if d := cfg.timeout(); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	c := &Client{
		cfg:    cfg,
		log:    cfg.Logger.With().Str("component", "client").Str("jid", cfg.JID.Bare().String()).Logger(),
		online: make(chan struct{}),
		ended:  make(chan struct{}),
	}
	c.ev = newDispatcher(cfg.OnEvent, c.log)
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
		if ownDB {
			db.Close()
		}
		return nil, err
	}
	c.watch(l)
	close(c.ev.ready) // callbacks start now: Dial itself calls back nothing
	return c, nil
}

// dialLink connects, secures and logs in once (resuming the stream
// management session resume names, if any), with the cache's help, and
// returns the new connection, not yet started.
func (c *Client) dialLink(ctx context.Context, resume *login.Resume) (*link, error) {
	cfg, db, log := c.cfg, c.db, c.log
	if d := cfg.timeout(); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	start := time.Now()
	bare := cfg.JID.Bare()
	domain := cfg.JID.Domainpart()
	fail := func(err error) (*link, error) { return nil, err }
	var err error

	// The cache is read on a goroutine while the lookup, the TCP connect
	// and the TLS handshake are under way (see cacheRead); its results are
	// waited for where they are first needed: the features before the
	// first byte that depends on them (resolve with Config.Addr and
	// TLSAuto, STARTTLS pipelining), everything else before the first
	// write after TLS (login.Negotiate). The cache is advice: a broken
	// cache costs a round trip, not the login.
	var rd *cacheRead
	if db != nil {
		rd = startCacheRead(ctx, db, cfg, domain, bare.String())
		// Never leave the reads running past this login: the caller may
		// close db as soon as dialLink returns.
		defer rd.wait()
	}
	var info Info
	info.CacheFault = c.cacheFault
	firstLink := c.link() == nil
	var (
		cached *cache.Features
		stored *cache.Features // what the cache holds, to know whether to write
		uaID   string
		token  *login.Token
		pin    string
	)
	haveFeatures, haveAll := false, false
	needFeatures := func() {
		if haveFeatures {
			return
		}
		haveFeatures = true
		if rd != nil {
			cached = rd.features(log)
			stored = cached
		}
	}
	needAll := func() {
		needFeatures()
		if haveAll {
			return
		}
		haveAll = true
		if rd != nil {
			uaID, token, pin = rd.material(log)
			info.Timings.Cache, info.Timings.CacheWait = rd.elapsed, rd.waited
		}
		if firstLink {
			// The first login opened the file, before anything else.
			info.Timings.Cache += c.openTime
			info.Timings.CacheWait += c.openTime
		}
	}

	password := cfg.Password
	if cfg.PasswordFunc != nil {
		if password, err = cfg.PasswordFunc(ctx); err != nil {
			return fail(fmt.Errorf("client: password: %w", err))
		}
	}

	if cfg.Addr != "" && cfg.TLS == TLSAuto {
		needFeatures() // the cache says Direct TLS or STARTTLS
	}
	lookupStart := time.Now()
	targets, err := resolve(ctx, cfg, cached)
	if err != nil {
		return fail(err)
	}
	info.Timings.Lookup = time.Since(lookupStart)
	if cfg.TLS != TLSDirect {
		// A STARTTLS target pipelines <starttls/> when the cache says the
		// server offers it (startTLS); with Direct TLS only the login
		// needs the features.
		needFeatures()
	}

	var keys *keyStore
	if db != nil {
		keys = &keyStore{db: db, account: bare.String(), log: log}
	}
	tokenRetried := false
	for attempt := 1; ; attempt++ {
		info.Attempts = attempt
		tc, err := connect(ctx, cfg, targets, cached, &info, log)
		if err != nil {
			return fail(err)
		}
		needAll() // the first write after TLS carries it all
		lcfg := login.Config{
			JID:                bare,
			Password:           password,
			Features:           cached,
			Path:               cfg.Path,
			Mechanisms:         cfg.Mechanisms,
			InsecureAllowPlain: cfg.InsecureAllowPlain,
			UserAgent:          login.UserAgent{ID: uaID, Device: cfg.Device},
			Tag:                cfg.Tag,
			Inactive:           cfg.Inactive,
			NoCarbons:          cfg.NoCarbons,
			NoSM:               cfg.NoSM,
			DirectTLS:          tc.direct,
			StartTLSOffered:    tc.startTLSOffered,
			Logger:             cfg.Logger,
			Token:              token,
			RequestToken:       db != nil && !cfg.NoFAST,
			Pin:                pin,
			AllowDowngrade:     cfg.AllowDowngrade,
			Resume:             resume,
		}
		if !cfg.NoSM {
			lcfg.OnStanzaOut = c.sm.onStanza
		}
		if keys != nil {
			lcfg.KeyStore = keys
		}
		loginStart := time.Now()
		sess, res, err := login.Negotiate(ctx, tc.conn, lcfg)
		info.Timings.Login = time.Since(loginStart)
		if err != nil {
			tc.conn.Close()
			var serr *login.StreamError
			if attempt == 1 && cached != nil && !cached.NoPipeline && errors.As(err, &serr) &&
				(serr.Condition == "policy-violation" || serr.Condition == "unsupported-stanza-type") {
				// A server that refuses pipelined data (or did not expect
				// what the cache planned): once more, features first, and
				// remember it.
				log.Info().Str("condition", serr.Condition).Msg("the server refused the pipelined login; retrying without pipelining")
				f := *cached
				f.NoPipeline = true
				cached = &f
				continue
			}
			if token != nil && errors.Is(err, login.ErrTokenRejected) && !tokenRetried {
				// The server refused the token and closed the stream before
				// the password could follow: forget it, log in with the
				// password on a new connection.
				log.Info().Msg("FAST token refused; retrying with the password")
				forgetToken(ctx, db, bare.String(), log)
				token, tokenRetried = nil, true
				continue
			}
			if se, ok := login.IsStale(err); ok && attempt == 1 {
				// The server changed since the cache was written. Retry
				// once, planned from what it offers now; the cache is only
				// written after a successful login.
				log.Info().Str("reason", se.Reason).Msg("feature cache stale; retrying with live features")
				live := se.Live
				live.Domain = domain
				cached = &live
				continue
			}
			if keys != nil && keys.used && errors.Is(err, login.ErrAuth) {
				// The cached keys were refused: the password may have
				// changed with the salt kept. Derive them afresh next time.
				if ferr := db.ForgetScramKeys(ctx, bare.String()); ferr != nil {
					log.Warn().Err(ferr).Msg("could not forget SCRAM keys")
				}
			}
			if cfg.Trace != nil && cfg.Trace.LoginDone != nil {
				cfg.Trace.LoginDone(info, err)
			}
			return fail(err)
		}
		info.Result = *res
		info.ScramKeysCached = keys != nil && keys.used
		if attempt > 1 {
			info.Source = login.SourceNetwork
		}
		info.Timings.Total = time.Since(start)
		if db != nil {
			recordLogin(ctx, db, cfg, res, stored, pin, log)
		}
		if t := info.NewToken; t != nil {
			// Stored; the application's copy of Info never holds the secret.
			info.NewToken = &login.Token{Mechanism: t.Mechanism, Expiry: t.Expiry}
		}
		log.Debug().
			Str("bound", res.JID.String()).
			Str("path", res.Path.String()).
			Str("features", res.Source.String()).
			Str("mechanism", res.Mechanism).
			Int("round_trips", res.RoundTrips).
			Dur("total", info.Timings.Total).
			Msg("logged in")
		if cfg.Trace != nil && cfg.Trace.LoginDone != nil {
			cfg.Trace.LoginDone(info, nil)
		}
		return newLink(cfg, sess, tc.conn, info, db, &c.sm, log), nil
	}
}

// cacheRead is the cache's part of a login, read on its own goroutine
// (startCacheRead) so that it overlaps the lookup, the TCP connect and the
// TLS handshake: the domain's features first, then the installation id, a
// FAST token that has not expired (unless Config.NoFAST) and the pinned
// mechanism. The fields are written by that goroutine before it closes
// featDone (the features) and done (the rest), and read by the login only
// after; the warnings are logged by the login, in its own order.
type cacheRead struct {
	featDone, done chan struct{}
	start          time.Time

	feat    *cache.Features
	featErr error

	uaID     string
	uaErr    error
	token    *login.Token
	tokenErr error
	pin      string
	pinErr   error
	elapsed  time.Duration // the reads, from start to the last

	waited time.Duration // how long the login blocked on them
}

func startCacheRead(ctx context.Context, db *cache.DB, cfg Config, domain, account string) *cacheRead {
	r := &cacheRead{featDone: make(chan struct{}), done: make(chan struct{}), start: time.Now()}
	go func() {
		defer close(r.done)
		if f, ok, err := db.Features(ctx, domain); err != nil {
			r.featErr = err
		} else if ok {
			r.feat = &f
		}
		close(r.featDone)
		r.uaID, r.uaErr = db.InstallationID(ctx)
		if r.uaErr != nil {
			r.uaID = ""
		}
		if !cfg.NoFAST {
			t, ok, err := db.FastTokenFor(ctx, account)
			switch {
			case err != nil:
				r.tokenErr = err
			case ok:
				r.token = &login.Token{Mechanism: t.Mechanism, Secret: t.Token, Expiry: t.Expiry}
			}
		}
		r.pin, _, r.pinErr = db.MechanismPin(ctx, account)
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
// token and the mechanism pin. An unreadable entry costs a warning.
func (r *cacheRead) material(log zerolog.Logger) (uaID string, token *login.Token, pin string) {
	r.block(r.done)
	if r.uaErr != nil {
		log.Warn().Err(r.uaErr).Msg("no installation id; omitting the SASL2 user-agent")
	}
	if r.tokenErr != nil {
		log.Warn().Err(r.tokenErr).Msg("FAST token unreadable; logging in with the password")
	}
	if r.pinErr != nil {
		log.Warn().Err(r.pinErr).Msg("mechanism pin unreadable; downgrade protection limited to XEP-0474 for this login")
	}
	return r.uaID, r.token, r.pin
}

// wait returns once the reads have ended.
func (r *cacheRead) wait() { <-r.done }

func forgetToken(ctx context.Context, db *cache.DB, account string, log zerolog.Logger) {
	if db == nil {
		return
	}
	if err := db.ForgetFastToken(ctx, account); err != nil {
		log.Warn().Err(err).Msg("could not delete a refused FAST token")
	}
}

// recordLogin stores, in one transaction, what the login taught: changed
// features, a new (or rotated) FAST token or the removal of a refused one,
// and a stronger mechanism pin.
func recordLogin(ctx context.Context, db *cache.DB, cfg Config, res *login.Result, stored *cache.Features, pin string, log zerolog.Logger) {
	rec := cache.LoginRecord{Account: cfg.JID.Bare().String()}
	f := res.Features
	f.Domain = cfg.JID.Domainpart()
	f.SeenAt = time.Now().UTC()
	if stored == nil || !stored.Equal(f) {
		rec.Features = &f
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
	if rec.Features == nil && rec.Token == nil && !rec.ForgetToken && rec.Pin == "" {
		return
	}
	if err := db.RecordLogin(ctx, rec); err != nil {
		log.Warn().Err(err).Msg("could not record the login in the cache (features, FAST token, pin)")
	}
}

// resolve returns the addresses to try, in order (XEP-0368).
func resolve(ctx context.Context, cfg Config, cached *cache.Features) ([]target, error) {
	domain := cfg.JID.Domainpart()
	if cfg.Addr != "" {
		if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
			return nil, fmt.Errorf("client: Config.Addr: %w", err)
		}
		switch cfg.TLS {
		case TLSDirect:
			return []target{{addr: cfg.Addr, direct: true}}, nil
		case TLSStartTLS:
			return []target{{addr: cfg.Addr}}, nil
		}
		if cached != nil {
			return []target{{addr: cfg.Addr, direct: cached.DirectTLS}}, nil
		}
		return []target{{addr: cfg.Addr, direct: true, fallback: true}}, nil
	}
	var r Resolver = net.DefaultResolver
	if cfg.Resolver != nil {
		r = cfg.Resolver
	}
	type rec struct {
		srv    *net.SRV
		direct bool
	}
	var recs []rec
	var lookupErrs []error
	for _, s := range []struct {
		service string
		direct  bool
	}{{"xmpps-client", true}, {"xmpp-client", false}} {
		if (cfg.TLS == TLSDirect && !s.direct) || (cfg.TLS == TLSStartTLS && s.direct) {
			continue
		}
		_, addrs, err := r.LookupSRV(ctx, s.service, "tcp", domain)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctxError(ctx, "lookup", domain, login.ErrTimeout, err)
			}
			lookupErrs = append(lookupErrs, err)
			continue
		}
		for _, a := range addrs {
			if a.Target == "." || a.Target == "" {
				continue // RFC 2782: service decidedly not available
			}
			recs = append(recs, rec{a, s.direct})
		}
	}
	// net.LookupSRV orders each set by priority and weight; merge the two
	// sets by priority, Direct TLS first among equals (XEP-0368 §3).
	slices.SortStableFunc(recs, func(a, b rec) int {
		if c := cmp.Compare(a.srv.Priority, b.srv.Priority); c != 0 {
			return c
		}
		switch {
		case a.direct && !b.direct:
			return -1
		case b.direct && !a.direct:
			return 1
		}
		return 0
	})
	var out []target
	for _, rc := range recs {
		host := rc.srv.Target
		if len(host) > 0 && host[len(host)-1] == '.' {
			host = host[:len(host)-1]
		}
		out = append(out, target{addr: net.JoinHostPort(host, strconv.Itoa(int(rc.srv.Port))), direct: rc.direct})
	}
	if len(out) == 0 {
		// RFC 6120 §3.2.2: no SRV records, fall back to the domain.
		if cfg.TLS == TLSDirect {
			out = append(out, target{addr: net.JoinHostPort(domain, "5223"), direct: true})
		} else {
			out = append(out, target{addr: net.JoinHostPort(domain, "5222")})
		}
	}
	_ = lookupErrs
	return out, nil
}

// tlsConn is a secured connection ready for the login.
type tlsConn struct {
	conn            *tls.Conn
	direct          bool
	startTLSOffered bool
}

// connect tries each target in order until one is connected and secured.
func connect(ctx context.Context, cfg Config, targets []target, cached *cache.Features, info *Info, log zerolog.Logger) (tlsConn, error) {
	domain := cfg.JID.Domainpart()
	var errs []error
	for _, t := range targets {
		tc, err := connectOne(ctx, cfg, t, cached, info, log)
		if err == nil {
			return tc, nil
		}
		var le *login.Error
		if errors.As(err, &le) && (errors.Is(err, login.ErrTLS) && !isNotTLS(err)) {
			// A certificate that does not verify is an answer, not an
			// unreachable address: never try further addresses around it.
			return tlsConn{}, err
		}
		if t.fallback && isNotTLS(err) {
			log.Debug().Str("addr", t.addr).Msg("no TLS on this address; trying STARTTLS")
			tc, err = connectOne(ctx, cfg, target{addr: t.addr}, cached, info, log)
			if err == nil {
				return tc, nil
			}
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 1 {
		return tlsConn{}, errs[0]
	}
	return tlsConn{}, &login.Error{Step: "connect", Domain: domain, Kind: kindOf(errs), Err: errors.Join(errs...)}
}

func kindOf(errs []error) error {
	for _, k := range []error{login.ErrTimeout, login.ErrTLS, login.ErrRefused, login.ErrProtocol} {
		for _, e := range errs {
			if errors.Is(e, k) {
				return k
			}
		}
	}
	return login.ErrConnection
}

func isNotTLS(err error) bool {
	var rh tls.RecordHeaderError
	return errors.As(err, &rh)
}

func connectOne(ctx context.Context, cfg Config, t target, cached *cache.Features, info *Info, log zerolog.Logger) (tlsConn, error) {
	domain := cfg.JID.Domainpart()
	dial := cfg.DialFunc
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	connStart := time.Now()
	raw, err := dial(ctx, "tcp", t.addr)
	if cfg.Trace != nil && cfg.Trace.ConnectDone != nil {
		cfg.Trace.ConnectDone(t.addr, err)
	}
	if err != nil {
		return tlsConn{}, ctxError(ctx, "connect", domain, login.ErrConnection, err)
	}
	info.Timings.Connect = time.Since(connStart)
	info.Addr = t.addr
	if tc, ok := raw.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	tlsCfg := tlsConfig(cfg, t.direct)
	var tc tlsConn
	tc.direct = t.direct
	if !t.direct {
		stStart := time.Now()
		offered, rts, err := startTLS(ctx, raw, cfg.JID, cached)
		info.Timings.StartTLS = time.Since(stStart)
		info.StartTLSRoundTrips = rts
		if err != nil {
			raw.Close()
			return tlsConn{}, err
		}
		tc.startTLSOffered = offered
	}
	tlsStart := time.Now()
	conn := tls.Client(raw, tlsCfg)
	err = conn.HandshakeContext(ctx)
	info.Timings.TLS = time.Since(tlsStart)
	if cfg.Trace != nil && cfg.Trace.TLSDone != nil {
		cfg.Trace.TLSDone(conn.ConnectionState(), err)
	}
	if err != nil {
		raw.Close()
		return tlsConn{}, ctxError(ctx, "tls", domain, login.ErrTLS, err)
	}
	cs := conn.ConnectionState()
	info.DirectTLS = t.direct
	info.TLSVersion = tls.VersionName(cs.Version)
	log.Debug().Str("addr", t.addr).Bool("direct_tls", t.direct).Str("tls", info.TLSVersion).Msg("secured")
	tc.conn = conn
	return tc, nil
}

func tlsConfig(cfg Config, direct bool) *tls.Config {
	var c *tls.Config
	if cfg.TLSConfig != nil {
		c = cfg.TLSConfig.Clone()
	} else {
		c = &tls.Config{}
	}
	if c.ServerName == "" {
		c.ServerName = cfg.JID.Domainpart()
	}
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	if direct && len(c.NextProtos) == 0 {
		// XEP-0368 §3: Direct TLS negotiates ALPN "xmpp-client".
		c.NextProtos = []string{"xmpp-client"}
	}
	return c
}

// startTLS negotiates STARTTLS (RFC 6120 §5) on a plain connection. When the
// cache says the server offers it, the header and <starttls/> go in one
// write (1 round trip); otherwise the features are read first (2).
func startTLS(ctx context.Context, conn net.Conn, j jid.JID, cached *cache.Features) (offered bool, roundTrips int, err error) {
	domain := j.Domainpart()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	wrap := func(kind error, err error) error {
		return ctxError(ctx, "starttls", domain, kind, err)
	}
	header := fmt.Sprintf("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='%s' from='%s'>", xmlEscape(domain), xmlEscape(j.Bare().String()))
	const req = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
	pipelined := cached != nil && cached.StartTLS
	first := header
	if pipelined {
		first += req
	}
	if _, err := conn.Write([]byte(first)); err != nil {
		return false, 0, wrap(login.ErrConnection, err)
	}
	roundTrips = 1
	// The server sends nothing after <proceed/> until the TLS handshake, so
	// a buffering decoder loses nothing here.
	d := xml.NewDecoder(conn)
	var sawHeader bool
	for {
		tok, err := d.Token()
		if err != nil {
			return offered, roundTrips, wrap(login.ErrConnection, err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch {
		case start.Name.Space == login.NSStream && start.Name.Local == "stream":
			sawHeader = true
		case !sawHeader:
			return offered, roundTrips, wrap(login.ErrProtocol, fmt.Errorf("expected a stream header, got <%s>", start.Name.Local))
		case start.Name.Space == login.NSStream && start.Name.Local == "features":
			var f struct {
				StartTLS *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
			}
			if err := d.DecodeElement(&f, &start); err != nil {
				return offered, roundTrips, wrap(login.ErrProtocol, err)
			}
			offered = f.StartTLS != nil
			if !offered {
				// Never continue in plain text.
				return false, roundTrips, wrap(login.ErrTLS, errors.New("the server does not offer STARTTLS"))
			}
			if !pipelined {
				if _, err := conn.Write([]byte(req)); err != nil {
					return offered, roundTrips, wrap(login.ErrConnection, err)
				}
				roundTrips++
			}
		case start.Name.Space == login.NSTLS && start.Name.Local == "proceed":
			if err := d.Skip(); err != nil {
				return offered, roundTrips, wrap(login.ErrProtocol, err)
			}
			return offered, roundTrips, nil
		case start.Name.Space == login.NSTLS && start.Name.Local == "failure":
			return offered, roundTrips, wrap(login.ErrTLS, errors.New("the server refused STARTTLS"))
		case start.Name.Space == login.NSStream && start.Name.Local == "error":
			return offered, roundTrips, wrap(login.ErrRefused, errors.New("stream error during STARTTLS"))
		default:
			return offered, roundTrips, wrap(login.ErrProtocol, fmt.Errorf("unexpected <%s> during STARTTLS", start.Name.Local))
		}
	}
}

// ctxError builds a *login.Error; when ctx has ended, the error matches
// the context's error (and ErrTimeout for a deadline) whatever the cause.
func ctxError(ctx context.Context, step, domain string, kind, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		kind = context.Canceled
		if errors.Is(cerr, context.DeadlineExceeded) {
			kind = login.ErrTimeout
		}
		if !errors.Is(err, cerr) {
			err = fmt.Errorf("%w (%v)", cerr, err)
		}
	}
	return &login.Error{Step: step, Domain: domain, Kind: kind, Err: err}
}

func xmlEscape(s string) string {
	var b []byte
	for _, r := range s {
		switch r {
		case '\'':
			b = append(b, "&apos;"...)
		case '"':
			b = append(b, "&quot;"...)
		case '&':
			b = append(b, "&amp;"...)
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		default:
			b = append(b, string(r)...)
		}
	}
	return string(b)
}
