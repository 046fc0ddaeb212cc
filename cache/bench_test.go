package cache

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	benchMessages = 100_000
	benchBatch    = 250
	benchAccount  = "romeo@example.net"
)

// benchCorpus is a catch-up of n messages, in archive order, shaped like a
// real one: random-looking ids, twenty peers, a few hundred bytes of raw
// stanza each.
func benchCorpus(n int) []Message {
	msgs := make([]Message, n)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range msgs {
		peer := fmt.Sprintf("peer%02d@example.org", i%20)
		sid := fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", uint32(i*2654435761), i&0xffff, i%4096, (i*7)%4096, uint64(i)*0x9e3779b97f4a7c15>>16)
		oid := fmt.Sprintf("origin-%d-%x", i, uint32(i*40503))
		body := fmt.Sprintf("Message number %d: %s", i, strings.Repeat("lorem ipsum ", 1+i%6))
		dir, from, to := DirectionIn, peer+"/phone", benchAccount
		if i%3 == 0 {
			dir, from, to = DirectionOut, benchAccount+"/laptop", peer
		}
		raw := fmt.Sprintf(`<message xmlns="jabber:client" from="%s" to="%s" type="chat" id="%s">`+
			`<body>%s</body><origin-id xmlns="urn:xmpp:sid:0" id="%s"/>`+
			`<stanza-id xmlns="urn:xmpp:sid:0" by="%s" id="%s"/>`+
			`<delay xmlns="urn:xmpp:delay" stamp="%s"/></message>`,
			from, to, oid, body, oid, benchAccount, sid, start.Add(time.Duration(i)*time.Second).Format(time.RFC3339))
		msgs[i] = Message{
			StanzaID:  sid,
			OriginID:  oid,
			Peer:      peer,
			Direction: dir,
			Time:      start.Add(time.Duration(i) * time.Second),
			Body:      body,
			Raw:       []byte(raw),
		}
	}
	return msgs
}

// benchStore opens a fresh database file in a new temporary directory,
// outside the timer.
func benchStore(b *testing.B) *DB {
	b.Helper()
	b.StopTimer()
	defer b.StartTimer()
	db, err := Open(context.Background(), filepath.Join(b.TempDir(), "cache.db"))
	if err != nil {
		b.Fatal(err)
	}
	return db
}

// BenchmarkAppendMessages stores a 100,000-message catch-up into a fresh
// file, in batches (one AppendMessages, so one transaction, each), moving
// the cursor with every batch.
//
// The stanza-ids matter: random ones (Prosody's UUIDs, xmpptest's opaque
// ids) hash all over the messages_sid index (the hash of the stanza-id), so
// each transaction dirties about one index page per message, and the WAL
// writes (and checkpoints) of those pages dominate. Increasing ids
// (ejabberd's numeric timestamps) hash just as randomly; they are measured
// too because they are what ejabberd sends, and shorter (16 bytes against
// 36). The batch=2500 case shows what a
// caller gains by gathering several MAM pages per call.
func BenchmarkAppendMessages(b *testing.B) {
	random := benchCorpus(benchMessages)
	monotonic := benchCorpus(benchMessages)
	for i := range monotonic {
		monotonic[i].StanzaID = fmt.Sprintf("%016d", 1_700_000_000_000_000+i)
	}
	for _, bc := range []struct {
		name  string
		msgs  []Message
		batch int
	}{
		{"ids=random/batch=250", random, benchBatch},
		{"ids=monotonic/batch=250", monotonic, benchBatch},
		{"ids=random/batch=2500", random, 10 * benchBatch},
	} {
		b.Run(bc.name, func(b *testing.B) { benchAppend(b, bc.msgs, bc.batch) })
	}
}

func benchAppend(b *testing.B, msgs []Message, batchSize int) {
	ctx := context.Background()
	var elapsed time.Duration
	for b.Loop() {
		db := benchStore(b)
		start := time.Now()
		for lo := 0; lo < len(msgs); lo += batchSize {
			batch := msgs[lo:min(lo+batchSize, len(msgs))]
			n, dup, err := db.AppendMessages(ctx, benchAccount, batch, batch[len(batch)-1].StanzaID)
			if err != nil {
				b.Fatal(err)
			}
			if n != len(batch) || dup != 0 {
				b.Fatalf("inserted %d, duplicates %d; want %d, 0", n, dup, len(batch))
			}
		}
		elapsed += time.Since(start)
		b.StopTimer()
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*len(msgs))/elapsed.Seconds(), "msgs/s")
}

// BenchmarkSQLiteBaseline is the floor AppendMessages is measured against:
// the same rows, on a connection opened the same way, inserted as fast as
// SQLite takes them into a bare table (no index, no constraint, no cursor),
// one transaction of multi-row INSERTs, with one prepared statement, per
// batch of 250.
func BenchmarkSQLiteBaseline(b *testing.B) {
	msgs := benchCorpus(benchMessages)
	ctx := context.Background()
	const rowsPerStmt = benchBatch
	var elapsed time.Duration
	for b.Loop() {
		db := benchStore(b)
		if _, err := db.sql.ExecContext(ctx, `CREATE TABLE bare (
	account TEXT, stanza_id TEXT, origin_id TEXT, peer TEXT, dir INTEGER, ts INTEGER, body TEXT, raw BLOB)`); err != nil {
			b.Fatal(err)
		}
		insert := "INSERT INTO bare VALUES " + strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?),", rowsPerStmt), ",")
		stmt, err := db.sql.PrepareContext(ctx, insert)
		if err != nil {
			b.Fatal(err)
		}
		args := make([]any, 0, 8*rowsPerStmt)
		start := time.Now()
		for lo := 0; lo < len(msgs); lo += benchBatch {
			batch := msgs[lo:min(lo+benchBatch, len(msgs))]
			err := db.withTx(ctx, func(tx *sql.Tx) error {
				args = args[:0]
				for i := range batch {
					m := &batch[i]
					args = append(args, benchAccount, m.StanzaID, m.OriginID, m.Peer,
						int64(m.Direction), m.Time.UnixMicro(), m.Body, m.Raw)
				}
				_, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		elapsed += time.Since(start)
		b.StopTimer()
		stmt.Close()
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*len(msgs))/elapsed.Seconds(), "msgs/s")
}
