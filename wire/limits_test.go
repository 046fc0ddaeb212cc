package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

// readAll reads from a post-login meter (stanza counting on) until an
// error, the way the session's decoder does.
func readAll(t *testing.T, data string) error {
	t.Helper()
	client, server := net.Pipe()
	defer client.Close()
	go func() {
		io.Copy(server, strings.NewReader(data))
		server.Close()
	}()
	m := New(client, Options{})
	m.EndLogin() // the login is over: stanza counting on
	for {
		if _, err := m.ReadByte(); err != nil {
			return err
		}
	}
}

func TestLimitsStanzaSize(t *testing.T) {
	big := "<message><body>" + strings.Repeat("x", DefaultMaxBytes) + "</body></message>"
	if err := readAll(t, big); !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrProtocol) {
		t.Fatalf("a stanza over the limit: %v, want ErrTooLarge (ErrProtocol)", err)
	}
	attr := "<message a='" + strings.Repeat("y", DefaultMaxBytes) + "'/>"
	if err := readAll(t, attr); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a start tag over the limit: %v, want ErrTooLarge", err)
	}
	// Many stanzas adding up to more than the limit are fine: the limit is
	// per element.
	var many bytes.Buffer
	for many.Len() < 2*DefaultMaxBytes {
		many.WriteString("<message><body>" + strings.Repeat("z", 1000) + "</body></message>")
	}
	if err := readAll(t, many.String()); err != io.EOF {
		t.Fatalf("many small stanzas: %v, want io.EOF", err)
	}
}

func TestLimitsDepth(t *testing.T) {
	deep := "<message>" + strings.Repeat("<a>", DefaultMaxDepth+1) + strings.Repeat("</a>", DefaultMaxDepth+1) + "</message>"
	if err := readAll(t, deep); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("nesting over the limit: %v, want ErrTooLarge", err)
	}
	ok := "<message>" + strings.Repeat("<a>", DefaultMaxDepth-2) + strings.Repeat("</a>", DefaultMaxDepth-2) + "</message>"
	if err := readAll(t, ok); err != io.EOF {
		t.Fatalf("nesting under the limit: %v, want io.EOF", err)
	}
}

func TestLimitsLoginAnswer(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	go func() {
		io.Copy(server, strings.NewReader("<stream:features>"+strings.Repeat("<mechanism>X</mechanism>", DefaultMaxLoginBytes/20)))
		server.Close()
	}()
	m := New(client, Options{}) // during the login: metered
	buf := make([]byte, 4096)
	var err error
	for err == nil {
		_, err = m.Read(buf)
	}
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a login answer over %d bytes: %v, want ErrTooLarge", DefaultMaxLoginBytes, err)
	}
}
