// Command pipebind logs in to XMPP servers with the fewest round trips and
// shows what it did; it also sends, receives and keeps a local message
// cache level, for shell scripts and bots.
//
//	pipebind probe [flags] ACCOUNT           log in once and print a report
//	pipebind send [flags] ACCOUNT TO TEXT    send a chat message
//	pipebind listen [flags] ACCOUNT          print incoming messages as they arrive
//	pipebind mark-read [flags] ACCOUNT PEER  mark a conversation read (XEP-0490)
//	pipebind sync [flags] ACCOUNT            bring the local message cache level with the archive
//	pipebind history [flags] ACCOUNT         list cached messages
//	pipebind cache show|forget               inspect or delete what the cache holds
//	pipebind demo [flags]                    run the embedded test server and compare logins
//	pipebind version                         print the version
//
// Flags may come anywhere on the command line. Run "pipebind COMMAND -h"
// for a command's flags. The exit status says what failed (README, "Exit
// status"): 0 ok, 1 other, 2 usage, 3 connect, 4 TLS, 5 authentication,
// 6 protocol, 7 timeout, 130 interrupted.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"mellium.im/xmpp/jid"
)

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		signal.Reset() // a second Ctrl-C ends the process at once
		cancel(signalError{s})
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// commands maps each command to the function that runs it.
var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
	"probe":     probe,
	"send":      send,
	"listen":    listen,
	"mark-read": markRead,
	"sync":      syncCmd,
	"history":   history,
	"cache":     cacheCmd,
	"demo":      demo,
	"version":   version,
}

// run dispatches a command line; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	stderr = &syncWriter{w: stderr}
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	args = commandFirst(args)
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return exitOK
	case "-version", "--version":
		name = "version"
	}
	cmd, ok := commands[name]
	if !ok {
		return fail(ctx, "", usagef("unknown command %q (pipebind help lists them)", name), wantsJSON(args), stdout, stderr)
	}
	err := cmd(ctx, args[1:], stdout, stderr)
	switch err {
	case nil, errHelp:
		return exitOK
	}
	return fail(ctx, name, err, wantsJSON(args[1:]), stdout, stderr)
}

// commandFirst moves the command name to the front when flags come before
// it ("pipebind -json probe ACCOUNT"): the first argument that names a
// command, before any "--".
func commandFirst(args []string) []string {
	if _, ok := commands[args[0]]; ok || !strings.HasPrefix(args[0], "-") {
		return args
	}
	for i, a := range args {
		if a == "--" {
			break
		}
		if _, ok := commands[a]; ok {
			return append(append([]string{a}, args[:i]...), args[i+1:]...)
		}
	}
	return args
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: pipebind COMMAND [flags] ARGS

commands:
  probe ACCOUNT            log in and report the path, round trips, timings and credential used
  send ACCOUNT TO TEXT     send a chat message (TEXT - reads stdin)
  listen ACCOUNT           print messages as they arrive, keeping the message cache level
  mark-read ACCOUNT PEER   mark the conversation with PEER read (XEP-0490)
  sync ACCOUNT             bring the local message cache level with the server's archive
  history ACCOUNT          list the messages held in the local cache
  cache show|forget        inspect or delete what the cache stores (secrets redacted)
  demo                     log in to an embedded test server with each path, cold and warm
  version                  print the version and the build's revision

Flags may come anywhere; "pipebind COMMAND -h" lists a command's flags.
Environment: PIPEBIND_PASSWORD (the password), PIPEBIND_ADDR (-addr),
PIPEBIND_CA (-ca), PIPEBIND_CACHE (-cache).
Exit status: 0 ok, 1 other, 2 usage, 3 connect, 4 TLS, 5 authentication,
6 protocol, 7 timeout, 130 interrupted.
`)
}

// accountJID parses an account address: user@domain, no resource (the
// server assigns it).
func accountJID(s string) (jid.JID, error) {
	j, err := jid.Parse(s)
	if err != nil || j.Localpart() == "" {
		return jid.JID{}, usagef("%q is not an account JID (user@domain)", s)
	}
	if j.Resourcepart() != "" {
		return jid.JID{}, usagef("%q: give the account without a resource (%s): the server assigns the resource", s, j.Bare())
	}
	return j, nil
}
