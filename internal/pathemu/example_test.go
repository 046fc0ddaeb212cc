//go:build linux

package pathemu_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/pipebind/pipebind/internal/pathemu"
)

// Count the round trips of a request over a 50 ms path.
func Example() {
	if err := pathemu.Available(); err != nil {
		log.Fatal(err) // in a test: t.Fatal(err), never t.Skip
	}
	e, err := pathemu.New(pathemu.RTT(50 * time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()

	ln, err := e.Server().Listen("tcp", pathemu.ServerAddr+":5222")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4)
		n, _ := c.Read(buf)
		c.Write(buf[:n])
	}()

	ctx := context.Background()
	// e.Client().DialContext can also serve as a client's dial hook
	// (client.Config.DialFunc).
	c, err := e.Client().DialContext(ctx, "tcp", pathemu.ServerAddr+":5222")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	c.Read(make([]byte, 4))

	conn, err := e.WaitConn(ctx, uint16(c.LocalAddr().(*net.TCPAddr).Port))
	if err != nil {
		log.Fatal(err)
	}
	st := conn.Stats()
	fmt.Printf("%d round trips, %d bytes up, %d down\n", st.Flights, st.BytesUp, st.BytesDown)
}
