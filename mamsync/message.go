package mamsync

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Store is where a Syncer keeps an account's messages and its sync cursor.
// Package cache implements it on SQLite; any implementation must keep its
// promises, which the exactly-once delivery rests on:
//
//   - AppendMessagesResult stores msgs (in archive order) after everything
//     stored before and, in the same atomic step, moves the cursor to
//     cursor (unless empty). A message whose StanzaID the account already
//     holds, or which repeats one earlier in msgs, is skipped and counted
//     in Duplicates; each message is in Added of exactly one call, whatever
//     the number of goroutines or processes appending it. On an error,
//     nothing of msgs is stored and the cursor is unchanged.
//   - Cursor returns the newest archived stanza-id held (where the next sync
//     resumes), empty when nothing is held.
//   - AddGap records that the archive expired messages between two ids.
type Store interface {
	Cursor(ctx context.Context, account string) (string, error)
	AppendMessagesResult(ctx context.Context, account string, msgs []Message, cursor string) (AppendResult, error)
	AddGap(ctx context.Context, account string, g Gap) error
}

// Direction says who sent a message: the account's owner or the peer. The
// zero value is not a direction: a Message without one is refused.
type Direction uint8

const (
	// DirectionIn is a message from the peer to the account.
	DirectionIn Direction = iota + 1
	// DirectionOut is a message from the account (any of its clients) to
	// the peer.
	DirectionOut
)

// String returns "in" or "out", and "Direction(n)" for anything else.
func (d Direction) String() string {
	switch d {
	case DirectionIn:
		return "in"
	case DirectionOut:
		return "out"
	}
	return "Direction(" + strconv.Itoa(int(d)) + ")"
}

// MarshalText encodes d as "in" or "out"; other values are an error.
func (d Direction) MarshalText() ([]byte, error) {
	if !d.Valid() {
		return nil, fmt.Errorf("mamsync: invalid %v", d)
	}
	return []byte(d.String()), nil
}

// UnmarshalText decodes "in" or "out".
func (d *Direction) UnmarshalText(text []byte) error {
	switch string(text) {
	case "in":
		*d = DirectionIn
	case "out":
		*d = DirectionOut
	default:
		return fmt.Errorf("mamsync: invalid direction %q", text)
	}
	return nil
}

// Valid reports whether d is DirectionIn or DirectionOut.
func (d Direction) Valid() bool { return d == DirectionIn || d == DirectionOut }

// Message is one archived message of an account's conversation with a peer.
type Message struct {
	// StanzaID is the id the account's archive gave the message: the
	// XEP-0359 <stanza-id/> whose by= is the account's bare JID. Required;
	// it is unique per account and the key that makes storing idempotent.
	StanzaID string
	// OriginID is the sender's XEP-0359 <origin-id/>, or empty.
	OriginID string
	// Peer is the other party's bare JID. It is stored lower-cased.
	Peer string
	// Direction is DirectionIn or DirectionOut; anything else is refused.
	Direction Direction
	// Time is the archive's timestamp (the delay stamp). It is stored to the
	// microsecond and read back in UTC.
	Time time.Time
	// Body is the message's <body/> text, or empty.
	Body string
	// Raw is the whole <message/> as received. Nil is stored, and read
	// back, as empty.
	Raw []byte
}

// StoredMessage is a Message as stored, with its place in the local
// archive order.
type StoredMessage struct {
	Message
	// Seq is the message's position in the local archive order: a later
	// message of an account has a larger Seq. Seqs are positive and never
	// reused, but not consecutive (the counter is shared by all accounts).
	Seq int64
}

// AppendResult says what an append stored.
type AppendResult struct {
	// Added are the messages that were new, in store order, with their Seq.
	Added []StoredMessage
	// Duplicates counts the messages already held (or repeated in the batch).
	Duplicates int
}

// Gap records that messages may be missing from an account's store: the
// server no longer knew the sync cursor (its archive had expired it), so the
// sync fetched the newest messages instead and what the archive held between
// AfterID and BeforeID was never stored.
type Gap struct {
	// AfterID is the stanza-id of the last message held before the gap
	// (the cursor the server no longer knew).
	AfterID string
	// BeforeID is the stanza-id of the first message held after it.
	BeforeID string
	// Detected is when the gap was found, to the microsecond, in UTC.
	Detected time.Time
}
