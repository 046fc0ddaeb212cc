//go:build race

package xmpptest

// raceEnabled is true when the race detector is on: time limits in tests
// are widened, as instrumented code runs several times slower.
const raceEnabled = true
