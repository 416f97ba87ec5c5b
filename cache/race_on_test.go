//go:build race

package cache

// raceEnabled tells tests that the race detector is on. Under it sync.Pool
// drops a quarter of its Puts, so ristretto's read buffer (a pool of 64-key
// stripes) almost never delivers read counts to the admission policy.
const raceEnabled = true
