// Package bench is the comparison harness of pipebind. It is a nested
// module so that its peers (github.com/xmppo/go-xmpp) stay out of the
// dependency graph of applications that import pipebind, and so that the
// harness stays out of the user's pipebind command.
//
// cmd/pipebind-bench is the benchmark: logins through an emulated network
// against Prosody and the in-process server, the reconnect storm, the MAM
// catch-up and the profiles; it writes BENCHMARKS.md. Its packages import
// the parent module's internal/ packages (netem, prosodytest, xmpptest):
// Go's internal rule goes by import path, and this module's path is below
// github.com/pipebind/pipebind.
//
// cmd/goxmpp-peer speaks the peer protocol of pipebind-bench (see
// cmd/pipebind-bench/peer.go) for go-xmpp v0.4.1; "pipebind-bench -goxmpp
// BINARY" adds its rows. scripts/bench builds both.
package bench
