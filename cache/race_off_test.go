//go:build !race

package cache

// raceEnabled tells tests that the race detector is on; see race_on_test.go.
const raceEnabled = false
