package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/patronus-sdwan/patronus/storage"
)

// Principal is who a request acts as.
type Principal struct {
	// Name is the token's name, the actor in audit entries.
	Name string
	// Role is viewer, operator or admin.
	Role string
	// TokenID is the stored token's id; 0 for the configured admin token.
	TokenID int64
}

// roleRank orders roles: a higher rank can do everything a lower one can.
var roleRank = map[string]int{storage.RoleViewer: 1, storage.RoleOperator: 2, storage.RoleAdmin: 3}

// authCacheTTL bounds how long a token lookup is reused. Revocation through the API purges the
// cache at once; a token revoked behind the service's back stops working within this time.
const authCacheTTL = 5 * time.Second

type cachedPrincipal struct {
	p        Principal
	verified time.Time // when the database last confirmed the token
}

// authenticator resolves bearer tokens to principals.
type authenticator struct {
	tokens     func() *storage.TokenStore
	adminToken string
	grace      time.Duration // how long a verified token outlives an unreachable database
	guard      *authGuard
	uses       *tokenUseRecorder // notes each stored token's use for its last_used_at
	log        *slog.Logger
	now        func() time.Time // the cache's clock; tests move it

	mu      sync.Mutex
	cache   map[string]cachedPrincipal // by token hash
	unknown map[string]time.Time       // token hashes the database did not know, until when
}

func newAuthenticator(store *storage.Store, adminToken string, guard *authGuard, log *slog.Logger) *authenticator {
	mark := func(ctx context.Context, id int64, at time.Time) error {
		return store.Tokens().MarkUsed(ctx, id, at, tokenUseWindow)
	}
	return &authenticator{tokens: store.Tokens, adminToken: adminToken, grace: guard.limits.TokenGrace, guard: guard, log: log,
		uses: newTokenUseRecorder(mark, log), now: time.Now, cache: map[string]cachedPrincipal{}, unknown: map[string]time.Time{}}
}

// isAdminToken says whether secret is the configured admin token, which needs no database.
func (a *authenticator) isAdminToken(secret string) bool {
	return a.adminToken != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(a.adminToken)) == 1
}

