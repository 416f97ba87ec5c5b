package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/storage"
)

// ListTokens answers one page of the active tokens the filters select, in the order asked,
// without their secrets or hashes.
func (s *Server) ListTokens(c *gin.Context, params apigen.ListTokensParams) {
	lp, err := sortedListParamsOf(c, params.Limit, params.Cursor, int64Key, params.Sort)
	if err != nil {
		writeError(c, err)
		return
	}
	f := storage.TokenFilter{Active: true, Name: deref(params.Name), Query: deref(params.Q), Role: string(deref(params.Role))}
	page, err := s.store.Tokens().ListFiltered(c.Request.Context(), f, lp)
	if err != nil {
		writeError(c, err)
		return
	}
	out := apigen.TokenList{Items: make([]apigen.Token, len(page.Items)), NextCursor: nextCursorOf(page.NextCursor)}
	for i, t := range page.Items {
		out.Items[i] = tokenOut(t)
	}
	c.JSON(http.StatusOK, out)
}

// CreateToken issues a token with its audit entry and answers its secret, this once; 409
// naming the live token that already has the name.
func (s *Server) CreateToken(c *gin.Context) {
	var in apigen.TokenCreate
	if err := decodeBodyStrict(c, &in); err != nil {
		writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	var tok storage.APIToken
	var secret string
	var seq int64
	err := s.store.Tx(ctx, func(tx *storage.Store) error {
		var err error
		if tok, secret, err = tx.Tokens().Create(ctx, in.Name, string(in.Role)); err != nil {
			return err
		}
		if tok, err = activeToken(ctx, tx, tok.ID); err != nil { // as stored, timestamps included
			return err
		}
		seq, err = s.record(ctx, tx, c, storage.KindTokenCreated, resourceKey(tok.ID), map[string]any{"after": tokenSummary(tok)}, storage.Effects{})
		return err
	})
	if err != nil {
		writeError(c, s.tokenNameTaken(ctx, err, in.Name))
		return
	}
	s.applied(c, seq)
	writeCreated(c, "/api/v1/tokens/"+strconv.FormatInt(tok.ID, 10), apigen.TokenCreated{
		ID: tok.ID, Name: tok.Name, Role: apigen.Role(tok.Role), Token: secret, CreatedAt: tok.CreatedAt,
	})
}

// DeleteToken revokes an active token with its audit entry; it gets 401 from the next request
// on, because the authenticator's cache is purged. 404 if no active token has this id.
func (s *Server) DeleteToken(c *gin.Context, tokenID apigen.TokenID) {
	ctx := c.Request.Context()
	var seq int64
	err := s.store.Tx(ctx, func(tx *storage.Store) error {
		before, err := activeToken(ctx, tx, tokenID)
		if err != nil {
			return err
		}
		if _, err := tx.Tokens().Revoke(ctx, tokenID); err != nil {
			return err
		}
		// The spec's audit actions have no "revoke": revocation is the token's deletion.
		seq, err = s.record(ctx, tx, c, storage.KindTokenRevoked, resourceKey(tokenID),
			map[string]any{"before": tokenSummary(before), "revoked": true}, storage.Effects{TokenHash: before.Hash})
		return err
	})
	if err != nil {
		writeError(c, err)
		return
	}
	s.applied(c, seq) // every replica forgets the token when it applies the revocation
	c.Status(http.StatusNoContent)
}

// activeToken reads a token that is not revoked; ErrNotFound otherwise. The token store has no
// lookup by id.
func activeToken(ctx context.Context, tx *storage.Store, id int64) (storage.APIToken, error) {
	var tok storage.APIToken
	res := tx.Gorm().WithContext(ctx).Where("id = ? AND revoked_at IS NULL", id).Limit(1).Find(&tok)
	if res.Error != nil {
		return tok, fmt.Errorf("look up token %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return tok, fmt.Errorf("token %d: %w", id, storage.ErrNotFound)
	}
	return tok, nil
}
