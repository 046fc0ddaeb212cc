// Command pipebind-bench benchmarks pipebind's logins through an emulated
// network path (internal/netem) against a real Prosody 13 (-prosody) and
// the in-process server, next to the physical floor of a login, mellium's
// and go-xmpp's logins (-goxmpp, the peer in bench/cmd/goxmpp-peer), and
// adds a reconnect storm (-storm), a MAM catch-up from Prosody (-catchup)
// and CPU and heap profiles. It writes BENCHMARKS.md with -markdown;
// scripts/bench builds it and the go-xmpp peer and runs the whole set.
//
//	cd bench && go run ./cmd/pipebind-bench -h
//
// It lives in the nested module bench/, apart from the user's pipebind
// command, because it links the test harnesses (internal/prosodytest,
// internal/netem) that a user's binary must not carry.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	// SIGTERM too (timeout(1), CI): either must stop Prosody and the peers.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errUsage reports a command line that the flag set has already
// explained on stderr.
var errUsage = errors.New("usage")

// run runs the command line args; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	switch err := bench(ctx, args, stdout, stderr); {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "pipebind-bench: %s\n", oneLine(err))
		return 1
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// oneLine folds an error onto one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