// cached returns the principal of a token the database confirmed within authCacheTTL
// (fresh), or at least within the grace time (known).
func (a *authenticator) cached(secret string) (p Principal, fresh, known bool) {
	if a.isAdminToken(secret) {
		return Principal{Name: "admin-token", Role: storage.RoleAdmin}, true, true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.cache[storage.HashToken(secret)]
	if !ok {
		return Principal{}, false, false
	}
	age := a.now().Sub(c.verified)
	return c.p, age < authCacheTTL, age < max(a.grace, authCacheTTL)
}

// principal resolves a secret; errUnauthenticated when it is unknown or revoked. A token the
// database confirmed within the grace time is still accepted while the database is
// unavailable; an unknown token is remembered as unknown for negativeTTL.
func (a *authenticator) principal(ctx context.Context, secret string) (Principal, error) {
	if p, fresh, _ := a.cached(secret); fresh {
		return p, nil
	}
	hash := storage.HashToken(secret)
	now := a.now()
	a.mu.Lock()
	if until, ok := a.unknown[hash]; ok && now.Before(until) {
		a.mu.Unlock()
		return Principal{}, newError(errUnauthenticated, "the bearer token is unknown or revoked")
	}
	stale, hasStale := a.cache[hash]
	a.mu.Unlock()
	tok, err := a.tokens().Authenticate(ctx, secret)
	if errors.Is(err, storage.ErrNotFound) {
		a.mu.Lock()
		delete(a.cache, hash)
		if len(a.unknown) >= maxAuthEntries {
			clear(a.unknown)
		}
		a.unknown[hash] = now.Add(negativeTTL)
		a.mu.Unlock()
		return Principal{}, newError(errUnauthenticated, "the bearer token is unknown or revoked")
	}
	if err != nil {
		if hasStale && a.grace > 0 && now.Sub(stale.verified) < a.grace {
			a.log.Debug("token accepted from the cache: the database cannot confirm it", "token", stale.p.Name, "err", err)
			return stale.p, nil
		}
		return Principal{}, err
	}
	p := Principal{Name: tok.Name, Role: tok.Role, TokenID: tok.ID}
	a.mu.Lock()
	if len(a.cache) >= maxAuthEntries {
		clear(a.cache)
	}
	a.cache[hash] = cachedPrincipal{p: p, verified: now}
	a.mu.Unlock()
	return p, nil
}

// forget drops every cached lookup, after a revocation.
func (a *authenticator) forget() {
	a.mu.Lock()
	clear(a.cache)
	clear(a.unknown)
	a.mu.Unlock()
}

// middleware enforces the role each route needs; roleOf returns "" for public routes. It runs
// before anything reads the body, so a request without a valid token is answered at once
// and its connection closed, however much body it announced or however slowly it sends it.
func (a *authenticator) middleware(roleOf func(method, fullPath string) (string, bool)) gin.HandlerFunc {
	return func(c *gin.Context) {
		need, known := roleOf(c.Request.Method, c.FullPath())
		if !known || need == "" {
			c.Next()
			return
		}
		addr := c.ClientIP()
		header := c.GetHeader("Authorization")
		scheme, secret, ok := strings.Cut(header, " ")
		secret = strings.TrimSpace(secret)
		bearer := ok && strings.EqualFold(scheme, "Bearer") && secret != ""
		var p Principal
		hit, known := false, false
		if bearer {
			p, hit, known = a.cached(secret)
		}
		if !known {
			// Tokens verified before skip the allowance, so a limited address that also holds
			// a valid token (a NAT) keeps working.
			done, wait, admitted := a.guard.admit(addr)
			if !admitted {
				a.guard.failed(addr, "limited")
				refuse(c, &tooManyFailures{wait: wait})
				return
			}
			var ok, failed bool
			p, ok, failed = a.authenticate(c, header, secret, bearer, addr)
			done(failed)
			if !ok {
				return
			}
		} else if !hit {
			var ok bool
			if p, ok, _ = a.authenticate(c, header, secret, bearer, addr); !ok {
				return
			}
		}
		if roleRank[p.Role] < roleRank[need] {
			writeError(c, newError(errForbidden, "this operation needs the %s role; the token has %s", need, p.Role))
			return
		}
		a.uses.used(p.TokenID)
		c.Set(ctxPrincipal, p)
		c.Next()
	}
}

// authenticate resolves the request's token, or answers the request and says no (ok false);
// failed says the token itself was refused, not that the database could not say.
func (a *authenticator) authenticate(c *gin.Context, header, secret string, bearer bool, addr string) (p Principal, ok, failed bool) {
	switch {
	case header == "":
		a.guard.failed(addr, "missing")
		refuse(c, newError(errUnauthenticated, "send Authorization: Bearer <token>"))
		return Principal{}, false, true
	case !bearer:
		a.guard.failed(addr, "malformed")
		refuse(c, newError(errUnauthenticated, "the Authorization header is not a bearer token"))
		return Principal{}, false, true
	}
	p, err := a.principal(c.Request.Context(), secret)
	if errors.Is(err, errUnauthenticated) {
		a.guard.failed(addr, "unknown")
		c.Header("WWW-Authenticate", `Bearer realm="patronus", error="invalid_token"`) // RFC 6750 3.1
		refuse(c, err)
		return Principal{}, false, true
	}
	if err != nil {
		writeError(c, err)
		return Principal{}, false, false
	}
	return p, true, false
}

// principalOf returns the authenticated caller; the zero Principal on public routes.
func principalOf(c *gin.Context) Principal {
	if p, ok := c.Get(ctxPrincipal); ok {
		return p.(Principal)
	}
	return Principal{}
}

// tooManyFailures is the 429 of an address that failed to authenticate too often.
type tooManyFailures struct{ wait time.Duration }

func (e *tooManyFailures) Error() string {
	return "too many failed authentications from this address; retry later"
}

func (e *tooManyFailures) Unwrap() error { return errTooManyRequests }

// RetryAfter is when the address has an attempt again.
func (e *tooManyFailures) RetryAfter() time.Duration { return e.wait }

// forgetHash drops the cached lookup of one token, by the hash of its secret (a revocation
// applied from the change feed).
func (a *authenticator) forgetHash(hash string) {
	a.mu.Lock()
	delete(a.cache, hash)
	a.mu.Unlock()
}
