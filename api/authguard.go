package api

import (
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of AuthLimits.
const (
	DefaultAuthFailuresPerMinute = 30
	DefaultAuthFailureLogEvery   = time.Minute
	DefaultTokenGrace            = 15 * time.Minute
)

// negativeTTL is how long an unknown token is remembered as unknown, so a client repeating
// it costs no database query. Creating a token through the API forgets them at once.
const negativeTTL = 10 * time.Second

// maxAuthEntries bounds each of the authenticator's maps (verified tokens, unknown tokens,
// per-address limiters); past it the map starts again empty.
const maxAuthEntries = 10_000

// AuthLimits bound what failed authentications may cost, and say how long verified tokens
// outlive an unreachable database.
type AuthLimits struct {
	// FailuresPerMinute is how many failed authentications a client address may make per
	// minute (also the burst); past it the address is answered 429 with Retry-After, without
	// a database lookup, until its allowance refills. DefaultAuthFailuresPerMinute when 0.
	FailuresPerMinute int
	// LogEvery is the least time between two log lines about failed authentications; the
	// line counts those in between. DefaultAuthFailureLogEvery when 0.
	LogEvery time.Duration
	// TokenGrace is how long a token verified against the database is still accepted while
	// the database cannot be reached, so routers keep ingesting through an outage.
	// DefaultTokenGrace when 0; negative turns it off.
	TokenGrace time.Duration
}

func (l AuthLimits) withDefaults() AuthLimits {
	if l.FailuresPerMinute <= 0 {
		l.FailuresPerMinute = DefaultAuthFailuresPerMinute
	}
	if l.LogEvery <= 0 {
		l.LogEvery = DefaultAuthFailureLogEvery
	}
	if l.TokenGrace == 0 {
		l.TokenGrace = DefaultTokenGrace
	}
	return l
}

// authGuard limits, counts and logs failed authentications per client address.
type authGuard struct {
	limits   AuthLimits
	log      *slog.Logger
	failures *prometheus.CounterVec
	now      func() time.Time

	mu       sync.Mutex
	limiters map[string]*allowance
	lastLog  time.Time
	unlogged int            // failures since the last log line
	addrs    map[string]int // their addresses, at most a few kept
}

func newAuthGuard(l AuthLimits, log *slog.Logger, reg prometheus.Registerer) (*authGuard, error) {
	g := &authGuard{
		limits: l.withDefaults(), log: log, now: time.Now,
		limiters: map[string]*allowance{}, addrs: map[string]int{},
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patronus_auth_failures_total",
			Help: "Failed authentications by reason: missing (no token), malformed, unknown (unknown or revoked token), limited (refused with 429 before any lookup).",
		}, []string{"reason"}),
	}
	for _, r := range []string{"missing", "malformed", "unknown", "limited"} {
		g.failures.WithLabelValues(r)
	}
	return g, reg.Register(g.failures)
}

// allowance is one address's token bucket of failed authentications: it holds at most
// FailuresPerMinute and refills at that rate. (x/time/rate cannot give back a token once
// taken: Reservation.Cancel restores nothing after the reservation's time to act.)
type allowance struct {
	tokens float64
	at     time.Time
}

// refill brings the bucket up to now and returns it.
func (g *authGuard) refill(b *allowance, now time.Time) *allowance {
	if now.After(b.at) {
		b.tokens = min(float64(g.limits.FailuresPerMinute), b.tokens+now.Sub(b.at).Minutes()*float64(g.limits.FailuresPerMinute))
		b.at = now
	}
	return b
}

// admit takes one failure's worth of addr's allowance before its token is looked up, so
// concurrent requests cannot all pass the check at once; done(false) gives it back when the
// token turned out good. When the allowance is used up, admit says when addr may retry.
func (g *authGuard) admit(addr string) (done func(failed bool), wait time.Duration, ok bool) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	b, found := g.limiters[addr]
	if !found {
		if len(g.limiters) >= maxAuthEntries {
			g.sweepLocked(now)
		}
		b = &allowance{tokens: float64(g.limits.FailuresPerMinute), at: now}
		g.limiters[addr] = b
	}
	if g.refill(b, now).tokens < 1 {
		perToken := time.Minute / time.Duration(g.limits.FailuresPerMinute)
		d := time.Duration((1 - b.tokens) * float64(perToken))
		return nil, max(time.Second, time.Duration(math.Ceil(d.Seconds()))*time.Second), false
	}
	b.tokens--
	return func(failed bool) {
		if failed {
			return
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		b.tokens = min(float64(g.limits.FailuresPerMinute), b.tokens+1)
	}, 0, true
}

// failed counts a failed authentication from addr and logs at most one line per LogEvery.
func (g *authGuard) failed(addr, reason string) {
	g.failures.WithLabelValues(reason).Inc()
	now := g.now()
	g.mu.Lock()
	g.unlogged++
	if len(g.addrs) < 5 || g.addrs[addr] > 0 {
		g.addrs[addr]++
	}
	if now.Sub(g.lastLog) < g.limits.LogEvery {
		g.mu.Unlock()
		return
	}
	n, addrs := g.unlogged, g.addrs
	g.unlogged, g.addrs, g.lastLog = 0, map[string]int{}, now
	g.mu.Unlock()
	g.log.Warn("failed authentications", "count", n, "interval", g.limits.LogEvery.String(), "client_addrs", addrs, "last_addr", addr, "last_reason", reason)
}

// sweepLocked drops the limiters of addresses whose allowance is full again, and all of them
// if that frees nothing: the map stays bounded under a flood from many addresses.
func (g *authGuard) sweepLocked(now time.Time) {
	for a, b := range g.limiters {
		if g.refill(b, now).tokens >= float64(g.limits.FailuresPerMinute) {
			delete(g.limiters, a)
		}
	}
	if len(g.limiters) >= maxAuthEntries {
		clear(g.limiters)
	}
}
