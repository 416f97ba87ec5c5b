package api

import (
	"context"
	"crypto/subtle"
	"errors"
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
	p       Principal
	expires time.Time
}

// authenticator resolves bearer tokens to principals.
type authenticator struct {
	tokens     func() *storage.TokenStore
	adminToken string
	now        func() time.Time // the cache's clock; tests move it

	mu    sync.Mutex
	cache map[string]cachedPrincipal // by token hash
}

func newAuthenticator(store *storage.Store, adminToken string) *authenticator {
	return &authenticator{tokens: store.Tokens, adminToken: adminToken, now: time.Now, cache: map[string]cachedPrincipal{}}
}

// principal resolves a secret; errUnauthenticated when it is unknown or revoked.
func (a *authenticator) principal(ctx context.Context, secret string) (Principal, error) {
	if a.adminToken != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(a.adminToken)) == 1 {
		return Principal{Name: "admin-token", Role: storage.RoleAdmin}, nil
	}
	hash := storage.HashToken(secret)
	now := a.now()
	a.mu.Lock()
	if c, ok := a.cache[hash]; ok && now.Before(c.expires) {
		a.mu.Unlock()
		return c.p, nil
	}
	a.mu.Unlock()
	tok, err := a.tokens().Authenticate(ctx, secret)
	if errors.Is(err, storage.ErrNotFound) {
		return Principal{}, newError(errUnauthenticated, "the bearer token is unknown or revoked")
	}
	if err != nil {
		return Principal{}, err
	}
	p := Principal{Name: tok.Name, Role: tok.Role, TokenID: tok.ID}
	a.mu.Lock()
	if len(a.cache) > 10_000 {
		clear(a.cache)
	}
	a.cache[hash] = cachedPrincipal{p: p, expires: now.Add(authCacheTTL)}
	a.mu.Unlock()
	return p, nil
}

// forget drops every cached lookup, after a revocation.
func (a *authenticator) forget() {
	a.mu.Lock()
	clear(a.cache)
	a.mu.Unlock()
}

// middleware enforces the role each route needs; roleOf returns "" for public routes.
func (a *authenticator) middleware(roleOf func(method, fullPath string) (string, bool)) gin.HandlerFunc {
	return func(c *gin.Context) {
		need, known := roleOf(c.Request.Method, c.FullPath())
		if !known || need == "" {
			c.Next()
			return
		}
		header := c.GetHeader("Authorization")
		scheme, secret, ok := strings.Cut(header, " ")
		if header == "" {
			writeError(c, newError(errUnauthenticated, "send Authorization: Bearer <token>"))
			return
		}
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
			writeError(c, newError(errUnauthenticated, "the Authorization header is not a bearer token"))
			return
		}
		p, err := a.principal(c.Request.Context(), strings.TrimSpace(secret))
		if err != nil {
			if errors.Is(err, errUnauthenticated) {
				c.Header("WWW-Authenticate", `Bearer realm="patronus", error="invalid_token"`) // RFC 6750 3.1
			}
			writeError(c, err)
			return
		}
		if roleRank[p.Role] < roleRank[need] {
			writeError(c, newError(errForbidden, "this operation needs the %s role; the token has %s", need, p.Role))
			return
		}
		c.Set(ctxPrincipal, p)
		c.Next()
	}
}

// principalOf returns the authenticated caller; the zero Principal on public routes.
func principalOf(c *gin.Context) Principal {
	if p, ok := c.Get(ctxPrincipal); ok {
		return p.(Principal)
	}
	return Principal{}
}

// forgetHash drops the cached lookup of one token, by the hash of its secret (a revocation
// applied from the change feed).
func (a *authenticator) forgetHash(hash string) {
	a.mu.Lock()
	delete(a.cache, hash)
	a.mu.Unlock()
}
