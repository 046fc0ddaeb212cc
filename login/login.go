package login

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"github.com/pipebind/pipebind/features"
	"github.com/pipebind/pipebind/sm"
	"github.com/pipebind/pipebind/wire"
)

// Path is the way a login authenticates and binds.
type Path uint8

const (
	// PathAuto picks the best path the server is known to support:
	// sasl2 > bind2-draft > classic.
	PathAuto Path = iota
	// PathSASL2 is SASL2 (XEP-0388) with inline Bind 2 (XEP-0386).
	PathSASL2
	// PathBind2Draft is the XEP-0386 v0.3.0 draft (urn:xmpp:bind2:0):
	// header, auth, restart header and bind in one write.
	PathBind2Draft
	// PathClassic is RFC 6120 SASL, stream restart and resource binding.
	PathClassic
)

// String returns "auto", "sasl2", "bind2-draft" or "classic".
func (p Path) String() string {
	switch p {
	case PathSASL2:
		return "sasl2"
	case PathBind2Draft:
		return "bind2-draft"
	case PathClassic:
		return "classic"
	}
	return "auto"
}

// ParsePath is the inverse of Path.String.
func ParsePath(s string) (Path, error) {
	for _, p := range []Path{PathAuto, PathSASL2, PathBind2Draft, PathClassic} {
		if p.String() == s {
			return p, nil
		}
	}
	return PathAuto, fmt.Errorf("login: unknown path %q (want auto, sasl2, bind2-draft or classic)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (p Path) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// Source says where the features that planned a login's first write came
// from.
type Source uint8

const (
	// SourceNetwork: the features were read from the server first.
	SourceNetwork Source = iota
	// SourceCache: the first write was planned from cached features.
	SourceCache
)

// String returns "network" or "cache".
func (s Source) String() string {
	if s == SourceCache {
		return "cache"
	}
	return "network"
}

// MarshalText implements encoding.TextMarshaler.
func (s Source) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UserAgent is the SASL2 <user-agent/> (XEP-0388).
type UserAgent struct {
	// ID is stable per installation (a UUID); required by FAST and useful to
	// servers. Empty omits the element.
	ID string
	// Software defaults to "pipebind".
	Software string
	// Device is a human-readable device name; empty omits it.
	Device string
}

// Config configures one login. Its zero value is not usable: JID and
// Password are required.
type Config struct {
	// JID is the account's address; only the bare JID is used.
	JID jid.JID
	// Password of the account. Never logged.
	Password string
	// Features is what the cache knows of the server; nil means a cache
	// miss: the server's features are read before the first SASL write.
	Features *features.Features
	// Path forces a path; PathAuto (zero) picks the best one offered.
	Path Path
	// Mechanisms lists the SASL mechanisms the client may use, most
	// preferred first. Nil means DefaultMechanisms().
	Mechanisms []string
	// KeyStore caches SCRAM's ClientKey and ServerKey, so that a login with
	// an unchanged salt and iteration count skips PBKDF2; nil derives them
	// on every login.
	KeyStore KeyStore
	// InsecureAllowPlain allows PLAIN over a TLS connection whose
	// certificate was not verified. Never set it outside tests.
	InsecureAllowPlain bool
	// UserAgent is sent inside SASL2 <authenticate>.
	UserAgent UserAgent
	// Tag is the Bind 2 client tag; empty means "pipebind".
	Tag string
	// Resource is requested in classic resource binding; empty lets the
	// server choose.
	Resource string
	// Inactive sets the XEP-0352 client state to inactive at bind time (a
	// bot that only needs pushes); otherwise the client starts active.
	Inactive bool
	// NoCarbons, NoSM switch off enabling Message Carbons and Stream
	// Management at bind time.
	NoCarbons, NoSM bool
	// DirectTLS reports that conn uses Direct TLS (XEP-0368) rather than
	// STARTTLS; it is recorded in the features for the next login.
	DirectTLS bool
	// StartTLSOffered reports that the server offered STARTTLS before TLS
	// (recorded in the features).
	StartTLSOffered bool
	// Logger receives debug events; the zero Logger is silent. Credentials
	// and SASL payloads are never logged.
	Logger zerolog.Logger

	// Token is a FAST token (XEP-0484) to log in with instead of the
	// password: one round trip and no password hashing. It is used when the
	// server offers its mechanism inline in SASL2 and the connection allows
	// it (FASTAllowed); an expired token is never tried. If the server
	// refuses it, the login falls back to the password on the same stream
	// and Result.TokenRejected says why: the caller deletes the token.
	Token *Token
	// RequestToken asks the server for a FAST token on a password login
	// when it offers FAST (Result.NewToken holds it). It needs
	// UserAgent.ID: FAST tokens are issued per installation.
	RequestToken bool
	// Pin is the mechanism pinned for this account: the strongest password
	// mechanism it has used (see Stronger). A password login that would use
	// a weaker one fails with a *DowngradeError (matching ErrInsecure and
	// ErrDowngrade) after the live features were read, never on cached
	// ones alone. Empty pins nothing.
	Pin string
	// AllowDowngrade lets a login use a mechanism weaker than Pin: the
	// explicit override for a server that really lost its stronger
	// mechanisms (for example behind a new TLS-terminating proxy).
	AllowDowngrade bool
	// Resume asks the server to resume a stream management session
	// (XEP-0198) inline in the SASL2 <authenticate>. When it resumes,
	// Result.Resumed is set, no bind happens, and the caller re-sends the
	// stanzas the server's Result.ResumedH does not acknowledge. When it
	// cannot, Result.ResumeFailed holds the condition and a fresh session is
	// bound in the same round trip. Ignored on other paths.
	Resume *Resume
	// OnStanzaOut, if set, is called with every complete stanza (message,
	// presence, iq) written on the connection after the login, in order,
	// from the writing goroutine: stream management's unacked queue
	// (sm.Session.Record). raw is only valid during the call.
	OnStanzaOut func(raw []byte, k wire.Kind)
	// Trace, if set, sees every top-level unit of the stream in both
	// directions, from the first byte after TLS (wire.Options.Trace): raw,
	// secrets included. Pass it through Redact before showing it.
	Trace func(in bool, element []byte)
	// AfterAuth are stanzas (the initial presence, an archive query, a
	// marker fetch, ...) to write in the same write as the client's final
	// authentication message, right behind it, when the login is expected
	// to succeed: a FAST token, PLAIN (allowed only over a verified
	// certificate), or SCRAM with keys the KeyStore held. The server
	// processes them after <success> and answers them in the login's own
	// round trip (SASL2; on the v0.3.0 path, behind <bind/>). Whether they
	// went with the authentication that succeeded is Result.AfterAuthSent:
	// if not (not sent, or sent with a FAST token the server refused), the
	// caller sends them again after the login; answers the server gave to
	// the refused attempt are skipped by the login. Ignored on the classic
	// path.
	AfterAuth []byte
}

// Token is a FAST token as the server issued it. Secret is as sensitive as
// a password: never log it.
type Token struct {
	// Mechanism is the HT-* mechanism the token is bound to.
	Mechanism string
	// Secret is the token string as sent by the server.
	Secret []byte
	// Expiry is when the server stops accepting it.
	Expiry time.Time
}

// Resume identifies a stream management session to resume (package sm's
// type).
type Resume = sm.Resume

// DefaultMechanisms returns the mechanism preference used when
// Config.Mechanisms is nil: channel binding first, PLAIN last. It is a
// copy, the caller's to change: the order also ranks the mechanisms for
// the downgrade pin (Stronger), which no importer can weaken.
func DefaultMechanisms() []string { return slices.Clone(mechanismStrength[:]) }

// mechanismStrength lists the password mechanisms this package implements,
// strongest first: channel binding, then the hash, PLAIN last.
var mechanismStrength = [...]string{
	"SCRAM-SHA-512-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS",
	"SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN",
}

// SMState is what the server said about stream management at bind time
// (package sm's type).
type SMState = sm.State

// Flight is one round trip after TLS as the client saw it: when its first
// byte was written and when the first byte of the answer arrived (package
// wire's type).
type Flight = wire.Flight

// Result describes a successful login.
type Result struct {
	// JID is the bound full JID.
	JID jid.JID
	// Path is the path taken.
	Path Path
	// Source is where the features that planned the first write came from.
	Source Source
	// Mechanism is the SASL mechanism used.
	Mechanism string
	// RoundTrips counts the client's write-then-wait turns after TLS, as
	// measured on the connection.
	RoundTrips int
	// Flights has one entry per round trip.
	Flights []Flight
	// BytesOut, BytesIn count application bytes after TLS.
	BytesOut, BytesIn int64
	// SM is the stream management state enabled at bind time.
	SM SMState
	// Carbons reports that Message Carbons were enabled.
	Carbons bool
	// Draft is the v0.3.0 <bound> (latest-id, unreads); nil on other paths.
	Draft *DraftBound
	// Features is what the server offered on this login (pre-auth features
	// with the post-auth ones folded in), to be cached.
	Features features.Features
	// Stale reports that the live features differed from the cached ones
	// (the TLS group included, see features.Features.TLSGroup): the cache
	// entry is rewritten. Only a difference that breaks the plan of the
	// first write costs a retry (IsStale).
	Stale bool
	// FAST reports that the login authenticated with Config.Token.
	FAST bool
	// TokenRejected is the SASL condition with which the server refused
	// Config.Token (the login then used the password); empty otherwise.
	TokenRejected string
	// NewToken is a FAST token the server issued on this login (requested,
	// or a rotation of Config.Token); nil when none.
	NewToken *Token
	// AfterAuthSent reports that Config.AfterAuth went out with the
	// authentication the server accepted: their answers follow on the
	// stream.
	AfterAuthSent bool
	// TokenDropped says why a FAST token the server issued was not kept
	// (longer than the client stores, or without a valid expiry); the
	// login succeeded all the same. Empty otherwise.
	TokenDropped string
	// Resumed reports that the stream management session of Config.Resume
	// was resumed: nothing was bound, and ResumedH is how many of the
	// client's stanzas the server had received.
	Resumed  bool
	ResumedH uint32
	// ResumeFailed is the condition with which the server refused to resume
	// (a fresh session was bound instead); empty otherwise.
	ResumeFailed string
	// Started and Done bound the login (after TLS).
	Started, Done time.Time
}

// Stream is a logged-in stream, as Negotiate hands it over.
type Stream struct {
	// Session is the mellium session, ready to be served: its decoder has
	// consumed exactly the login's answers.
	Session *xmpp.Session
	// Conn is the stream layer under Session: the stanza counters of
	// stream management, the inbound tap, the limits. Write to it directly
	// only before Session is served (sm.Session.Resend).
	Conn *wire.Conn
	// Result describes the login.
	Result Result
}

// Negotiate logs in over conn, which must be an established TLS connection
// (Direct TLS or after STARTTLS), and returns the logged-in stream.
//
// On failure the error is a *Error; if it is a stale-cache failure
// (IsStale), the caller may store the live features and retry once on a new
// connection. Negotiate never closes conn.
func Negotiate(ctx context.Context, conn net.Conn, cfg Config) (*Stream, error) {
	n, err := newNegotiation(conn, cfg)
	if err != nil {
		return nil, err
	}
	// The context bounds the login: when it ends, every read and write on
	// the connection fails at once (mellium's own watcher is not reliable,
	// see wire.Conn.SetDeadline).
	stop := context.AfterFunc(ctx, n.conn.Abort)
	s, err := xmpp.NewSession(ctx, n.domain, n.bare, n.conn, 0, n.negotiate)
	if !stop() && err == nil {
		err = ctx.Err() // it ended just as the login did: the connection is dead
	}
	if err != nil {
		return nil, classify(ctx, n.step, n.res.Path, n.domain.String(), err)
	}
	return &Stream{Session: s, Conn: n.conn, Result: n.res}, nil
}

// negotiation is the state of one login.
type negotiation struct {
	cfg    Config
	bare   jid.JID
	domain jid.JID
	conn   *wire.Conn
	tls    tls.ConnectionState
	log    zerolog.Logger
	step   Step
	res    Result

	tokenRefused bool // Config.Token was refused: plan with the password
	resumeSent   bool // a <resume/> went out inside <authenticate>
	afterWritten bool // Config.AfterAuth went out (with the attempt now current, unless tokenRefused)
	keysHit      bool // the KeyStore held SCRAM keys for this login
}

func newNegotiation(conn net.Conn, cfg Config) (*negotiation, error) {
	if cfg.JID.Localpart() == "" {
		return nil, &Error{Step: StepConfig, Kind: ErrConfig, Err: fmt.Errorf("JID %q has no localpart", cfg.JID)}
	}
	if err := CheckMechanisms(cfg.Mechanisms); err != nil {
		return nil, &Error{Step: StepConfig, Domain: cfg.JID.Domainpart(), Kind: ErrConfig, Err: err}
	}
	tc, ok := conn.(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		return nil, &Error{Step: StepConfig, Domain: cfg.JID.Domainpart(), Kind: ErrTLS, Err: fmt.Errorf("%T is not a TLS connection", conn)}
	}
	n := &negotiation{
		cfg:    cfg,
		bare:   cfg.JID.Bare(),
		domain: cfg.JID.Domain(),
		conn:   wire.New(conn, wire.Options{OnStanzaOut: cfg.OnStanzaOut, Trace: cfg.Trace}),
		tls:    tc.ConnectionState(),
		log:    cfg.Logger.With().Str("component", "login").Str("domain", cfg.JID.Domainpart()).Logger(),
	}
	if n.cfg.Mechanisms == nil {
		n.cfg.Mechanisms = DefaultMechanisms()
	}
	if n.cfg.Tag == "" {
		n.cfg.Tag = "pipebind"
	}
	if n.cfg.UserAgent.Software == "" {
		n.cfg.UserAgent.Software = "pipebind"
	}
	return n, nil
}

// negotiate is the xmpp.Negotiator: it runs the whole login in one call and
// returns with the Ready bit and a nil ReadWriter, so mellium keeps its
// decoder (and what it has read ahead).
func (n *negotiation) negotiate(ctx context.Context, in, out *stream.Info, s *xmpp.Session, _ any) (xmpp.SessionState, io.ReadWriter, any, error) {
	tr := s.TokenReader()
	defer tr.Close()
	r := &reader{d: xml.NewTokenDecoder(tr), in: in}
	out.XMLNS = NSClient
	n.res.Started = time.Now()
	if err := n.run(ctx, r); err != nil {
		return 0, nil, nil, classify(ctx, n.step, n.res.Path, n.domain.String(), err)
	}
	n.res.Done = time.Now()
	if n.cfg.Features != nil {
		n.res.Stale = !n.res.Features.Equal(*n.cfg.Features)
	}
	m := n.conn.EndLogin()
	n.res.RoundTrips, n.res.Flights = m.RoundTrips(), m.Flights
	n.res.BytesIn, n.res.BytesOut = m.BytesIn, m.BytesOut
	if !s.UpdateAddr(n.res.JID) {
		return 0, nil, nil, classify(ctx, StepBind, n.res.Path, n.domain.String(), protocolErrorf("session already ready"))
	}
	return xmpp.Ready | xmpp.Authn | xmpp.Secure, nil, nil, nil
}

func (n *negotiation) run(ctx context.Context, r *reader) error {
	cached := n.cfg.Features
	var live features.Features
	var p plan
	if cached != nil && cached.NoPipeline {
		// The server refuses pipelined data: read its features first.
		cached = nil
	}
	if cached != nil {
		var err error
		p, err = n.plan(*cached)
		if err != nil {
			// The cache cannot plan a login (for example PLAIN only, over an
			// unverified connection): read the live features instead.
			n.log.Debug().Err(err).Msg("cached features unusable; reading live features")
			cached = nil
		}
	}
	if cached != nil {
		n.res.Source = SourceCache
		n.res.Path = p.path
		burst, err := n.firstAuth(&p)
		if err != nil {
			return err
		}
		n.step = StepWrite
		if err := n.write(append(n.header(), burst...)); err != nil {
			return err
		}
		n.log.Debug().Str("path", p.path.String()).Str("mechanism", p.mech).Msg("pipelined burst written")
		if live, err = n.readHeaderAndFeatures(r); err != nil {
			return err
		}
		// Post-authentication markers (bind2:0 in the v0.3.0 example, SM,
		// classic bind) are not in the pre-auth features: keep the cached
		// ones for planning; the restart's features confirm them.
		live.Bind2Draft = live.Bind2Draft || cached.Bind2Draft
		if err := n.checkLive(p, live); err != nil {
			return &StaleError{Reason: err.Error(), Live: live}
		}
	} else {
		n.res.Source = SourceNetwork
		n.step = StepWrite
		if err := n.write(n.header()); err != nil {
			return err
		}
		var err error
		if live, err = n.readHeaderAndFeatures(r); err != nil {
			return err
		}
		if p, err = n.plan(live); err != nil {
			return err
		}
		n.res.Path = p.path
		burst, err := n.firstAuth(&p)
		if err != nil {
			return err
		}
		if err := n.write(burst); err != nil {
			return err
		}
	}
	n.res.Features = live
	n.res.Features.NoPipeline = n.cfg.Features != nil && n.cfg.Features.NoPipeline
	n.res.Features.TLSGroup = tlsGroup(n.tls)
	if n.cfg.Features != nil {
		n.res.Features.FastOpenDropped = n.cfg.Features.FastOpenDropped
	}
	n.res.Mechanism = p.mech
	switch p.path {
	case PathSASL2:
		return n.sasl2(ctx, r, p)
	case PathBind2Draft:
		return n.bind2Draft(ctx, r, p)
	default:
		return n.classic(ctx, r, p)
	}
}

// header is the initial stream header (and the one after a restart).
func (n *negotiation) header() []byte {
	return appendHeader(nil, n.domain.String(), n.bare.String())
}

// appendHeader appends an initial stream header to domain to b, always with
// from= the bare JID (FAST and ejabberd's SASL2 need it; STARTTLS sends
// the same header).
func appendHeader(b []byte, domain, bare string) []byte {
	buf := bytes.NewBuffer(b)
	buf.WriteString("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='")
	escapeAttr(buf, domain)
	buf.WriteString("' from='")
	escapeAttr(buf, bare)
	buf.WriteString("'>")
	return buf.Bytes()
}

// write sends p in one Write on the connection.
func (n *negotiation) write(p []byte) error {
	_, err := n.conn.Write(p)
	return err
}

func (n *negotiation) readHeaderAndFeatures(r *reader) (features.Features, error) {
	n.step = StepStreamHeader
	if err := r.header(); err != nil {
		return features.Features{}, err
	}
	n.step = StepFeatures
	start, err := r.next()
	if err != nil {
		return features.Features{}, err
	}
	if start.Name != (xml.Name{Space: NSStream, Local: "features"}) {
		return features.Features{}, protocolErrorf("expected <stream:features>, got <%s xmlns='%s'>", start.Name.Local, start.Name.Space)
	}
	f, err := decodeFeatures(r.d, start)
	if err != nil {
		return features.Features{}, err
	}
	f.Domain = n.domain.String()
	f.DirectTLS = n.cfg.DirectTLS
	f.StartTLS = n.cfg.StartTLSOffered
	return f, nil
}

// newSASL returns a SASL client for mechanism name.
func (n *negotiation) newSASL(name string, remote []string) (*sasl.Negotiator, error) {
	if t := n.cfg.Token; t != nil && strings.HasPrefix(name, "HT-") && name == t.Mechanism {
		m, ok := NewFAST(name, t.Secret)
		if !ok {
			return nil, fmt.Errorf("%w: mechanism %s is not supported", ErrRefused, name)
		}
		local := []byte(n.bare.Localpart())
		return sasl.NewClient(m,
			sasl.Credentials(func() ([]byte, []byte, []byte) { return local, nil, nil }),
			sasl.TLSState(n.tls),
		), nil
	}
	m, ok := mechanismByName(name)
	if !ok {
		return nil, fmt.Errorf("%w: mechanism %s is not supported", ErrRefused, name)
	}
	if strings.HasPrefix(name, "SCRAM-") {
		var ok bool
		m, ok = NewScramOptions(name, ScramOptions{
			KeyStore: n.keyStore(),
			// XEP-0474: the server's hash of what it advertised is checked
			// against the LIVE features, even when the first write was
			// planned from the cache (they are read before the challenge).
			Lists: func() ([]string, []string) {
				f := n.res.Features
				if n.res.Path == PathSASL2 {
					return f.SASL2Mechanisms, f.ChannelBindings
				}
				return f.SASLMechanisms, f.ChannelBindings
			},
		})
		if !ok {
			return nil, fmt.Errorf("%w: mechanism %s is not supported", ErrRefused, name)
		}
	}
	local := []byte(n.bare.Localpart())
	pw := []byte(n.cfg.Password)
	return sasl.NewClient(m,
		sasl.Credentials(func() ([]byte, []byte, []byte) { return local, pw, nil }),
		sasl.RemoteMechanisms(remote...),
		sasl.TLSState(n.tls),
	), nil
}
