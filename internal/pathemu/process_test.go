//go:build linux

package pathemu

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// helperEnv, when set, makes the test binary run runHelper instead of the
// tests.
const helperEnv = "PATHEMU_TEST_HELPER"

// helperAddr is where the helper listens: an address that exists only in
// the server namespace.
const helperAddr = ServerAddr + ":7"

// runHelper runs the helper named by helperEnv: "echo" listens on
// helperAddr, says "ready", echoes one connection and exits; "available"
// prints what Available says.
func runHelper() int {
	if os.Getenv(helperEnv) == "available" {
		fmt.Println(Available())
		return 0
	}
	ln, err := net.Listen("tcp", helperAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	fmt.Println("ready")
	c, err := ln.Accept()
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	io.Copy(c, c)
	c.Close()
	return 0
}

// helperEnviron is the environment of a helper process.
func helperEnviron(helper string) []string {
	// GORACE: a -race binary otherwise sleeps a second before exiting.
	return append(os.Environ(), helperEnv+"="+helper, "GORACE=atexit_sleep_ms=0")
}

func TestStartInServerNamespace(t *testing.T) {
	e := newEmu(t, RTT(10*time.Millisecond))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = helperEnviron("echo")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Server().Start(cmd); err != nil {
		t.Fatal(err)
	}
	exited := false
	t.Cleanup(func() {
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("helper said %q, %v", line, err)
	}

	// The child is in the server namespace, not in ours.
	child, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	server, err := os.Stat(e.Server().Path())
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(child, server) {
		t.Fatalf("the helper is not in the server namespace")
	}

	c := dial(t, e, nil, helperAddr)
	echo(t, c, "hello from the client namespace")
	c.Close()
	exited = true
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
}

// TestAvailableSaysWhatIsMissing runs Available in a process whose
// capability bounding set lacks what emulators need (as root in a
// container that does not grant them).
func TestAvailableSaysWhatIsMissing(t *testing.T) {
	if testing.Short() {
		t.Skip("needs root to drop capabilities; not run with -short")
	}
	if err := Available(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", "--bounding-set=-net_admin,-sys_admin", "--", os.Args[0], "-test.run=^$")
	cmd.Env = helperEnviron("available")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("setpriv: %v: %s", err, out)
	}
	for _, want := range []string{"CAP_NET_ADMIN", "CAP_SYS_ADMIN"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("without %s, Available said: %s", want, out)
		}
	}
}
