package client_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/pipebind/pipebind/client"
)

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

func TestDialTimeoutAndCancel(t *testing.T) {
	addr := silentServer(t)
	cfg := client.Config{
		JID:      jid.MustParse("alice@localhost"),
		Password: "pw",
		Addr:     addr,
		TLS:      client.TLSDirect,
		Timeout:  200 * time.Millisecond,
	}
	_, err := client.Dial(context.Background(), cfg)
	if !errors.Is(err, client.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout: err = %v, want ErrTimeout and DeadlineExceeded", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cfg.Timeout = -1
	cfg.Trace = &client.Trace{ConnectDone: func(string, error) { cancel() }}
	_, err = client.Dial(ctx, cfg)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: err = %v, want context.Canceled", err)
	}
	if errors.Is(err, client.ErrTimeout) {
		t.Errorf("cancel: err = %v matches ErrTimeout", err)
	}
}
