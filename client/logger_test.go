package client

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"mellium.im/xmpp/jid"
)

// TestClientLogger: a logger that writes gets the client's fields; a silent
// one (the zero Logger, or one at zerolog.Disabled) is kept as is, without
// the buffer With allocates for the client's life.
func TestClientLogger(t *testing.T) {
	var out bytes.Buffer
	cfg := Config{JID: jid.MustParse("alice@example.org/r"), Logger: zerolog.New(&out)}
	l := clientLogger(&cfg)
	l.Info().Msg("hello")
	if s := out.String(); !strings.Contains(s, `"component":"client"`) || !strings.Contains(s, `"jid":"alice@example.org"`) {
		t.Errorf("log line %q lacks the client's fields", s)
	}
	for name, silent := range map[string]zerolog.Logger{"zero": {}, "nop": zerolog.Nop(), "disabled": zerolog.New(&out).Level(zerolog.Disabled)} {
		cfg.Logger = silent
		if n := testing.AllocsPerRun(10, func() { clientLogger(&cfg) }); n != 0 {
			t.Errorf("%s logger: %v allocations, want none", name, n)
		}
	}
}
