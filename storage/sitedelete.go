package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Limits of site deletion.
const (
	// DefaultDeleteIDCap is how many endpoint and path ids a deletion lists per site when
	// DeleteSitesOptions.IDCap is 0; the counts always cover every row.
	DefaultDeleteIDCap = 100
	// MaxDeleteSites is the most sites one DeleteSites call takes.
	MaxDeleteSites = 100
	// AuditSnapshotCap is how many endpoint rows and how many path rows the audit entry of a
	// deleted site keeps; the counts in the entry cover every row.
	AuditSnapshotCap = 100
)

// SiteDependencies is what deleting a site would affect.
type SiteDependencies struct {
	SiteID string
	// Endpoints, Paths and PathMetrics count the rows the delete would remove; Paths includes
	// paths whose other end is at another site.
	Endpoints   int64
	Paths       int64
	PathMetrics int64
	// Policies are the ids of the policies whose preferred path would be cleared, ascending.
	Policies []int64
}

// DeleteSitesOptions controls DeleteSites.
type DeleteSitesOptions struct {
	// DryRun computes the result without changing anything or writing an audit entry.
	DryRun bool
	// IfMatch maps a site id to the version the caller last saw; a site whose stored version
	// differs fails the whole call with ErrConflict. Sites not in the map are not checked.
	IfMatch map[string]int64
	// IDCap caps the endpoint and path ids listed per site: 0 means DefaultDeleteIDCap,
	// negative means no cap.
	IDCap int
	// Actor is who deletes, recorded in the audit entries; required unless DryRun.
	Actor string
}

// DeletionCounts are the rows a deletion removed (or, in a dry run, would remove).
type DeletionCounts struct {
	Sites       int64
	Endpoints   int64
	Paths       int64
	PathMetrics int64
}

// SiteRemoval is what one site's deletion removed. A path between two sites of the same call
// is counted once, against the site listed first in the call's ids, so the per-site counts
// add up to the totals.
type SiteRemoval struct {
	// Site is the row as it was before the deletion.
	Site Site
	// AuditID is the id of the site's audit entry; 0 in a dry run.
	AuditID int64
	Deleted DeletionCounts
	// EndpointIDs and PathIDs list the removed rows in ascending order, at most IDCap of each;
	// Truncated says some were left out (Deleted counts them all).
	EndpointIDs []string
	PathIDs     []int64
	Truncated   bool
	// PoliciesUpdated are the policies that preferred one of this site's removed paths.
	PoliciesUpdated []int64
}

// SiteDeletion is the outcome of DeleteSites.
type SiteDeletion struct {
	DryRun bool
	// Sites has one entry per requested site, in the order of the ids given (duplicates
	// dropped).
	Sites []SiteRemoval
	// Deleted totals the rows of every site.
	Deleted DeletionCounts
	// PoliciesUpdated are all policies whose preferred path was cleared, ascending.
	PoliciesUpdated []int64
	// RemovedPathIDs lists every removed path, uncapped and ascending, so callers can
	// invalidate caches and announce the deletions; it is not meant for responses.
	RemovedPathIDs []int64
}

// SitesNotFoundError names the requested sites that do not exist. It matches ErrNotFound.
type SitesNotFoundError struct {
	// IDs are the unknown ids, in the order they were requested.
	IDs []string
}

func (e *SitesNotFoundError) Error() string {
	return "sites " + strings.Join(e.IDs, ", ") + ": " + ErrNotFound.Error()
}

// Unwrap makes errors.Is(err, ErrNotFound) true.
func (e *SitesNotFoundError) Unwrap() error { return ErrNotFound }

// VersionConflictError says a site is no longer at the version the caller last saw (its
// If-Match). It matches ErrConflict.
type VersionConflictError struct {
	SiteID            string
	Current, Expected int64
}

func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("site %s is at version %d, not %d: %v", e.SiteID, e.Current, e.Expected, ErrConflict)
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *VersionConflictError) Unwrap() error { return ErrConflict }

