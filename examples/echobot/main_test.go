package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/pipebind/pipebind/client"
	"github.com/pipebind/pipebind/internal/xmpptest"
)

// lines is an io.Writer that hands each line written to a channel.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
	ch  chan string
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.WriteString(line)
			return len(p), nil
		}
		l.ch <- strings.TrimSpace(line)
	}
}

func (l *lines) waitFor(t *testing.T, prefix string) string {
	t.Helper()
	timer := time.NewTimer(15 * time.Second)
	defer timer.Stop()
	for {
		select {
		case line := <-l.ch:
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-timer.C:
			t.Fatalf("no line %q", prefix)
		}
	}
}

// TestEchoBot (issue 16, item 7): the example bot decodes bob's chat
// message in its Handler and answers it with Send; a message that is not
// chat gets no answer; cancelling its context stops it cleanly.
func TestEchoBot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := xmpptest.NewServer(xmpptest.Config{Users: map[string]string{"bot": "bot-pw", "bob": "bob-pw"}})
	defer srv.Close()
	config := func(user string) client.Config {
		return client.Config{
			JID: jid.MustParse(user + "@" + srv.Domain()), Password: user + "-pw",
			Addr: srv.DirectTLSAddr(), TLS: client.TLSDirect, TLSConfig: srv.TLSConfig(),
		}
	}
	out := &lines{ch: make(chan string, 64)}
	botCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(botCtx, config("bot"), out) }()
	out.waitFor(t, "echobot: online as bot@")

	got := make(chan chat, 4)
	bcfg := config("bob")
	bcfg.Handler = xmpp.HandlerFunc(func(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		var m chat
		if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t)).Decode(&m); err == nil && m.Body != "" {
			got <- m
		}
		return nil
	})
	bob, err := client.Dial(ctx, bcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	send := func(typ stanza.MessageType, body string) {
		t.Helper()
		msg := stanza.Message{To: jid.MustParse("bot@" + srv.Domain()), Type: typ}
		if err := bob.Send(ctx, msg.Wrap(xmlstream.Wrap(xmlstream.Token(xml.CharData(body)), xml.StartElement{Name: xml.Name{Local: "body"}}))); err != nil {
			t.Fatal(err)
		}
	}
	send(stanza.NormalMessage, "not a chat: no answer")
	send(stanza.ChatMessage, "hello <bot> & co")
	select {
	case m := <-got:
		if m.Body != "hello <bot> & co" || m.Type != stanza.ChatMessage || !m.From.Bare().Equal(jid.MustParse("bot@"+srv.Domain())) {
			t.Errorf("bob got %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("no echo")
	}
	out.waitFor(t, `echoed "hello <bot> & co" to bob@`)
	stop()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	select {
	case m := <-got:
		t.Errorf("a second answer: %+v", m)
	default:
	}
}
