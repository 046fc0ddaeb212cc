package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"mellium.im/xmpp/jid"
)

// usageError is a mistake on the command line or in the environment,
// found before connecting: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errHelp is returned when -h asked for a command's help: exit status 0.
var errHelp = errors.New("help")

// command describes a command's positional arguments for its usage line
// and checks.
type command struct {
	name  string   // e.g. "probe"
	args  []string // the positional arguments, e.g. {"ACCOUNT"}
	about string   // what it does, printed under the usage line
	// optional is how many of the last args may be left out.
	optional int
}

// parse parses args with fs, accepting flags anywhere among the positional
// arguments ("probe alice@example.org -json" as "probe -json
// alice@example.org"); "--" ends the flags. It returns the positional
// arguments, checked against c.args, errHelp after -h (the help is then
// printed on stdout), or a usageError that names the mistake.
func (c command) parse(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	fs.SetOutput(io.Discard) // the error is reported once, by run
	fs.Usage = func() {}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.help(fs, stdout)
				return nil, errHelp
			}
			return nil, usagef("%v (pipebind %s -h lists the flags)", err, c.name)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...) // everything after "--" is an argument
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if n := len(c.args); len(pos) > n || len(pos) < n-c.optional {
		want := strings.Join(c.args, " ")
		switch {
		case n == 0:
			return nil, usagef("takes no arguments, got %q (pipebind %s -h)", pos, c.name)
		case len(pos) > n:
			return nil, usagef("too many arguments: want %s, got %q (flags may come anywhere; pipebind %s -h)", want, pos, c.name)
		}
		return nil, usagef("missing %s (usage: pipebind %s [flags] %s)", strings.Join(c.args[len(pos):], " "), c.name, want)
	}
	return pos, nil
}

// parseAccount is parse for a command whose first argument is the
// account (user@domain).
func (c command) parseAccount(fs *flag.FlagSet, args []string, stdout io.Writer) (jid.JID, []string, error) {
	pos, err := c.parse(fs, args, stdout)
	if err != nil {
		return jid.JID{}, nil, err
	}
	j, err := accountJID(pos[0])
	return j, pos, err
}

// argJID parses the positional argument name (TO, PEER) as a JID.
func argJID(name, s string) (jid.JID, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return jid.JID{}, usagef("%s %q is not a JID: %v", name, s, err)
	}
	return j, nil
}

// atLeastZero checks a count flag.
func atLeastZero(name string, v int, zero string) error {
	if v < 0 {
		return usagef("%s %d: want 0 (%s) or more", name, v, zero)
	}
	return nil
}

// help prints the usage line, what the command does and its flags.
func (c command) help(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, "usage: pipebind %s [flags] %s\n\n%s\n\nflags (anywhere on the line):\n", c.name, strings.Join(c.args, " "), c.about)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// wantsJSON reports whether the command line asks for -json, so that even
// a failure to parse it is reported as JSON.
func wantsJSON(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-json", "--json", "-json=true", "--json=true":
			return true
		}
	}
	return false
}

// The environment variables that give flags their defaults; a flag on the
// command line wins. An empty variable counts as unset.
const (
	envAddr     = "PIPEBIND_ADDR"     // -addr
	envCA       = "PIPEBIND_CA"       // -ca
	envCache    = "PIPEBIND_CACHE"    // -cache
	envPassword = "PIPEBIND_PASSWORD" // the password (never a flag)
)

// envOr returns the environment variable name, or def when it is unset or
// empty.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