// SiteDependencies counts what deleting the site would remove, from one consistent snapshot
// and without locking anything.
func (s *Store) SiteDependencies(ctx context.Context, siteID string) (SiteDependencies, error) {
	deps := SiteDependencies{SiteID: siteID, Policies: []int64{}}
	err := s.snapshotTx(ctx, func(tx *gorm.DB) error {
		if _, err := findSites(tx, []string{siteID}, false); err != nil {
			return err
		}
		sites := []string{siteID}
		if err := tx.Model(&Endpoint{}).Where("site_id IN ?", sites).Count(&deps.Endpoints).Error; err != nil {
			return err
		}
		if err := tx.Raw("SELECT count(*) FROM paths WHERE id IN ("+pathsOfSites+")", sites, sites).Scan(&deps.Paths).Error; err != nil {
			return err
		}
		if err := tx.Raw("SELECT count(*) FROM path_metrics WHERE path_id IN ("+pathsOfSites+")", sites, sites).Scan(&deps.PathMetrics).Error; err != nil {
			return err
		}
		return tx.Raw("SELECT id FROM policies WHERE path_id IN ("+pathsOfSites+") ORDER BY id", sites, sites).Scan(&deps.Policies).Error
	})
	if err != nil {
		return SiteDependencies{}, translate(err, "site dependencies of "+siteID)
	}
	return deps, nil
}

// DeleteSites deletes the given sites, all or nothing, in one transaction: it locks the site
// rows, then their endpoints, the paths touching them and the policies preferring those paths,
// records exactly what will go, deletes only the site rows and lets the database's ON DELETE
// CASCADE / SET NULL rules remove endpoints, paths and metrics and clear the policies. It then
// checks that nothing it counted is left and writes one audit entry per site, in the same
// transaction. Unknown ids fail with a *SitesNotFoundError (ErrNotFound), a stale IfMatch
// version with ErrConflict; in both cases nothing changes.
//
// A dry run reads one consistent snapshot (without locks on PostgreSQL) and changes nothing.
func (s *Store) DeleteSites(ctx context.Context, ids []string, opts DeleteSitesOptions) (SiteDeletion, error) {
	ids, err := checkDeleteRequest(ids, opts)
	if err != nil {
		return SiteDeletion{}, fmt.Errorf("delete sites: %w", err)
	}
	var out SiteDeletion
	var pending []int64
	run := func(tx *gorm.DB) error {
		lock := !opts.DryRun && s.Dialect == DialectPostgres
		p, err := s.planRemoval(ctx, tx, ids, opts.IfMatch, lock)
		if err != nil {
			return err
		}
		out = p.result(opts)
		if opts.DryRun {
			return nil
		}
		pending = pending[:0]
		return p.execute(&Store{db: tx, Dialect: s.Dialect, hook: s.hook, pending: &pending}, &out, opts.Actor)
	}
	if opts.DryRun {
		err = s.snapshotTx(ctx, run)
	} else {
		err = s.db.WithContext(ctx).Transaction(run)
	}
	if err != nil {
		return SiteDeletion{}, translate(err, "delete sites "+strings.Join(ids, ", "))
	}
	if len(pending) > 0 {
		s.committed(slices.Max(pending))
	}
	return out, nil
}

func checkDeleteRequest(ids []string, opts DeleteSitesOptions) ([]string, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: no site ids", ErrInvalid)
	}
	unique := make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			unique = append(unique, id)
		}
	}
	if len(unique) > MaxDeleteSites {
		return nil, fmt.Errorf("%w: at most %d sites per call", ErrInvalid, MaxDeleteSites)
	}
	for id := range opts.IfMatch {
		if !seen[id] {
			return nil, fmt.Errorf("%w: if-match names site %s, which is not being deleted", ErrInvalid, id)
		}
	}
	if !opts.DryRun && strings.TrimSpace(opts.Actor) == "" {
		return nil, fmt.Errorf("%w: actor is required", ErrInvalid)
	}
	return unique, nil
}

