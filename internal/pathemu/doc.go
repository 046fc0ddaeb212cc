// Package pathemu emulates a network path at the packet level, for tests
// and benchmarks that must see real kernel TCP: handshakes, TCP Fast Open,
// retransmissions, congestion control, MTU.
//
// # What it builds
//
// [New] creates two network namespaces, a client side and a server side,
// each with its loopback up and one TUN device (MTU 1500 by default):
//
//	client namespace                          server namespace
//	198.18.0.1 ── TUN ══ forwarder (this process) ══ TUN ── 198.18.0.2
//
// Every IP packet the client namespace routes to 198.18.0.2 comes out of
// its TUN; the forwarder reads it, decides whether it is lost, delays it
// (one-way delay, jitter, serialization at a bandwidth) and writes it into
// the server namespace's TUN, where the kernel receives it as if from a
// wire. The other direction is the same with its own knobs ([Link]).
//
// Each direction is one goroutine locked to its own OS thread: packets
// wait in a heap ordered by due time, and the thread sleeps in ppoll on
// the TUN device with the next due time as timeout, its only timer (a
// high-resolution one, with 1 µs timer slack, where the runtime's own
// timers sleep in whole milliseconds when idle). The thread runs at nice
// -10 so that other processes on a busy machine delay forwarding less; it
// is never unlocked, and ends with its goroutine. Packet buffers are
// reused.
//
// # Why TUN devices and not a user-space proxy
//
// A TCP proxy (like internal/netem) terminates TCP on both sides: it never
// sees a SYN, so the handshake must be charged artificially, data carried
// in a SYN (TCP Fast Open) is invisible, and losses are hidden by the
// proxy's own loopback connections. Here the two kernels talk TCP to each
// other through the emulated path: connect takes a real round trip, a SYN
// can carry data and the server's SYN-ACK says whether it was accepted, a
// dropped packet is retransmitted by the sender's kernel, and a segment is
// never larger than the path's MTU (a ClientHello too large for one SYN is
// split as on a real path).
//
// # Counting round trips
//
// The forwarder parses the IPv4 and TCP headers of every packet and keeps
// [Stats] per TCP connection (4-tuple). The client of a connection is its
// endpoint in the client namespace; connections are expected to be opened
// from there (others are counted, but their SYN fields stay unset).
//
// A client flight starts when the client sends a packet that is a SYN or
// carries payload, and either it is the first such packet of the
// connection or it acknowledges more of the server's sequence space than
// the client's previous such packets did: the client has received a
// SYN-ACK, payload or a FIN from the server since. Pure ACKs, from either
// side, neither start a flight nor end one; a retransmission, or a second
// write in a row, carries the same acknowledgment and belongs to the
// flight in progress. The
// acknowledgment number says what the client's kernel had received when
// it sent the packet, so the count does not depend on when the forwarder
// got to run. [Stats.Flights] is thus the number of times the client sent
// after hearing from the server: the round trips of an exchange, TCP
// handshake included. A plain connect followed by a request costs 2 (the
// SYN, then the request after the SYN-ACK); with TCP Fast Open the
// request rides in the SYN and costs 1, or 2 if it is larger than the
// SYN can carry (about one MSS). Server data the client did not wait for
// (an unsolicited push) still ends the flight in progress; that is what
// the packets show. [Stats.Answered] is Flights as it was when the server
// last sent a SYN-ACK, payload or a FIN: the round trips of an exchange
// without a last write that nothing answers (an XMPP client's initial
// presence), which the forwarder may or may not have seen yet when the
// client reports that it is done.
//
// Byte and packet counts are of what the endpoints sent into the path,
// retransmissions and dropped packets included; drops are also counted
// separately.
//
// # Namespaces, threads, processes
//
// A network namespace belongs to an OS thread, not to a goroutine. The
// package creates each namespace with unshare(CLONE_NEWNET) on a locked
// thread and keeps an fd of it. [Namespace.Do] runs a function on a fresh
// goroutine locked to its thread, which enters the namespace with setns;
// when the function returns, the thread goes back to its original
// namespace and the goroutine ends without unlocking, so the runtime ends
// the thread instead of reusing it: no thread ever runs other goroutines
// inside an emulator's namespace. Sockets created inside Do keep their
// namespace and can be used from any goroutine afterwards. [Namespace.Dial],
// [Namespace.DialContext] (usable as a client's dial hook) and
// [Namespace.Listen] are built on Do; a net.Dialer's or net.ListenConfig's
// Control runs inside the namespace too, so socket options such as
// TCP_FASTOPEN_CONNECT can be set there. [Namespace.Start] starts an
// exec.Cmd from such a thread: a forked child inherits the namespace of the
// thread that forks it, so a server such as Prosody runs in the server
// namespace with no helper binary (nsenter) and no change to the Cmd.
// [Namespace.SetSysctl] writes /proc/sys/net/... from inside, where each
// namespace has its own values (net.ipv4.tcp_fastopen, for one).
//
// # Addresses, and why nothing leaves the machine
//
// The namespaces use [ClientAddr] and [ServerAddr] from 198.18.0.0/15,
// the range RFC 2544 reserves for benchmarking, as a point-to-point pair.
// Each namespace has only its loopback and its TUN, a host route to the
// peer and no default route, so a packet for any other address fails with
// "network unreachable" inside the namespace. The TUN devices are attached
// to nothing but the forwarder, which only ever writes a packet read from
// one of them into the other. The host's interfaces and routes are never
// touched, and several emulators (one after another or at the same time)
// do not see each other: each has its own pair of namespaces.
//
// # Requirements
//
// Linux, CAP_NET_ADMIN (TUN devices, interface configuration),
// CAP_SYS_ADMIN (unshare and setns) and a usable /dev/net/tun; the
// project's dev machines and CI run as root. [Available] reports what is
// missing. Tests that need an emulator must fail with that reason rather
// than skip.
//
// # Accuracy and cost
//
// A packet is typically written 0.1 to 0.3 ms after it is due (measured
// on a 2-core machine busy with other processes), so connect and echo
// times come within about a millisecond of the RTT; load that keeps both
// cores busy adds to that now and then, and -race a little. Packets of
// one direction leave in the order they came unless [Link.Reorder] is
// set. The forwarder reads each packet into a reused buffer and writes it
// from there, parsing only its headers: a read, a write and at most one
// ppoll per packet.
//
// Close an [Emulator] after the sockets and processes that use it; its
// namespaces disappear when the last of those is gone.
package pathemu
