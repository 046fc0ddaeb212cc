package main

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/pipebind/pipebind/internal/netem"
)

// TestAnsweredStats: a client flight counts as a round trip only when the
// server answered it before the end time; a trailing write does not.
func TestAnsweredStats(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan struct{})
	gotP := make(chan struct{}) // the server (so the proxy too) has read "p"
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 1)
		for { // answer "q" with "a", read everything else silently
			if _, err := c.Read(buf); err != nil {
				return
			}
			switch buf[0] {
			case 'q':
				if _, err := c.Write([]byte("a")); err != nil {
					return
				}
			case 'p':
				close(gotP)
			}
		}
	}()
	px, err := netem.New(ln.Addr().String(), netem.Config{NoConnectDelay: true})
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	c, err := net.Dial("tcp", px.Addr())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	ask := func() {
		t.Helper()
		if _, err := c.Write([]byte("q")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
	ask()
	ask()
	if _, err := c.Write([]byte("p")); err != nil { // trailing, unanswered
		t.Fatal(err)
	}
	<-gotP
	last := time.Now()
	ask() // the same flight as "p" (no server bytes in between), answered
	end := time.Now()
	c.Close()
	<-served

	st, conns := answeredStats(px, 0, last)
	if conns != 1 || st.Flights != 2 || st.BytesUp != 3 {
		t.Errorf("before the third question: %+v over %d conns, want 2 answered flights, 3 bytes up", st, conns)
	}
	if raw, _ := px.StatsSinceBefore(0, last); raw.Flights != 3 {
		t.Errorf("netem counted %d flights, want 3 (the trailing write included)", raw.Flights)
	}
	if st, _ := answeredStats(px, 0, end.Add(time.Second)); st.Flights != 3 {
		t.Errorf("to the end: %d answered flights, want 3", st.Flights)
	}
}