// snapshotTx runs fn in a read-only transaction that sees one snapshot (REPEATABLE READ on
// PostgreSQL; SQLite transactions are serialisable already).
func (s *Store) snapshotTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	var opts []*sql.TxOptions
	if s.Dialect == DialectPostgres {
		opts = append(opts, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	}
	return s.db.WithContext(ctx).Transaction(fn, opts...)
}

// pathsOfSites selects the ids of the paths with either end at an endpoint of the sites bound
// to its two parameters; a UNION of two joins lets both dialects use the endpoint indexes.
const pathsOfSites = `SELECT p1.id FROM paths p1 JOIN endpoints e1 ON e1.id = p1.local_endpoint_id WHERE e1.site_id IN ?
UNION SELECT p2.id FROM paths p2 JOIN endpoints e2 ON e2.id = p2.remote_endpoint_id WHERE e2.site_id IN ?`

// removalPlan is everything a deletion removes, read inside its transaction.
type removalPlan struct {
	order     []string // site ids in request order
	sites     map[string]Site
	endpoints []Endpoint // ascending id
	paths     []Path     // ascending id
	metrics   []int64    // ids of removed paths that have metrics, ascending
	policies  []PathPreference
	pathSite  map[int64]int // index in order of the site each path is attributed to
}

// findSites reads the sites (locking them, in id order, when lock is set) and fails with a
// *SitesNotFoundError naming every id that does not exist.
func findSites(tx *gorm.DB, ids []string, lock bool) (map[string]Site, error) {
	valid := make([]string, 0, len(ids))
	for _, id := range ids {
		if validUUID(id) {
			valid = append(valid, id)
		}
	}
	slices.Sort(valid)
	var rows []Site
	if len(valid) > 0 {
		q := tx.Where("id IN ?", valid).Order("id")
		if lock {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Find(&rows).Error; err != nil {
			return nil, err
		}
	}
	found := make(map[string]Site, len(rows))
	for _, r := range rows {
		found[r.ID] = r
	}
	var missing []string
	for _, id := range ids {
		if _, ok := found[id]; !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return nil, &SitesNotFoundError{IDs: missing}
	}
	return found, nil
}

func (s *Store) planRemoval(ctx context.Context, tx *gorm.DB, ids []string, ifMatch map[string]int64, lock bool) (*removalPlan, error) {
	sites, err := findSites(tx, ids, lock)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if want, ok := ifMatch[id]; ok && sites[id].Version != want {
			return nil, &VersionConflictError{SiteID: id, Current: sites[id].Version, Expected: want}
		}
	}
	p := &removalPlan{order: ids, sites: sites}
	if lock {
		err = lockChildren(ctx, tx, p)
	} else {
		err = p.readChildren(tx, "")
	}
	if err != nil {
		return nil, err
	}
	rows, err := tx.Raw("SELECT path_id FROM path_metrics WHERE path_id IN ("+pathsOfSites+") ORDER BY path_id", ids, ids).Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		p.metrics = append(p.metrics, id)
	}
	return p, rows.Err()
}

// readChildren reads the endpoints, paths and preferring policies of the plan's sites, each
// statement suffixed with locking (empty, or a FOR UPDATE clause).
func (p *removalPlan) readChildren(tx *gorm.DB, locking string) error {
	ids := p.order
	p.endpoints, p.paths, p.policies = nil, nil, nil
	if err := tx.Raw("SELECT * FROM endpoints WHERE site_id IN ? ORDER BY id"+locking, ids).Scan(&p.endpoints).Error; err != nil {
		return err
	}
	// Rows scanned by hand: reflection over ten thousand paths costs more than the lock.
	rows, err := tx.Raw("SELECT id, name, local_endpoint_id, remote_endpoint_id, status FROM paths WHERE id IN ("+pathsOfSites+") ORDER BY id"+locking, ids, ids).Rows()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var x Path
		if err := rows.Scan(&x.ID, &x.Name, &x.LocalEndpointID, &x.RemoteEndpointID, &x.Status); err != nil {
			return err
		}
		p.paths = append(p.paths, x)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return tx.Raw("SELECT id, path_id FROM policies WHERE path_id IN ("+pathsOfSites+") ORDER BY id"+locking, ids, ids).Scan(&p.policies).Error
}

