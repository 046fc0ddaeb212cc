//go:build linux

package pathemu

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Available returns nil when this process can create emulators, or an
// error that says what is missing: CAP_NET_ADMIN, CAP_SYS_ADMIN, a usable
// /dev/net/tun, or the right to create a namespace with a TUN device in it
// (a seccomp profile may forbid it even to root). It checks once per
// process (the last check creates a namespace, which is not free).
func Available() error { return available() }

var available = sync.OnceValue(checkAvailable)

func checkAvailable() error {
	var missing []string
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		missing = append(missing, fmt.Sprintf("capabilities unreadable (capget: %v)", err))
	} else {
		eff := uint64(data[0].Effective) | uint64(data[1].Effective)<<32
		if eff&(1<<unix.CAP_NET_ADMIN) == 0 {
			missing = append(missing, "CAP_NET_ADMIN (to create and configure TUN devices; run as root)")
		}
		if eff&(1<<unix.CAP_SYS_ADMIN) == 0 {
			missing = append(missing, "CAP_SYS_ADMIN (to create and enter network namespaces; run as root)")
		}
	}
	if fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
		missing = append(missing, fmt.Sprintf("a usable /dev/net/tun (%v; modprobe tun, or give a container the device)", err))
	} else {
		unix.Close(fd)
	}
	if len(missing) == 0 {
		// Try it: a namespace with a TUN device in it.
		ns, err := newNamespace("probe", clientIP, func() error {
			fd, err := openTUN(tunName)
			if err == nil {
				unix.Close(fd)
			}
			return err
		})
		if err != nil {
			missing = append(missing, fmt.Sprintf("the right to create a network namespace with a TUN device (%v)", err))
		} else {
			ns.close()
		}
	}
	if len(missing) > 0 {
		return errors.New("pathemu: cannot emulate a path here: missing " + strings.Join(missing, "; "))
	}
	return nil
}
