package client

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

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

// resolve returns the addresses to try, in order (XEP-0368).
func resolve(ctx context.Context, cfg Config, cached *cache.Features) ([]target, error) {
	if cfg.Addr != "" {
		return addrTargets(cfg, cached)
	}
	recs, err := lookupSRV(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return srvTargets(cfg, recs), nil
}

// addrTargets is Config.Addr with its TLS mode: the one configured, else
// the one the cache remembers, else Direct TLS with a STARTTLS fallback.
func addrTargets(cfg Config, cached *cache.Features) ([]target, error) {
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

// srvRecord is one SRV record, from the Direct TLS service or not.
type srvRecord struct {
	srv    *net.SRV
	direct bool
}

// lookupSRV looks up the services Config.TLS allows: _xmpps-client (Direct
// TLS) and _xmpp-client (STARTTLS). A lookup that fails counts as no
// records, unless ctx ended.
func lookupSRV(ctx context.Context, cfg Config) ([]srvRecord, error) {
	domain := cfg.JID.Domainpart()
	var r Resolver = net.DefaultResolver
	if cfg.Resolver != nil {
		r = cfg.Resolver
	}
	var recs []srvRecord
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
				return nil, login.NewError(ctx, login.StepLookup, domain, login.ErrTimeout, err)
			}
			continue
		}
		for _, a := range addrs {
			if a.Target == "." || a.Target == "" {
				continue // RFC 2782: service decidedly not available
			}
			recs = append(recs, srvRecord{a, s.direct})
		}
	}
	return recs, nil
}

