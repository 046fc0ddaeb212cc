package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/pipebind/pipebind/internal/xmpptest"
)

// TestFASTHashes (issue 16, item 7): a token is obtained and used with each
// HT hash a server may offer (SHA-256, -384, -512, the SHA3 family), with
// and without channel binding; offered them all, the client takes the
// strongest binding, then the longest hash.
func TestFASTHashes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var all []string
	for _, h := range []string{"SHA-256", "SHA-384", "SHA-512", "SHA3-256", "SHA3-384", "SHA3-512"} {
		for _, b := range []string{"NONE", "EXPR"} {
			all = append(all, "HT-"+h+"-"+b)
		}
	}
	for _, offered := range append([][]string{all}, splitEach(all)...) {
		want, name := offered[0], offered[0]
		if len(offered) > 1 {
			want, name = "HT-SHA-512-EXPR", "all offered"
		}
		t.Run(name, func(t *testing.T) {
			s := newTestServer(t, xmpptest.Config{FASTMechanisms: offered})
			cfg := testConfig(t, s, "alice", openCache(t))
			cfg.NoSync, cfg.NoPresence = true, true
			if first := fastDial(t, ctx, cfg); first.NewToken == nil || first.NewToken.Mechanism != want {
				t.Fatalf("first login: token %v, want one for %s", first.NewToken, want)
			}
			if info := fastDial(t, ctx, cfg); !info.FAST || info.Mechanism != want || info.RoundTrips != 1 {
				t.Fatalf("token login: FAST %v with %s in %d round trips; want %s in 1", info.FAST, info.Mechanism, info.RoundTrips, want)
			}
		})
	}
}

func splitEach(list []string) [][]string {
	out := make([][]string, len(list))
	for i, m := range list {
		out[i] = []string{m}
	}
	return out
}
