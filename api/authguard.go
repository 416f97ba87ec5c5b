package api

import (
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
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
	limiters map[string]*rate.Limiter
	lastLog  time.Time
	unlogged int            // failures since the last log line
	addrs    map[string]int // their addresses, at most a few kept
}

func newAuthGuard(l AuthLimits, log *slog.Logger, reg prometheus.Registerer) (*authGuard, error) {
	g := &authGuard{
		limits: l.withDefaults(), log: log, now: time.Now,
		limiters: map[string]*rate.Limiter{}, addrs: map[string]int{},
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

// admit takes one attempt from addr's allowance before its token is looked up. It says
// no, with the wait until the next attempt, when the allowance is used up. done gives the
// attempt back unless it failed, so valid tokens never use up an allowance; taking it up
// front keeps concurrent attempts from overshooting.
func (g *authGuard) admit(addr string) (done func(failed bool), wait time.Duration, ok bool) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	lim, found := g.limiters[addr]
	if !found {
		if len(g.limiters) >= maxAuthEntries {
			g.sweepLocked(now)
		}
		lim = rate.NewLimiter(rate.Limit(float64(g.limits.FailuresPerMinute)/60), g.limits.FailuresPerMinute)
		g.limiters[addr] = lim
	}
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); !r.OK() || d > 0 {
		r.CancelAt(now)
		return nil, max(time.Second, time.Duration(math.Ceil(d.Seconds()))*time.Second), false
	}
	return func(failed bool) {
		if !failed {
			r.Cancel()
		}
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
	for a, lim := range g.limiters {
		if lim.TokensAt(now) >= float64(lim.Burst()) {
			delete(g.limiters, a)
		}
	}
	if len(g.limiters) >= maxAuthEntries {
		clear(g.limiters)
	}
}
