//go:build !linux

package client

import (
	"net"
	"time"
)

// setUserTimeout is Linux's TCP_USER_TIMEOUT; elsewhere the liveness checks
// alone find a dead link.
func setUserTimeout(*net.TCPConn, time.Duration) error { return nil }
