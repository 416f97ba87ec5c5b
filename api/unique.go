package api

import (
	"context"
	"errors"

	"github.com/patronus-sdwan/patronus/storage"
)

// A write refused by a unique key is a 409 that names the resource holding the value, found
// once the write's transaction has rolled back (inside it, PostgreSQL answers nothing more).
// The holder committed before the write failed, so it is found unless it has gone since; then
// the answer names the value only.

// duplicateOf returns the unique key a failed write broke, or false if it broke none.
func duplicateOf(err error, key string) bool {
	var dup *storage.DuplicateError
	return errors.As(err, &dup) && dup.Key == key
}

// addressTaken explains a write refused because another endpoint has the address.
func (s *Server) addressTaken(ctx context.Context, err error, address string) error {
	if !duplicateOf(err, storage.UniqueEndpointAddress) {
		return err
	}
	holder, lookErr := s.store.Endpoints().ByAddress(ctx, address)
	if lookErr != nil {
		return conflictField("address", "already used by another endpoint",
			"another endpoint has address %s", storage.CanonicalAddress(address))
	}
	return conflictField("address", "already used by endpoint "+holder.ID+" ("+holder.Name+")",
		"endpoint %s (%s) of site %s already has address %s", holder.ID, holder.Name, holder.SiteID, holder.Address)
}

// pathEndsTaken explains a path write refused because a path already runs between the same
// endpoints in the same direction.
func (s *Server) pathEndsTaken(ctx context.Context, err error, local, remote string) error {
	if !duplicateOf(err, storage.UniquePathEnds) {
		return err
	}
	holder, lookErr := s.store.Paths().ByEnds(ctx, local, remote)
	if lookErr != nil {
		return conflictField("remote_endpoint_id", "a path already runs from local_endpoint_id to this endpoint",
			"a path already runs from endpoint %s to endpoint %s", local, remote)
	}
	return conflictField("remote_endpoint_id",
		"path "+resourceKey(holder.ID)+" ("+holder.Name+") already runs from local_endpoint_id to this endpoint",
		"path %d (%s) already runs from endpoint %s to endpoint %s", holder.ID, holder.Name, local, remote)
}

// tokenNameTaken explains a token write refused because a live token has the name.
func (s *Server) tokenNameTaken(ctx context.Context, err error, name string) error {
	if !duplicateOf(err, storage.UniqueTokenName) {
		return err
	}
	holder, lookErr := s.store.Tokens().LiveByName(ctx, name)
	if lookErr != nil {
		return conflictField("name", "already used by a token that is not revoked", "a token named %s already exists", name)
	}
	return conflictField("name", "already used by token "+resourceKey(holder.ID)+", which is not revoked",
		"token %d is already named %s; revoke it or choose another name", holder.ID, holder.Name)
}

// siteNameTaken explains a site write refused because another site has the name.
func (s *Server) siteNameTaken(ctx context.Context, err error, name string) error {
	if !duplicateOf(err, storage.UniqueSiteName) {
		return err
	}
	holder, lookErr := s.store.Sites().ByName(ctx, name)
	if lookErr != nil {
		return conflictField("name", "already taken", "a site named %s already exists", name)
	}
	return conflictField("name", "already taken by site "+holder.ID, "site %s is already named %s", holder.ID, name)
}

// policyNameTaken explains a policy write refused because another policy has the name.
func (s *Server) policyNameTaken(ctx context.Context, err error, name string) error {
	if !duplicateOf(err, storage.UniquePolicyName) {
		return err
	}
	holder, lookErr := s.store.Policies().ByName(ctx, name)
	if lookErr != nil {
		return conflictField("name", "already taken", "a policy named %s already exists", name)
	}
	return conflictField("name", "already taken by policy "+resourceKey(holder.ID), "policy %d is already named %s", holder.ID, name)
}