// Lock retries of lockChildren.
const (
	maxLockAttempts = 60
	maxLockBackoff  = 20 * time.Millisecond
	maxLockWait     = 50 * time.Millisecond
)

// lockChildren locks, on PostgreSQL, the endpoints, paths and policies the deletion will
// change, so that nothing can start referencing them before the delete and the counts stay
// exact. A concurrent path insert holds a KEY SHARE lock on its local endpoint while it waits
// for its remote one; waiting for it while holding the other would deadlock. So each attempt
// waits at most a short lock_timeout (well under deadlock_timeout, so the other side never
// sees a deadlock), and on a timeout it gives every lock back and tries again.
func lockChildren(ctx context.Context, tx *gorm.DB, p *removalPlan) error {
	var prevTimeout string
	var deadlockMs int64
	if err := tx.Raw("SELECT current_setting('lock_timeout'), (SELECT setting::bigint FROM pg_settings WHERE name = 'deadlock_timeout')").
		Row().Scan(&prevTimeout, &deadlockMs); err != nil {
		return fmt.Errorf("read lock settings: %w", err)
	}
	wait := min(time.Duration(deadlockMs)*time.Millisecond/4, maxLockWait)
	wait = max(wait, time.Millisecond)
	for attempt := 1; ; attempt++ {
		err := tx.Transaction(func(sp *gorm.DB) error {
			if err := sp.Exec("SELECT set_config('lock_timeout', ?, true)", fmt.Sprintf("%dms", wait.Milliseconds())).Error; err != nil {
				return err
			}
			if err := p.readChildren(sp, " FOR UPDATE"); err != nil {
				return err
			}
			return sp.Exec("SELECT set_config('lock_timeout', ?, true)", prevTimeout).Error
		})
		if !isLockNotAvailable(err) {
			return err
		}
		if attempt == maxLockAttempts {
			return fmt.Errorf("%w: the site's rows stayed locked by other writers; retry", ErrConflict)
		}
		backoff := min(time.Millisecond<<min(attempt, 10), maxLockBackoff)
		timer := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
	}
}

func isLockNotAvailable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

// result builds the caller's view of the plan, attributing each path to the first site in
// request order that holds one of its endpoints.
func (p *removalPlan) result(opts DeleteSitesOptions) SiteDeletion {
	idCap := opts.IDCap
	if idCap == 0 {
		idCap = DefaultDeleteIDCap
	}
	rank := make(map[string]int, len(p.order))
	out := SiteDeletion{DryRun: opts.DryRun, PoliciesUpdated: []int64{}, RemovedPathIDs: []int64{}}
	for i, id := range p.order {
		rank[id] = i
		out.Sites = append(out.Sites, SiteRemoval{
			Site: p.sites[id], Deleted: DeletionCounts{Sites: 1},
			EndpointIDs: []string{}, PathIDs: []int64{}, PoliciesUpdated: []int64{},
		})
	}
	listed := func(n int) bool { return idCap < 0 || n < idCap }
	siteOfEndpoint := make(map[string]int, len(p.endpoints))
	for _, e := range p.endpoints {
		r := &out.Sites[rank[e.SiteID]]
		siteOfEndpoint[e.ID] = rank[e.SiteID]
		r.Deleted.Endpoints++
		if listed(len(r.EndpointIDs)) {
			r.EndpointIDs = append(r.EndpointIDs, e.ID)
		} else {
			r.Truncated = true
		}
	}
	siteOfPath := make(map[int64]int, len(p.paths))
	p.pathSite = siteOfPath
	for _, path := range p.paths {
		i, okL := siteOfEndpoint[path.LocalEndpointID]
		j, okR := siteOfEndpoint[path.RemoteEndpointID]
		if !okL || (okR && j < i) {
			i = j
		}
		siteOfPath[path.ID] = i
		r := &out.Sites[i]
		r.Deleted.Paths++
		if listed(len(r.PathIDs)) {
			r.PathIDs = append(r.PathIDs, path.ID)
		} else {
			r.Truncated = true
		}
		out.RemovedPathIDs = append(out.RemovedPathIDs, path.ID)
	}
	for _, pathID := range p.metrics {
		out.Sites[siteOfPath[pathID]].Deleted.PathMetrics++
	}
	for _, pol := range p.policies {
		r := &out.Sites[siteOfPath[pol.PathID]]
		r.PoliciesUpdated = append(r.PoliciesUpdated, pol.PolicyID)
		out.PoliciesUpdated = append(out.PoliciesUpdated, pol.PolicyID)
	}
	for _, r := range out.Sites {
		out.Deleted.Sites += r.Deleted.Sites
		out.Deleted.Endpoints += r.Deleted.Endpoints
		out.Deleted.Paths += r.Deleted.Paths
		out.Deleted.PathMetrics += r.Deleted.PathMetrics
	}
	return out
}

