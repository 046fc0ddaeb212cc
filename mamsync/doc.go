// Package mamsync will reconcile the server's archive state (latest-id and
// unreads from Bind 2, or a MAM metadata query) with the local message
// cache through XEP-0313 paging, storing every message exactly once.
//
// It is not built yet: the login (package login) already reports what the
// server says at bind time; the reconciliation is the next piece of work.
package mamsync