// srvTargets orders the records and makes them targets; with none, the
// domain itself (RFC 6120 §3.2.2).
func srvTargets(cfg Config, recs []srvRecord) []target {
	// net.LookupSRV orders each set by priority and weight; merge the two
	// sets by priority, Direct TLS first among equals (XEP-0368 §3).
	slices.SortStableFunc(recs, func(a, b srvRecord) int {
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
		host := strings.TrimSuffix(rc.srv.Target, ".")
		out = append(out, target{addr: net.JoinHostPort(host, strconv.Itoa(int(rc.srv.Port))), direct: rc.direct})
	}
	if len(out) > 0 {
		return out
	}
	domain := cfg.JID.Domainpart()
	if cfg.TLS == TLSDirect {
		return []target{{addr: net.JoinHostPort(domain, "5223"), direct: true}}
	}
	return []target{{addr: net.JoinHostPort(domain, "5222")}}
}

// tlsConn is a secured connection ready for the login.
type tlsConn struct {
	conn            *tls.Conn
	direct          bool
	startTLSOffered bool
}

// connect tries each target in order until one is connected and secured.
func connect(ctx context.Context, cfg Config, targets []target, adv *advice, info *Info, log zerolog.Logger) (tlsConn, error) {
	domain := cfg.JID.Domainpart()
	var errs []error
	for _, t := range targets {
		tc, err := connectOne(ctx, cfg, t, adv, info, log)
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
			tc, err = connectOne(ctx, cfg, target{addr: t.addr}, adv, info, log)
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
	return tlsConn{}, &login.Error{Step: login.StepConnect, Domain: domain, Kind: kindOf(errs), Err: errors.Join(errs...)}
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

func connectOne(ctx context.Context, cfg Config, t target, adv *advice, info *Info, log zerolog.Logger) (tlsConn, error) {
	domain := cfg.JID.Domainpart()
	connStart := time.Now()
	// With Fast Open and a cookie, connect returns before the SYN has
	// left: it leaves with the first write (the stream header, or the
	// ClientHello).
	raw, err := dialFunc(cfg)(ctx, "tcp", t.addr)
	info.Timings.Connect = time.Since(connStart)
	var fastOpen, backoff bool
	if err == nil {
		raw, fastOpen, backoff, err = checkFastOpen(ctx, cfg, adv, raw, t.addr, &info.Timings.Connect)
	}
	if cfg.Trace != nil && cfg.Trace.ConnectDone != nil {
		cfg.Trace.ConnectDone(t.addr, err)
	}
	if err != nil {
		return tlsConn{}, login.NewError(ctx, login.StepConnect, domain, login.ErrConnection, err)
	}
	info.Addr = t.addr
	if tc, ok := raw.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
		if idle, timeout, on := cfg.KeepAlive.values(); on {
			_ = setUserTimeout(tc, userTimeout(idle, timeout))
		}
	}
	var tc tlsConn
	tc.direct = t.direct
	if !t.direct {
		stStart := time.Now()
		// STARTTLS is pipelined when the cache says the server offers it.
		st, err := login.StartTLS(ctx, raw, cfg.JID, adv.features != nil && adv.features.StartTLS)
		info.Timings.StartTLS = time.Since(stStart)
		info.StartTLSRoundTrips = st.RoundTrips
		if err != nil {
			raw.Close()
			return tlsConn{}, err
		}
		tc.startTLSOffered = st.Offered
	}
	conn, err := secure(ctx, cfg, raw, t, adv, fastOpen, info)
	info.FastOpen.Backoff = backoff
	if err != nil {
		if fastOpen && notConnected(raw, err) {
			err = login.NewError(ctx, login.StepConnect, domain, login.ErrConnection, err)
		} else {
			err = login.NewError(ctx, login.StepTLS, domain, login.ErrTLS, err)
		}
		raw.Close()
		return tlsConn{}, err
	}
	log.Debug().Str("addr", t.addr).Bool("direct_tls", t.direct).Str("tls", info.TLSVersion).
		Bool("fast_open", info.FastOpen.Accepted).Str("group", info.KeyShare.Group).Msg("secured")
	tc.conn = conn
	return tc, nil
}

// secure runs the TLS handshake on raw, with the ClientHello's key shares
// chosen for Fast Open (applyKeySharePolicy), and records in info what
// the handshake and the kernel report: the key shares, the group, Fast
// Open.
func secure(ctx context.Context, cfg Config, raw net.Conn, t target, adv *advice, fastOpen bool, info *Info) (*tls.Conn, error) {
	tlsCfg := tlsConfig(cfg, t.direct)
	if fastOpen {
		adv.needFeatures() // the cached TLS group plans the ClientHello
	}
	info.KeyShare = KeyShare{Policy: applyKeySharePolicy(tlsCfg, cfg, adv.features, fastOpen)}
	tap := &helloTap{Conn: raw}
	tlsStart := time.Now()
	conn := tls.Client(tap, tlsCfg)
	err := conn.HandshakeContext(ctx)
	info.Timings.TLS = time.Since(tlsStart)
	tap.stop()
	info.KeyShare.Offered, info.KeyShare.HelloBytes, info.KeyShare.HelloRetry = tap.offered, tap.helloBytes, tap.hellos > 1
	info.FastOpen = fastOpenState(raw)
	cs := conn.ConnectionState()
	if cfg.Trace != nil && cfg.Trace.TLSDone != nil {
		cfg.Trace.TLSDone(cs, err)
	}
	if err != nil {
		return nil, err
	}
	info.DirectTLS = t.direct
	info.TLSVersion = tls.VersionName(cs.Version)
	info.KeyShare.Group = cs.CurveID.String()
	return conn, nil
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

// minUserTimeout is the least TCP_USER_TIMEOUT set on a connection.
const minUserTimeout = 5 * time.Minute

// userTimeout is how long written data may stay unacknowledged before the
// kernel fails the connection (Linux's TCP_USER_TIMEOUT). It is a backstop
// for what the liveness checks cannot see (a server that keeps writing but
// acknowledges nothing), not the bound on a silent link: the kernel counts
// a closed receive window against it even while the server acknowledges
// every window probe, and a live server busy with a burst (ejabberd writing
// thousands of messages to its archive) keeps its window closed for tens of
// seconds while it answers what it reads.
func userTimeout(idle, timeout time.Duration) time.Duration {
	return max(minUserTimeout, 2*(idle+timeout))
}
