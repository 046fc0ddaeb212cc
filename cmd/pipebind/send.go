package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"
)

var sendCommand = command{name: "send", args: []string{"ACCOUNT", "TO", "TEXT"},
	about: "Logs in as ACCOUNT, sends TEXT to TO as a chat message and waits until the server has it\n" +
		"(a round trip after the message, bounded by -timeout). TEXT - reads the text from stdin;\n" +
		"put -- before a TEXT that starts with -. The password comes from $" + envPassword + " or a\n" +
		"terminal prompt (not needed while the cache holds a FAST token)."}

// sent is the JSON of pipebind send.
type sent struct {
	From string `json:"from"`
	To   string `json:"to"`
	ID   string `json:"id"`
	// Acknowledged: the server answered a round trip sent after the
	// message, so it has processed it.
	Acknowledged bool `json:"acknowledged"`
}

func send(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	var pf probeFlags
	pf.register(fs)
	typ := fs.String("type", "chat", "message `type`: chat or normal")
	j, pos, err := sendCommand.parseAccount(fs, args, stdout)
	if err != nil {
		return err
	}
	to, err := argJID("TO", pos[1])
	if err != nil {
		return err
	}
	if *typ != "chat" && *typ != "normal" {
		return usagef("-type %q: want chat or normal", *typ)
	}
	text, err := messageText(pos[2])
	if err != nil {
		return err
	}
	cfg, err := pf.config(j, stderr)
	if err != nil {
		return err
	}
	// A one-shot sender neither announces itself to the contacts nor
	// fetches the archive.
	cfg.NoPresence, cfg.NoSync = true, true
	c, err := pf.dial(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer c.Close()
	id := newID()
	msg := stanza.Message{To: to, ID: id, Type: stanza.MessageType(*typ)}
	body := xmlstream.Wrap(xmlstream.Token(xml.CharData(text)), xml.StartElement{Name: xml.Name{Local: "body"}})
	opCtx, cancel := pf.opContext(ctx)
	defer cancel()
	if err := c.Send(opCtx, msg.Wrap(body)); err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	if err := c.Flush(opCtx); err != nil {
		return fmt.Errorf("the message was written, but the server did not confirm it: %w", err)
	}
	out := sent{From: c.Info().JID.String(), To: to.String(), ID: id, Acknowledged: true}
	if pf.jsonOut {
		return json.NewEncoder(stdout).Encode(out)
	}
	_, err = fmt.Fprintf(stdout, "sent to %s (id %s); the server has it\n", out.To, out.ID)
	return err
}

// messageText is TEXT, or stdin for "-" (one trailing newline dropped).
func messageText(arg string) (string, error) {
	text := arg
	if arg == "-" {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
		if err != nil {
			return "", fmt.Errorf("reading stdin: %w", err)
		}
		text = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	if strings.TrimSpace(text) == "" {
		return "", usagef("TEXT is empty: nothing to send")
	}
	return text, nil
}

// newID returns a random message id.
func newID() string {
	var b [9]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail
	return "pb-" + hex.EncodeToString(b[:])
}

// opContext bounds one operation after the login (a send, a marker) by
// -timeout, as the login is.
func (p *probeFlags) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if p.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, p.timeout)
}
