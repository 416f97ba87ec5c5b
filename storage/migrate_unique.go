package storage

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"gorm.io/gorm"
)

// uniqueInventoryVersion is the migration (00004_inventory_unique.sql) that adds the unique
// keys of paths, endpoint addresses and live token names.
const uniqueInventoryVersion = 4

// maxDuplicatesShown bounds the duplicate groups one migration error lists per kind.
const maxDuplicatesShown = 20

// prepareUniqueInventory readies a database below uniqueInventoryVersion for its unique
// indexes, in one transaction: it rewrites endpoint addresses to their canonical form (the
// form every write stores, so that the index compares addresses, not spellings), then looks
// for rows the indexes would refuse. Duplicates are not resolved for the operator: which path,
// endpoint or token is the right one is theirs to say. So when there are any, the transaction
// rolls back (the addresses included), nothing is migrated, and the error names every group.
func (db *DB) prepareUniqueInventory(ctx context.Context) error {
	err := db.Gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var problems []string
		endpoints, err := canonicalizeAddresses(tx)
		if err != nil {
			return err
		}
		problems = append(problems, endpoints...)
		paths, err := duplicatePaths(tx)
		if err != nil {
			return err
		}
		problems = append(problems, paths...)
		tokens, err := duplicateTokenNames(tx)
		if err != nil {
			return err
		}
		problems = append(problems, tokens...)
		if len(problems) > 0 {
			return fmt.Errorf("%w: the inventory holds rows the new unique keys refuse; delete or change all but one of each, then start again: %s",
				ErrConflict, strings.Join(problems, "; "))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate %s database to version %d (unique paths, endpoint addresses and token names): %w",
			db.Dialect, uniqueInventoryVersion, err)
	}
	return nil
}

// canonicalizeAddresses rewrites every endpoint address to its canonical form and describes
// the groups of endpoints that then share one.
func canonicalizeAddresses(tx *gorm.DB) ([]string, error) {
	var rows []Endpoint
	if err := tx.Select("id", "site_id", "name", "address").Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("read endpoints: %w", err)
	}
	byAddress := map[string][]Endpoint{}
	var order []string
	for _, e := range rows {
		canonical := CanonicalAddress(e.Address)
		if canonical != e.Address {
			if err := tx.Model(&Endpoint{}).Where("id = ?", e.ID).UpdateColumn("address", canonical).Error; err != nil {
				return nil, fmt.Errorf("canonicalise the address of endpoint %s: %w", e.ID, err)
			}
		}
		if len(byAddress[canonical]) == 0 {
			order = append(order, canonical)
		}
		byAddress[canonical] = append(byAddress[canonical], e)
	}
	var out []string
	for _, addr := range order {
		group := byAddress[addr]
		if len(group) < 2 {
			continue
		}
		if len(out) == maxDuplicatesShown {
			out = append(out, "more endpoints share addresses")
			break
		}
		names := make([]string, len(group))
		for i, e := range group {
			names[i] = fmt.Sprintf("%s (%s, site %s)", e.ID, e.Name, e.SiteID)
		}
		out = append(out, fmt.Sprintf("endpoints %s share address %s", strings.Join(names, ", "), addr))
	}
	return out, nil
}

// duplicatePaths describes the groups of paths with the same local and remote endpoint.
func duplicatePaths(tx *gorm.DB) ([]string, error) {
	var rows []Path
	err := tx.Raw(`SELECT id, name, local_endpoint_id, remote_endpoint_id FROM paths p
WHERE EXISTS (SELECT 1 FROM paths q WHERE q.local_endpoint_id = p.local_endpoint_id
  AND q.remote_endpoint_id = p.remote_endpoint_id AND q.id <> p.id)
ORDER BY local_endpoint_id, remote_endpoint_id, id`).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("look for duplicate paths: %w", err)
	}
	groups := runsOf(rows, func(a, b Path) bool {
		return a.LocalEndpointID == b.LocalEndpointID && a.RemoteEndpointID == b.RemoteEndpointID
	})
	var out []string
	for _, group := range groups {
		if len(out) == maxDuplicatesShown {
			out = append(out, "more paths share their endpoints")
			break
		}
		names := make([]string, len(group))
		for i, p := range group {
			names[i] = fmt.Sprintf("%d (%s)", p.ID, p.Name)
		}
		out = append(out, fmt.Sprintf("paths %s all run from endpoint %s to endpoint %s",
			strings.Join(names, ", "), group[0].LocalEndpointID, group[0].RemoteEndpointID))
	}
	return out, nil
}

// duplicateTokenNames describes the groups of live (not revoked) tokens of one name.
func duplicateTokenNames(tx *gorm.DB) ([]string, error) {
	var rows []APIToken
	err := tx.Raw(`SELECT id, name FROM api_tokens t WHERE revoked_at IS NULL
  AND EXISTS (SELECT 1 FROM api_tokens u WHERE u.name = t.name AND u.revoked_at IS NULL AND u.id <> t.id)
ORDER BY name, id`).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("look for duplicate token names: %w", err)
	}
	var out []string
	for _, group := range runsOf(rows, func(a, b APIToken) bool { return a.Name == b.Name }) {
		if len(out) == maxDuplicatesShown {
			out = append(out, "more live tokens share names")
			break
		}
		ids := make([]string, len(group))
		for i, t := range group {
			ids[i] = fmt.Sprint(t.ID)
		}
		out = append(out, fmt.Sprintf("live tokens %s are all named %q (revoke all but one)", strings.Join(ids, ", "), group[0].Name))
	}
	return out, nil
}

// CanonicalAddress is the form an endpoint address is stored in: RFC 5952 text (lower case,
// the longest run of zeros compressed), so that two spellings of one address compare equal.
// Text that is not an address comes back as it is.
func CanonicalAddress(address string) string {
	a, err := netip.ParseAddr(address)
	if err != nil {
		return address
	}
	return a.String()
}

// runsOf splits sorted rows into runs of rows that same says are alike.
func runsOf[T any](rows []T, same func(a, b T) bool) [][]T {
	var runs [][]T
	for i, r := range rows {
		if i == 0 || !same(rows[i-1], r) {
			runs = append(runs, nil)
		}
		runs[len(runs)-1] = append(runs[len(runs)-1], r)
	}
	return runs
}
