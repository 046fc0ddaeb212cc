// Command pipebind logs in to XMPP servers with the fewest round trips and
// shows what it did.
//
//	pipebind probe [flags] JID   log in once and print a report
//	pipebind demo [flags]        run the embedded test server and compare logins
//	pipebind sync [flags] JID    reconcile the local message cache with the archive
//	pipebind history [flags] JID list cached messages
//
// Run "pipebind COMMAND -h" for a command's flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"mellium.im/xmpp/jid"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches a command line; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	switch args[0] {
	case "probe":
		err = probe(ctx, args[1:], stdout, stderr)
	case "demo":
		err = demo(ctx, args[1:], stdout, stderr)
	case "sync":
		err = syncCmd(ctx, args[1:], stdout, stderr)
	case "history":
		err = history(ctx, args[1:], stdout, stderr)
	case "cache":
		err = cacheCmd(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "pipebind: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	switch err {
	case nil:
		return 0
	case errUsage:
		return 2
	}
	fmt.Fprintf(stderr, "pipebind %s: %v\n", args[0], oneLine(err))
	return 1
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: pipebind COMMAND [flags]

commands:
  probe [flags] JID   log in to JID's server and report path, round trips and timings
  demo [flags]        log in to an embedded test server with each path, cold and warm
  sync [flags] JID    log in and bring the local message cache level with the archive
  history [flags] JID list the messages held in the local cache
  cache show|forget   inspect or delete what the cache stores (keys redacted)

Run "pipebind COMMAND -h" for the flags of a command.
`)
}

// parseAccount parses the flags of a command that takes one account JID
// (user@domain) as its only argument.
func parseAccount(fs *flag.FlagSet, args []string) (jid.JID, error) {
	if err := fs.Parse(args); err != nil {
		return jid.JID{}, errUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return jid.JID{}, errUsage
	}
	return accountJID(fs.Arg(0))
}

// accountJID parses an account address.
func accountJID(s string) (jid.JID, error) {
	j, err := jid.Parse(s)
	if err != nil || j.Localpart() == "" {
		return jid.JID{}, fmt.Errorf("%q is not an account JID (user@domain)", s)
	}
	return j, nil
}
