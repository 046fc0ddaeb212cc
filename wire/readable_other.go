//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package wire

import "net"

// canWaitReadable: elsewhere, WaitInput waits in a small read.
func canWaitReadable(net.Conn) bool { return false }

func waitReadable(net.Conn) error { return nil }
