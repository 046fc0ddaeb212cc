package client

import (
	"errors"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/cpu"
	"golang.org/x/sys/unix"
)

const fastOpenSupported = true

// FastOpenControl is a net.Dialer Control function that asks for TCP Fast
// Open: it sets TCP_FASTOPEN_CONNECT (Linux 4.11+) on the socket, so that
// connect returns at once and the SYN leaves with the first write, carrying
// it when the kernel holds a Fast Open cookie for the server (the first
// connection to a server only asks for one). Use it in a Config.DialFunc of
// your own to keep Fast Open:
//
//	d := net.Dialer{Control: client.FastOpenControl}
//	cfg.DialFunc = d.DialContext
//
// A kernel that refuses the option (or does not have it) is not an error:
// the connection is then an ordinary one. Elsewhere than Linux it does
// nothing. The kernel's net.ipv4.tcp_fastopen must have its client bit
// (1) set, as it has by default.
func FastOpenControl(network, _ string, c syscall.RawConn) error {
	if network != "tcp" && network != "tcp4" && network != "tcp6" {
		return nil
	}
	return c.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_FASTOPEN_CONNECT, 1)
	})
}

// The kernel's tcp_info (include/uapi/linux/tcp.h) as far as Fast Open
// goes: tcpi_options is byte 5, and byte 7 holds the bit fields
// tcpi_delivery_rate_app_limited:1 and tcpi_fastopen_client_fail:2, in
// the ABI's bit order. x/sys's TCPInfo leaves bytes 6 and 7 as padding
// before the 4-byte-aligned tcpi_rto: the kernel writes them all the same.
const (
	tcpiOptSYNData = 32 // TCPI_OPT_SYN_DATA: data in the SYN, acknowledged
	tcpSYNSent     = 2  // TCP_SYN_SENT
)

// tcpInfo reads TCP_INFO of c: the struct, and byte 7 (see above).
func tcpInfo(c net.Conn) (info *unix.TCPInfo, byte7 uint8, ok bool) {
	sc, isSC := c.(syscall.Conn)
	if !isSC {
		return nil, 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, 0, false
	}
	var gerr error
	err = rc.Control(func(fd uintptr) {
		info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	if err != nil || gerr != nil {
		return nil, 0, false
	}
	return info, (*[8]byte)(unsafe.Pointer(info))[7], true
}

// fastOpenRequested reports that TCP_FASTOPEN_CONNECT is set on c, by the
// default dialer or by a Config.DialFunc.
func fastOpenRequested(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		v, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_FASTOPEN_CONNECT)
	}); err != nil || gerr != nil {
		return false
	}
	return v != 0
}

// synPending reports that c's connect was deferred (Fast Open with a
// cookie) and nothing has been sent yet: no SYN has left.
func synPending(c net.Conn) bool {
	info, _, ok := tcpInfo(c)
	return ok && info.State == tcpSYNSent && info.Segs_out == 0
}

// fastOpenState reads what the kernel says about Fast Open on c, once its
// SYN-ACK has been processed (after the TLS handshake).
func fastOpenState(c net.Conn) FastOpen {
	if !fastOpenRequested(c) {
		return FastOpen{}
	}
	fo := FastOpen{Requested: true}
	info, b7, ok := tcpInfo(c)
	if !ok {
		return fo
	}
	fo.Accepted = info.Options&tcpiOptSYNData != 0
	if cpu.IsBigEndian {
		fo.Fail = FastOpenFail(b7 >> 5 & 3)
	} else {
		fo.Fail = FastOpenFail(b7 >> 1 & 3)
	}
	// Data not acknowledged and a retransmitted SYN both mean that the
	// first SYN carried data (tcp_rcv_fastopen_synack).
	fo.SYNData = fo.Accepted || fo.Fail == FastOpenDataNotAcked || fo.Fail == FastOpenSYNRetransmitted
	return fo
}

// notConnected reports that a handshake that failed with err on c (a Fast
// Open socket, whose connect returned before the SYN left) failed because
// the TCP connection was never made: refused, unreachable, or no SYN-ACK
// yet. It must be called before c is closed.
func notConnected(c net.Conn, err error) bool {
	for _, e := range []error{unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.ETIMEDOUT} {
		if errors.Is(err, e) {
			return true
		}
	}
	info, _, ok := tcpInfo(c)
	return ok && info.State == tcpSYNSent
}
