package cache

import (
	"fmt"
	"time"
)

// Option changes how New builds a Cache.
type Option func(*config)

type config struct {
	clock       func() time.Time // nil: the monotonic clock
	clockSet    bool
	cost        any // func(V) int64, checked against V in New
	numCounters int64
}

// WithClock makes the cache judge expiry by clock instead of time.Now. Tests
// use it to move time forward without sleeping.
func WithClock(clock func() time.Time) Option {
	return func(c *config) { c.clock, c.clockSet = clock, true }
}

// WithCost gives each entry a cost computed from its value (bytes, say)
// instead of 1, so maxCost bounds the sum of costs rather than the number of
// entries. An entry whose cost exceeds maxCost is never admitted. V must be
// the value type of the cache it is passed to, or New fails. With a byte cost
// also set WithNumCounters to about ten times the number of entries expected.
func WithCost[V any](cost func(V) int64) Option {
	return func(c *config) { c.cost = cost }
}

// WithNumCounters sets how many keys ristretto's admission policy tracks the
// access frequency of. The default is ten times maxCost, within [1<<10, 1<<22],
// which is right when every entry costs 1.
func WithNumCounters(n int64) Option {
	return func(c *config) { c.numCounters = n }
}

// Bounds of the default number of counters. Below the floor the frequency
// sketch halves itself every few reads and admission degrades to chance.
const (
	minDefaultCounters = 1 << 10
	maxDefaultCounters = 1 << 22
)

func buildConfig[V any](maxCost int64, opts []Option) (config, func(V) int64, error) {
	var cfg config
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.clockSet && cfg.clock == nil {
		return cfg, nil, fmt.Errorf("nil clock")
	}
	costOf := func(V) int64 { return 1 }
	if cfg.cost != nil {
		f, ok := cfg.cost.(func(V) int64)
		if !ok {
			return cfg, nil, fmt.Errorf("cost function %T does not take the cache's value type", cfg.cost)
		}
		costOf = f
	}
	if cfg.numCounters == 0 {
		cfg.numCounters = maxDefaultCounters
		if maxCost < maxDefaultCounters/10 {
			cfg.numCounters = max(10*maxCost, minDefaultCounters)
		}
	}
	if cfg.numCounters <= 0 {
		return cfg, nil, fmt.Errorf("number of counters must be positive, got %d", cfg.numCounters)
	}
	return cfg, costOf, nil
}
