//go:build linux

package pathemu

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// tunName is the TUN device's name in each namespace (each has its own).
const tunName = "pathemu0"

// openTUN creates a TUN device (raw IP packets, no packet-info header) in
// the calling thread's network namespace (the device belongs to the
// namespace that opens /dev/net/tun) and returns its fd, non-blocking.
func openTUN(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("pathemu: open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("pathemu: TUNSETIFF %s: %w", name, err)
	}
	return fd, nil
}

// setupSide runs inside a new namespace: it brings lo up, creates the TUN
// device and configures it as the point-to-point link local <-> peer
// (both /32, so the only route it adds is the host route to peer). IPv6
// is turned off on the TUN before it goes up, so that it sends no router
// solicitations or MLD reports onto the path.
func setupSide(local, peer netip.Addr, mtu int) (int, error) {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("pathemu: %w", err)
	}
	defer unix.Close(s)
	if err := ifUp(s, "lo"); err != nil {
		return -1, err
	}
	tun, err := openTUN(tunName)
	if err != nil {
		return -1, err
	}
	err = writeProcSys("/proc/sys/net/ipv6/conf/"+tunName+"/disable_ipv6", "1")
	if errors.Is(err, os.ErrNotExist) {
		err = nil // a kernel without IPv6
	}
	if err == nil {
		err = configure(s, tunName, local, peer, mtu)
	}
	if err != nil {
		unix.Close(tun)
		return -1, err
	}
	return tun, nil
}

// configure sets the address, the point-to-point peer, a /32 netmask, the
// MTU and the up flag of an interface, with the classic ioctls (what
// ifconfig NAME LOCAL pointopoint PEER mtu MTU up does).
func configure(s int, name string, local, peer netip.Addr, mtu int) error {
	mask := netip.AddrFrom4([4]byte{255, 255, 255, 255})
	steps := []struct {
		req  uint
		what string
		set  func(*unix.Ifreq) error
	}{
		{unix.SIOCSIFADDR, "address", func(r *unix.Ifreq) error { return r.SetInet4Addr(local.AsSlice()) }},
		{unix.SIOCSIFNETMASK, "netmask", func(r *unix.Ifreq) error { return r.SetInet4Addr(mask.AsSlice()) }},
		{unix.SIOCSIFDSTADDR, "peer address", func(r *unix.Ifreq) error { return r.SetInet4Addr(peer.AsSlice()) }},
		{unix.SIOCSIFMTU, "MTU", func(r *unix.Ifreq) error { r.SetUint32(uint32(mtu)); return nil }},
	}
	for _, st := range steps {
		ifr, err := unix.NewIfreq(name)
		if err == nil {
			err = st.set(ifr)
		}
		if err == nil {
			err = unix.IoctlIfreq(s, st.req, ifr)
		}
		if err != nil {
			return fmt.Errorf("pathemu: set the %s of %s: %w", st.what, name, err)
		}
	}
	return ifUp(s, name)
}

// ifUp sets IFF_UP on an interface.
func ifUp(s int, name string) error {
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		err = unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr)
	}
	if err == nil {
		ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
		err = unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr)
	}
	if err != nil {
		return fmt.Errorf("pathemu: bring %s up: %w", name, err)
	}
	return nil
}
