//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package wire

import (
	"net"
	"syscall"
)

// canWaitReadable reports whether waitReadable can wait on c.
func canWaitReadable(c net.Conn) bool {
	_, ok := c.(syscall.Conn)
	return ok
}

// waitReadable waits until the socket under c has bytes to read, its end,
// or an error, without reading them (a peek); or until c's read deadline
// passes or c is closed, which it returns.
func waitReadable(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Read(func(fd uintptr) bool {
		var b [1]byte
		for {
			_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch err {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // nothing yet: wait for the poller
			}
			return true // a byte, the end (0 bytes), or an error the read will return
		}
	})
}
