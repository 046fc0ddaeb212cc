//go:build !linux

package client

import (
	"net"
	"syscall"
)

const fastOpenSupported = false

// FastOpenControl is a net.Dialer Control function that asks for TCP Fast
// Open on Linux (TCP_FASTOPEN_CONNECT); on this OS it does nothing.
func FastOpenControl(string, string, syscall.RawConn) error { return nil }

func fastOpenRequested(net.Conn) bool { return false }

func fastOpenState(net.Conn) FastOpen { return FastOpen{} }

func notConnected(net.Conn, error) bool { return false }

func synPending(net.Conn) bool { return false }
