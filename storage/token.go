package storage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

// TokenPrefix starts every secret this service issues, so leaked tokens are easy to grep for.
const TokenPrefix = "ptr_"

// NewTokenSecret returns a fresh random bearer token (256 bits of entropy).
func NewTokenSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// HashToken returns the hex SHA-256 of a secret: what is stored and looked up. A fast hash is
// right here because the secrets are random 256-bit values, not passwords.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// ValidRole reports whether r is one of the roles.
func ValidRole(r string) bool {
	return r == RoleViewer || r == RoleOperator || r == RoleAdmin
}

// TokenStore manages API tokens.
type TokenStore struct {
	db *gorm.DB
}

// Create issues a token with the given name and role, stores its hash and returns the secret,
// which is never stored or shown again. A live token of the same name is a *DuplicateError
// of UniqueTokenName.
func (s *TokenStore) Create(ctx context.Context, name, role string) (APIToken, string, error) {
	if strings.TrimSpace(name) == "" {
		return APIToken{}, "", fmt.Errorf("create token: %w: name is required", ErrInvalid)
	}
	if !ValidRole(role) {
		return APIToken{}, "", fmt.Errorf("create token: %w: role %q is not viewer, operator or admin", ErrInvalid, role)
	}
	secret, err := NewTokenSecret()
	if err != nil {
		return APIToken{}, "", err
	}
	tok := APIToken{Name: name, Role: role, Hash: HashToken(secret)}
	if err := s.db.WithContext(ctx).Create(&tok).Error; err != nil {
		return APIToken{}, "", translate(err, "create token")
	}
	return tok, secret, nil
}

// LiveByName returns the live (not revoked) token of the name; ErrNotFound if none. Names are
// unique among live tokens; a revoked token's name may be reused.
func (s *TokenStore) LiveByName(ctx context.Context, name string) (APIToken, error) {
	var tok APIToken
	err := s.db.WithContext(ctx).Take(&tok, "name = ? AND revoked_at IS NULL", name).Error
	return tok, translate(err, "live token named "+name)
}

// Authenticate returns the live (not revoked) token whose secret is given; ErrNotFound otherwise.
func (s *TokenStore) Authenticate(ctx context.Context, secret string) (APIToken, error) {
	hash := HashToken(secret)
	var tok APIToken
	err := s.db.WithContext(ctx).Take(&tok, "hash = ? AND revoked_at IS NULL", hash).Error
	if err != nil {
		return APIToken{}, translate(err, "authenticate token")
	}
	// The lookup is by hash; compare again in constant time so no timing depends on the secret.
	if subtle.ConstantTimeCompare([]byte(tok.Hash), []byte(hash)) != 1 {
		return APIToken{}, fmt.Errorf("authenticate token: %w", ErrNotFound)
	}
	return tok, nil
}

// MarkUsed records that token id authenticated a request at at. The write is skipped when
// last_used_at is already within minGap before at (another replica recorded a use that
// recently), and last_used_at never moves back. It writes no change record: a use is not an
// inventory change.
func (s *TokenStore) MarkUsed(ctx context.Context, id int64, at time.Time, minGap time.Duration) error {
	at = at.UTC()
	err := s.db.WithContext(ctx).Model(&APIToken{}).
		Where("id = ? AND (last_used_at IS NULL OR last_used_at < ?)", id, at.Add(-minGap)).
		UpdateColumn("last_used_at", at).Error
	if err != nil {
		return translate(err, fmt.Sprintf("mark token %d used", id))
	}
	return nil
}

// List returns one page of tokens (hashes included; callers must not show them).
func (s *TokenStore) List(ctx context.Context, p ListParams) (Page[APIToken], error) {
	return s.ListFiltered(ctx, TokenFilter{}, p)
}

// TokenFilter narrows a token listing; zero fields do not filter.
type TokenFilter struct {
	// Active leaves revoked tokens out.
	Active bool
	// Name is an exact name.
	Name string
	// Role is one role.
	Role string
	// Query is a case-insensitive substring of the name.
	Query string
}

// tokenList is how tokens are paged and the orders they can be listed in.
var tokenList = listSpec[APIToken]{
	keyColumn: "id", keyOf: func(x APIToken) string { return strconv.FormatInt(x.ID, 10) }, keyArg: int64Arg,
	sorts: map[string]sortColumn[APIToken]{
		"name":       nameSort(func(x APIToken) string { return x.Name }),
		"created_at": createdAtSort(func(x APIToken) time.Time { return x.CreatedAt }),
	},
}

// ListFiltered returns one page of the tokens f selects (hashes included; callers must not
// show them), in the order p asks.
func (s *TokenStore) ListFiltered(ctx context.Context, f TokenFilter, p ListParams) (Page[APIToken], error) {
	q := s.db.Model(&APIToken{})
	if f.Active {
		q = q.Where("revoked_at IS NULL")
	}
	if f.Name != "" {
		q = q.Where("name = ?", f.Name)
	}
	if f.Role != "" {
		q = q.Where("role = ?", f.Role)
	}
	if f.Query != "" {
		q = containsFold(q, f.Query, "name")
	}
	page, err := listSorted(ctx, q, tokenList, p)
	return page, translate(err, "list tokens")
}

// Revoke marks the token revoked; it stops authenticating at once.
func (s *TokenStore) Revoke(ctx context.Context, id int64) (APIToken, error) {
	var tok APIToken
	if err := s.db.WithContext(ctx).Take(&tok, "id = ?", id).Error; err != nil {
		return APIToken{}, translate(err, fmt.Sprintf("revoke token %d", id))
	}
	if tok.RevokedAt != nil {
		return tok, nil
	}
	now := s.db.NowFunc()
	err := s.db.WithContext(ctx).Model(&APIToken{}).Where("id = ?", id).Update("revoked_at", now).Error
	if err != nil {
		return APIToken{}, translate(err, fmt.Sprintf("revoke token %d", id))
	}
	tok.RevokedAt = &now
	return tok, nil
}
