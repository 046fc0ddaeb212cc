package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
)

// traceLog records a login's Trace calls in order, as "connect ok",
// "tls error", "login ok", ...
type traceLog struct {
	calls    []string
	loginErr error
	info     client.Info
}

func (l *traceLog) trace() *client.Trace {
	outcome := func(err error) string {
		if err != nil {
			return "error"
		}
		return "ok"
	}
	return &client.Trace{
		ConnectDone: func(_ string, err error) { l.calls = append(l.calls, "connect "+outcome(err)) },
		TLSDone:     func(_ tls.ConnectionState, err error) { l.calls = append(l.calls, "tls "+outcome(err)) },
		LoginDone: func(info client.Info, err error) {
			l.calls = append(l.calls, "login "+outcome(err))
			l.loginErr, l.info = err, info
		},
	}
}

// refusedAddr returns a loopback address nobody listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestTraceContract: whatever step ends a login, LoginDone is called once
// and last with the error Dial returns; ConnectDone once per TCP
// connection tried, TLSDone once per handshake, each after its
// connection's ConnectDone.
func TestTraceContract(t *testing.T) {
	s := newTestServer(t, xmpptest.Config{})
	for _, tc := range []struct {
		name  string
		setup func(*client.Config)
		want  []string
		err   error // what Dial's error matches, if it fails (the last call says)
	}{
		{"success", nil, []string{"connect ok", "tls ok", "login ok"}, nil},
		{"connect refused", func(c *client.Config) { c.Addr = refusedAddr(t) },
			[]string{"connect error", "login error"}, client.ErrConnection},
		{"TLS failure", func(c *client.Config) { c.TLSConfig = nil }, // system roots: the test CA is unknown
			[]string{"connect ok", "tls error", "login error"}, client.ErrTLS},
		{"login failure", func(c *client.Config) { c.Password = "wrong" },
			[]string{"connect ok", "tls ok", "login error"}, client.ErrAuth},
		{"STARTTLS fallback", func(c *client.Config) { c.Addr, c.TLS = s.StartTLSAddr(), client.TLSAuto },
			[]string{"connect ok", "tls error", "connect ok", "tls ok", "login ok"}, nil},
		{"TLS failure after STARTTLS", func(c *client.Config) {
			c.Addr, c.TLS = s.StartTLSAddr(), client.TLSStartTLS
			c.TLSConfig = nil
		}, []string{"connect ok", "tls error", "login error"}, client.ErrTLS},
		{"STARTTLS failure", func(c *client.Config) {
			// The listener closes each connection at once.
			c.Addr, c.TLS = newTestServer(t, xmpptest.Config{NoStartTLS: true}).StartTLSAddr(), client.TLSStartTLS
		}, []string{"connect ok", "login error"}, client.ErrConnection},
		{"bad address", func(c *client.Config) { c.Addr = "no-port" }, []string{"login error"}, nil},
		{"password function", func(c *client.Config) {
			c.Password, c.PasswordFunc = "", func(context.Context) (string, error) { return "", errors.New("keyring locked") }
		}, []string{"login error"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cfg := testConfig(t, s, "alice", nil)
			cfg.NoSync, cfg.NoPresence = true, true
			if tc.setup != nil {
				tc.setup(&cfg)
			}
			var log traceLog
			cfg.Trace = log.trace()
			c, err := client.Dial(ctx, cfg)
			if err == nil {
				c.Close()
			}
			wantErr := tc.want[len(tc.want)-1] == "login error"
			if (err != nil) != wantErr || (tc.err != nil && !errors.Is(err, tc.err)) {
				t.Fatalf("Dial: %v, want %v", err, tc.err)
			}
			if got := strings.Join(log.calls, ", "); got != strings.Join(tc.want, ", ") {
				t.Errorf("trace calls: %s\nwant:        %s", got, strings.Join(tc.want, ", "))
			}
			if !errors.Is(log.loginErr, err) || (err == nil && log.loginErr != nil) {
				t.Errorf("LoginDone got %v, Dial returned %v", log.loginErr, err)
			}
		})
	}
}

// TestTraceRetries: a login that takes two attempts (a stale cache) traces
// both connections, then LoginDone once with Attempts 2.
func TestTraceRetries(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newTestServer(t, xmpptest.Config{})
	cfg := testConfig(t, s, "alice", openCache(t))
	cfg.NoSync, cfg.NoPresence, cfg.NoFAST = true, true, true
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	s.SetConfig(func(c *xmpptest.Config) { c.NoSASL2 = true })
	var log traceLog
	cfg.Trace = log.trace()
	c, err = client.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	want := "connect ok, tls ok, connect ok, tls ok, login ok"
	if got := strings.Join(log.calls, ", "); got != want || log.info.Attempts != 2 {
		t.Errorf("trace calls: %s (attempts %d)\nwant:        %s (attempts 2)", got, log.info.Attempts, want)
	}
}
