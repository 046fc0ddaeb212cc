//go:build !race

package xmpptest

// raceEnabled is true when the race detector is on (race_test.go).
const raceEnabled = false