// execute deletes the site rows, checks that the cascade removed exactly the planned rows and
// records the audit entries.
func (p *removalPlan) execute(st *Store, out *SiteDeletion, actor string) error {
	tx, dialect := st.db, st.Dialect
	before, err := readRemovals(tx, dialect)
	if err != nil {
		return err
	}
	if err := tx.Where("id IN ?", p.order).Delete(&Site{}).Error; err != nil {
		return err
	}
	after, err := readRemovals(tx, dialect)
	if err != nil {
		return err
	}
	removed := removals{
		Sites: after.Sites - before.Sites, Endpoints: after.Endpoints - before.Endpoints, Paths: after.Paths - before.Paths,
		PathMetrics: after.PathMetrics - before.PathMetrics, PoliciesCleared: after.PoliciesCleared - before.PoliciesCleared,
	}
	planned := removals{Sites: out.Deleted.Sites, Endpoints: out.Deleted.Endpoints, Paths: out.Deleted.Paths,
		PathMetrics: out.Deleted.PathMetrics, PoliciesCleared: int64(len(out.PoliciesUpdated))}
	if removed != planned {
		return fmt.Errorf("the database removed %+v where the deletion planned %+v; is a foreign key rule missing?", removed, planned)
	}
	// After the check: marking the cleared policies updates their rows once more.
	policyEvents, err := st.Policies().PathsCleared(tx.Statement.Context, p.policies)
	if err != nil {
		return err
	}
	eventOf := make(map[int64]ChangeEvent, len(policyEvents))
	for i, pref := range p.policies {
		eventOf[pref.PolicyID] = policyEvents[i]
	}
	for i := range out.Sites {
		r := &out.Sites[i]
		effects := p.effects(i, r)
		for _, id := range r.PoliciesUpdated {
			effects.Events = append(effects.Events, eventOf[id])
		}
		c := Change{Kind: KindSiteDeleted, Actor: actor, ResourceID: r.Site.ID, Details: p.auditDetails(i, r),
			Effects: effects}
		if err := st.Changes().Record(tx.Statement.Context, &c); err != nil {
			return err
		}
		r.AuditID = c.Seq
	}
	return nil
}

// effects is what every replica needs to apply one site's removal: every removed path (not
// capped, so caches drop them all), the policies that lost their path, and the site.deleted
// event (execute adds a policy.updated per policy; path.deleted events follow from the path
// ids).
func (p *removalPlan) effects(site int, r *SiteRemoval) Effects {
	paths := []int64{}
	for _, path := range p.paths {
		if p.pathSite[path.ID] == site {
			paths = append(paths, path.ID)
		}
	}
	return Effects{PathIDs: paths, PolicyIDs: r.PoliciesUpdated, Events: []ChangeEvent{{Type: KindSiteDeleted, Data: map[string]any{
		"site_id": r.Site.ID, "name": r.Site.Name,
		"deleted":          map[string]any{"endpoints": r.Deleted.Endpoints, "paths": r.Deleted.Paths, "path_metrics": r.Deleted.PathMetrics},
		"policies_updated": r.PoliciesUpdated,
	}}}}
}

