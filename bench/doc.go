// Package bench is the comparison harness of pipebind. It is a nested
// module so that its peers (github.com/xmppo/go-xmpp) stay out of the
// dependency graph of applications that import pipebind.
//
// cmd/goxmpp-peer speaks the peer protocol of "pipebind bench" (see
// cmd/pipebind/bench_peer.go in the parent module) for go-xmpp v0.4.1;
// "pipebind bench -goxmpp BINARY" adds its rows. scripts/bench builds it.
package bench
