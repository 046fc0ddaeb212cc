package mamsync

import (
	"context"
	"encoding/xml"
	"io"
	"net"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/stream"

	"github.com/pipebind/pipebind/wire"
)

// reconcileAhead runs a ReconcileAhead against f from cursor: the first
// query is written on the connection before the session is served, as the
// login's write carries it, and its answer is routed to the AheadQuery by a
// handler, as the client does.
func reconcileAhead(t *testing.T, f *fakeMAM, db *memStore, cursor string, page int) (Report, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := New(Config{Account: alice, Store: db, PageSize: page})
	cc, sc := net.Pipe()
	served := make(chan struct{})
	go func() {
		defer close(served)
		f.serve(sc)
	}()
	a, req := NewAhead(cursor, page)
	wc := wire.New(cc, wire.Options{})
	wc.EndLogin()
	go func() { _, _ = wc.Write(req) }() // the login's write (the pipe is synchronous)
	q := s.Adopt(a)
	wc.SetInboundTap(s.HandleRaw)
	sess, err := xmpp.NewSession(ctx, alice.Domain(), alice, wc, 0,
		func(_ context.Context, in, out *stream.Info, _ *xmpp.Session, _ any) (xmpp.SessionState, io.ReadWriter, any, error) {
			in.XMLNS, out.XMLNS = nsClient, nsClient
			return xmpp.Ready | xmpp.Authn | xmpp.Secure, nil, nil, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	serveDone := make(chan error, 1)
	go func() {
		serveDone <- sess.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			if start.Name.Local == "iq" && attrOf(*start, "id") == a.ID {
				return q.AnswerElement(*start, r)
			}
			return nil
		}))
	}()
	rep, rerr := s.ReconcileAhead(ctx, sess, q)
	cc.Close()
	sc.Close()
	<-served
	<-serveDone
	return rep, rerr
}

func attrOf(start xml.StartElement, local string) string {
	for _, a := range start.Attr {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// TestReconcileAhead: a first page asked ahead (in the login's write) is
// collected and paged on from; a store already level costs that one query
// and stores nothing.
func TestReconcileAhead(t *testing.T) {
	const n, page = 120, 50
	f := &fakeMAM{script: func(q mamQuery) mamPage { return pageOf(q.after, n, q.max) }}
	db := newMemStore()
	rep, err := reconcileAhead(t, f, db, "", page)
	if err != nil {
		t.Fatal(err)
	}
	if got := storedIDs(t, db); !equalStrings(got, ids("m", 0, n)) || rep.Stored != n {
		t.Fatalf("stored %d (%v), report %+v", len(got), err, rep)
	}
	if qs := f.seen(); len(qs) != 3 || qs[0].after != "" || qs[1].after != "m49" {
		t.Fatalf("queries %+v, want the ahead one from the start, then after m49 and m99", qs)
	}

	level := &fakeMAM{script: func(q mamQuery) mamPage { return pageOf(q.after, n, q.max) }}
	rep, err = reconcileAhead(t, level, db, "m119", page)
	if err != nil || rep.Stored != 0 || rep.Fetched != 0 || !rep.Queried {
		t.Fatalf("a level store: %+v, %v", rep, err)
	}
	if qs := level.seen(); len(qs) != 1 || qs[0].after != "m119" {
		t.Fatalf("queries %+v, want only the ahead one", qs)
	}
}