// removals are counters that grow by one for every row a statement removes (and, for
// PoliciesCleared, every policy whose path it clears), cascades included; the difference
// across a statement is what it did.
type removals struct {
	Sites, Endpoints, Paths, PathMetrics, PoliciesCleared int64
}

// readRemovals reads the counters. PostgreSQL keeps per-transaction tuple counts
// (pg_stat_xact_user_tables), cascades included, so rows other transactions commit meanwhile
// do not disturb them. SQLite has no such counts but a single writer, so negated row counts
// serve.
func readRemovals(tx *gorm.DB, dialect string) (removals, error) {
	var r removals
	if dialect != DialectPostgres {
		err := tx.Raw(`SELECT -(SELECT count(*) FROM sites), -(SELECT count(*) FROM endpoints), -(SELECT count(*) FROM paths),
  -(SELECT count(*) FROM path_metrics), -(SELECT count(*) FROM policies WHERE path_id IS NOT NULL)`).
			Row().Scan(&r.Sites, &r.Endpoints, &r.Paths, &r.PathMetrics, &r.PoliciesCleared)
		return r, err
	}
	var trackCounts string
	err := tx.Raw(`SELECT current_setting('track_counts'),
  coalesce(sum(n_tup_del) FILTER (WHERE relname = 'sites'), 0),
  coalesce(sum(n_tup_del) FILTER (WHERE relname = 'endpoints'), 0),
  coalesce(sum(n_tup_del) FILTER (WHERE relname = 'paths'), 0),
  coalesce(sum(n_tup_del) FILTER (WHERE relname = 'path_metrics'), 0),
  coalesce(sum(n_tup_upd) FILTER (WHERE relname = 'policies'), 0)
FROM pg_stat_xact_user_tables WHERE schemaname = current_schema()`).
		Row().Scan(&trackCounts, &r.Sites, &r.Endpoints, &r.Paths, &r.PathMetrics, &r.PoliciesCleared)
	if err == nil && trackCounts != "on" {
		err = errors.New("PostgreSQL track_counts is off, so the deletion cannot check what the cascade removed")
	}
	return r, err
}

// auditDetails is the audit record of one site's removal: counts, and a bounded snapshot of
// the rows that went.
func (p *removalPlan) auditDetails(site int, r *SiteRemoval) map[string]any {
	endpoints := []map[string]any{}
	for _, e := range p.endpoints {
		if e.SiteID == r.Site.ID && len(endpoints) < AuditSnapshotCap {
			endpoints = append(endpoints, map[string]any{
				"id": e.ID, "name": e.Name, "interface": e.Interface, "address": e.Address, "wan_kind": e.WANKind,
			})
		}
	}
	paths := []map[string]any{}
	for _, path := range p.paths {
		if p.pathSite[path.ID] == site && len(paths) < AuditSnapshotCap {
			paths = append(paths, map[string]any{
				"id": path.ID, "name": path.Name, "status": path.Status,
				"local_endpoint_id": path.LocalEndpointID, "remote_endpoint_id": path.RemoteEndpointID,
			})
		}
	}
	details := map[string]any{
		"site": map[string]any{
			"id": r.Site.ID, "name": r.Site.Name, "location": r.Site.Location,
			"description": r.Site.Description, "version": r.Site.Version,
		},
		"deleted": map[string]any{
			"endpoints": r.Deleted.Endpoints, "paths": r.Deleted.Paths, "path_metrics": r.Deleted.PathMetrics,
		},
		"policies_updated": r.PoliciesUpdated,
		"snapshot": map[string]any{
			"endpoints": endpoints,
			"paths":     paths,
			"truncated": int64(len(endpoints)) < r.Deleted.Endpoints || int64(len(paths)) < r.Deleted.Paths,
		},
	}
	if len(p.order) > 1 {
		details["batch"] = p.order
	}
	return details
}
