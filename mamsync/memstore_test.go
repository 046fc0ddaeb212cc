package mamsync

import (
	"context"
	"errors"
	"strings"
	"sync"
)

// memStore is a Store in memory for the unit tests: the promises of Store
// (exactly-once Added, atomic cursor moves) without SQLite.
type memStore struct {
	mu     sync.Mutex
	seq    int64
	msgs   map[string][]StoredMessage // by account
	ids    map[string]map[string]bool // stanza-ids held, by account
	cursor map[string]string
	gaps   map[string][]Gap
}

func newMemStore() *memStore {
	return &memStore{
		msgs:   make(map[string][]StoredMessage),
		ids:    make(map[string]map[string]bool),
		cursor: make(map[string]string),
		gaps:   make(map[string][]Gap),
	}
}

func (m *memStore) Cursor(_ context.Context, account string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cursor[strings.ToLower(account)], nil
}

func (m *memStore) AppendMessagesResult(_ context.Context, account string, msgs []Message, cursor string) (AppendResult, error) {
	acct := strings.ToLower(account)
	for _, msg := range msgs {
		if msg.StanzaID == "" || !msg.Direction.Valid() {
			return AppendResult{}, errors.New("memstore: invalid message")
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	held := m.ids[acct]
	if held == nil {
		held = make(map[string]bool)
		m.ids[acct] = held
	}
	var res AppendResult
	for _, msg := range msgs {
		if held[msg.StanzaID] {
			res.Duplicates++
			continue
		}
		held[msg.StanzaID] = true
		m.seq++
		sm := StoredMessage{Message: msg, Seq: m.seq}
		m.msgs[acct] = append(m.msgs[acct], sm)
		res.Added = append(res.Added, sm)
	}
	if cursor != "" {
		m.cursor[acct] = cursor
	}
	return res, nil
}

func (m *memStore) AddGap(_ context.Context, account string, g Gap) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	acct := strings.ToLower(account)
	m.gaps[acct] = append(m.gaps[acct], g)
	return nil
}

// messages returns account's messages in store order.
func (m *memStore) messages(account string) []StoredMessage {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]StoredMessage(nil), m.msgs[strings.ToLower(account)]...)
}
