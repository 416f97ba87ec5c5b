package collector

import (
	"math"
	"math/bits"
	"sync/atomic"
)

// Counters saturate instead of wrapping. Each report carries at most MaxCount packets and
// bytes, but a few of them add up past what 64 bits hold: a wrapped counter would read as
// little traffic (or, converted to int64, as negative traffic), so every sum stops at the
// largest value instead. Raw counters stay monotonic under saturation, which keeps the
// differences the live view and the deltas are computed from non-negative.

// addSat returns a+b, or math.MaxUint64 if the sum does not fit.
func addSat(a, b uint64) uint64 {
	s, carry := bits.Add64(a, b, 0)
	if carry != 0 {
		return math.MaxUint64
	}
	return s
}

// atomicAddSat adds n to c, leaving c at math.MaxUint64 if the sum would wrap. A wrapped Add
// is detected by its result being smaller than n, and corrected at once; an Add racing with
// the correction either wraps too (and corrects again) or is overwritten by the saturated
// value, which is what it would have produced anyway.
func atomicAddSat(c *atomic.Uint64, n uint64) {
	if v := c.Add(n); v < n {
		c.Store(math.MaxUint64)
	}
}

// int64Sat returns v as an int64, math.MaxInt64 if it is larger.
func int64Sat(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// addInt64Sat returns a+b for non-negative a and b, math.MaxInt64 if the sum does not fit.
func addInt64Sat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
