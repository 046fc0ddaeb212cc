//go:build !linux

package pathemu

import "errors"

// Available reports that emulators need Linux (network namespaces and TUN
// devices); on Linux it checks the process's privileges.
func Available() error {
	return errors.New("pathemu: cannot emulate a path here: missing Linux (network namespaces and TUN devices)")
}
