// Package kdfcount counts the PBKDF2 derivations package login runs, so
// that tests and benchmarks in other packages can assert what a login cost
// (a login with cached SCRAM keys or a FAST token derives nothing). It is
// internal: a counter is not part of pipebind's API.
package kdfcount

import "sync/atomic"

var pbkdf2 atomic.Uint64

// AddPBKDF2 records one PBKDF2 derivation.
func AddPBKDF2() { pbkdf2.Add(1) }

// PBKDF2 returns how many PBKDF2 derivations this process has run. Tests
// compare two readings; tests running in parallel must not share them.
func PBKDF2() uint64 { return pbkdf2.Load() }
