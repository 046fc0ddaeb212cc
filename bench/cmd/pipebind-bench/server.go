package main

// The server side of a login's first flight after TLS, measured straight
// to Prosody (no proxy, no client library): how long Prosody takes from a
// client's first write after the TLS handshake to the end of its answer,
// for the stream header alone (what the floor sends) and for the pipelined
// SASL2 bursts a one-round-trip login sends. The difference is server time
// that every client pays on top of the floor, whatever its round trips.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"
)

// serverCost is one kind of first flight.
type serverCost struct {
	Name string `json:"name"`
	// What the first write holds and what ends the server's answer.
	Writes string `json:"writes"`
	// MedianMS: first write to the end of the answer; OverHeaderMS: minus
	// the header-only median of the same run.
	MedianMS     float64 `json:"median_ms"`
	OverHeaderMS float64 `json:"over_header_ms"`

	ns []int64
}

// serverCosts measures n first flights of each kind against the Prosody at
// addr, interleaved, each on a fresh connection (TLS untimed).
func serverCosts(ctx context.Context, n int, addr string, t benchTarget) ([]*serverCost, error) {
	tlsCfg, err := tlsConfigFromCA(t.caFile, t.domain)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	b := burst{t.domain, t.user, t.password}
	header := b.header()
	// pipebind's warm burst: user agent, Bind 2 with carbons, SM and CSI.
	const ua = "3f2b9c1e-5d4a-4e8b-9a6f-0c1d2e3f4a5b"
	auth := func(mech, ir, extra string) string { return b.auth(mech, ir, ua, extra) }
	// fastBurst gets a token for mech (one per user agent: a second
	// agent id for the second mechanism) and returns the burst that uses
	// it on a connection.
	fastBurst := func(mech, uaID string) (func(tls.ConnectionState) (string, error), error) {
		token, err := fastToken(ctx, addr, tlsCfg, b.tokenRequest(mech, uaID))
		if err != nil {
			return nil, fmt.Errorf("FAST token for %s: %w", mech, err)
		}
		return func(cs tls.ConnectionState) (string, error) { return b.fast(mech, token, uaID, cs) }, nil
	}
	// The mechanism pipebind's FAST logins use on TLS 1.3 (login.ChooseFAST).
	const fastMech = "HT-SHA-256-EXPR"
	fastExpr, err := fastBurst(fastMech, ua)
	if err != nil {
		return nil, err
	}
	fastNone, err := fastBurst("HT-SHA-256-NONE", "7d1e0b2a-3c4f-4a5b-8c6d-9e0f1a2b3c4d")
	if err != nil {
		return nil, err
	}
	scramIR := base64.StdEncoding.EncodeToString([]byte("n,,n=" + t.user + ",r=benchnonce0123456789abcdef"))
	fixed := func(s string) func(tls.ConnectionState) (string, error) {
		return func(tls.ConnectionState) (string, error) { return s, nil }
	}

	type kind struct {
		c     *serverCost
		data  func(tls.ConnectionState) (string, error)
		until string
		count int // occurrences of until that end the answer
	}
	features := "</stream:features>"
	kinds := []kind{
		{&serverCost{Name: "header", Writes: "stream header; answer: header and features (the floor's round trip)"}, fixed(header), features, 1},
		{&serverCost{Name: "plain", Writes: "header + SASL2 PLAIN + Bind 2 (pipebind-warm-plain's burst); answer to the post-auth features"}, fixed(header + auth("PLAIN", b.plainIR(), "")), features, 2},
		{&serverCost{Name: "fast", Writes: "header + SASL2 " + fastMech + " (FAST token, pipebind-warm-fast's burst) + the same Bind 2; answer to the post-auth features"}, fastExpr, features, 2},
		{&serverCost{Name: "fast-none", Writes: "the same with HT-SHA-256-NONE (no channel binding), for comparison"}, fastNone, features, 2},
		{&serverCost{Name: "scram-first", Writes: "header + SASL2 SCRAM-SHA-1 client-first + the same Bind 2; answer to the challenge"}, fixed(header + auth("SCRAM-SHA-1", scramIR, "")), "</challenge>", 1},
	}
	for i := range n + 1 {
		// Each round starts at another kind, so that no kind always
		// follows the same one (a server's work left over from the
		// previous connection spreads over all kinds alike).
		for j := range kinds {
			k := kinds[(i+j)%len(kinds)]
			d, err := firstFlight(ctx, addr, tlsCfg, k.data, k.until, k.count)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k.c.Name, err)
			}
			if i > 0 { // the first round is a warm-up
				k.c.ns = append(k.c.ns, int64(d))
			}
		}
	}
	var out []*serverCost
	for _, k := range kinds {
		k.c.MedianMS = ms(percentile(k.c.ns, 0.5))
		out = append(out, k.c)
	}
	for _, c := range out {
		c.OverHeaderMS = c.MedianMS - out[0].MedianMS
	}
	return out, nil
}

// firstFlight connects, completes TLS, then times one write until the
// answer holds count occurrences of until.
func firstFlight(ctx context.Context, addr string, tlsCfg *tls.Config, dataFor func(tls.ConnectionState) (string, error), until string, count int) (time.Duration, error) {
	r, err := rawDial(ctx, addr, tlsCfg)
	if err != nil {
		return 0, err
	}
	// Ends the stream and waits for the server's end, so that Prosody has
	// processed this connection's close before the next one is timed.
	defer r.closeAndWait()
	data, err := dataFor(r.c.ConnectionState())
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := r.write(data); err != nil {
		return 0, err
	}
	for range count {
		i, which, err := r.untilOneOf([]byte(until), []byte("<failure"))
		if err != nil {
			return 0, err
		}
		if which == 1 {
			return 0, errors.New("the server refused the authentication")
		}
		r.consume(i + len(until))
	}
	return time.Since(t0), nil
}

// fastToken writes req (a burst.tokenRequest) on a new connection and
// returns the FAST token of the <success>.
func fastToken(ctx context.Context, addr string, tlsCfg *tls.Config, req string) (string, error) {
	r, err := rawDial(ctx, addr, tlsCfg)
	if err != nil {
		return "", err
	}
	defer r.close()
	return r.fastToken(req)
}

// fastToken writes req (a burst.tokenRequest) and returns the FAST token
// of the <success>.
func (r *rawConn) fastToken(req string) (string, error) {
	if err := r.write(req); err != nil {
		return "", err
	}
	i, err := r.until([]byte("</success>"))
	if err != nil {
		return "", err
	}
	succ := r.buf[:i]
	for _, q := range []string{"'", `"`} {
		if a := bytes.Index(succ, []byte("token="+q)); a >= 0 {
			rest := succ[a+len("token=")+1:]
			if b := bytes.Index(rest, []byte(q)); b > 0 {
				return string(rest[:b]), nil
			}
		}
	}
	return "", io.ErrUnexpectedEOF
}
