package storage

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// LiveTotals is one replica's collector-wide live counters as it last wrote them.
type LiveTotals struct {
	Instance            string
	Packets             int64
	Bytes               int64
	ActiveFlows         int64
	UnclassifiedPackets int64
	UnclassifiedBytes   int64
	UnclassifiedReports int64
	TrackedFlows        int64
	FlowOverflow        int64
	FlowsExpired        int64
	// ResetSeq is the newest stats reset the counters reflect (its change sequence number).
	ResetSeq int64
	// UpdatedAt is when the replica last wrote its snapshot, on the database's clock.
	UpdatedAt time.Time
}

// LivePolicy is one replica's live counters of one policy as it last wrote them.
type LivePolicy struct {
	Instance    string
	PolicyID    int64
	Packets     int64
	Bytes       int64
	ActiveFlows int64
	LastSeen    *time.Time
	ResetSeq    int64
}

// LiveSnapshot is what a replica writes every flush interval: its totals, and the policy rows
// that changed since its previous snapshot.
type LiveSnapshot struct {
	Totals LiveTotals
	// Policies are upserted; with Full, they replace every policy row of the instance.
	Policies []LivePolicy
	// Removed are the policies whose counters are zero now (reset, or gone): their rows go.
	Removed []int64
	Full    bool
}

// LiveResets are the newest stats resets: All for every policy, ByPolicy for single ones.
type LiveResets struct {
	All      int64
	ByPolicy map[int64]int64
}

// Newest is the newest reset that applies to a policy's counters.
func (r LiveResets) Newest(policyID int64) int64 {
	return max(r.All, r.ByPolicy[policyID])
}

// NewestAny is the newest reset of any scope: collector totals include every policy.
func (r LiveResets) NewestAny() int64 {
	n := r.All
	for _, s := range r.ByPolicy {
		n = max(n, s)
	}
	return n
}

// liveStatsForget is how long the rows of a replica that stopped writing are kept (listed as
// stale) before any replica's snapshot removes them.
const liveStatsForget = time.Hour

// LiveStatsStore keeps every replica's latest live counters, so that any replica can answer
// cluster-wide totals.
type LiveStatsStore struct {
	db      *gorm.DB
	dialect string
}

// LiveStats returns the store of the replicas' live counter snapshots.
func (s *Store) LiveStats() *LiveStatsStore { return &LiveStatsStore{db: s.db, dialect: s.Dialect} }

// now is the database's clock on PostgreSQL, so that replicas' stamps compare whatever their
// own clocks say; SQLite is one process, whose clock is the database's.
func (l *LiveStatsStore) now(ctx context.Context) (time.Time, error) {
	if l.dialect != DialectPostgres {
		return time.Now().UTC(), nil
	}
	var now time.Time
	if err := l.db.WithContext(ctx).Raw("SELECT now()").Scan(&now).Error; err != nil {
		return time.Time{}, fmt.Errorf("database clock: %w", err)
	}
	return now.UTC(), nil
}

// liveWriteChunk is the most policy rows per INSERT (7 parameters each).
const liveWriteChunk = 500

// Write stores a replica's snapshot in one transaction, stamped with the database's time,
// and removes the rows of replicas that have not written for liveStatsForget.
func (l *LiveStatsStore) Write(ctx context.Context, snap LiveSnapshot) error {
	err := l.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		ls := &LiveStatsStore{db: tx, dialect: l.dialect}
		stamp, err := ls.now(ctx)
		if err != nil {
			return err
		}
		t := snap.Totals
		err = tx.Exec(`INSERT INTO live_totals (instance, packets, bytes, active_flows, unclassified_packets,
  unclassified_bytes, unclassified_reports, tracked_flows, flow_overflow, flows_expired, reset_seq, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (instance) DO UPDATE SET packets = excluded.packets, bytes = excluded.bytes,
  active_flows = excluded.active_flows, unclassified_packets = excluded.unclassified_packets,
  unclassified_bytes = excluded.unclassified_bytes, unclassified_reports = excluded.unclassified_reports,
  tracked_flows = excluded.tracked_flows, flow_overflow = excluded.flow_overflow,
  flows_expired = excluded.flows_expired, reset_seq = excluded.reset_seq, updated_at = excluded.updated_at`,
			t.Instance, t.Packets, t.Bytes, t.ActiveFlows, t.UnclassifiedPackets, t.UnclassifiedBytes,
			t.UnclassifiedReports, t.TrackedFlows, t.FlowOverflow, t.FlowsExpired, t.ResetSeq, stamp).Error
		if err != nil {
			return err
		}
		if snap.Full {
			if err := tx.Exec("DELETE FROM live_policy_stats WHERE instance = ?", t.Instance).Error; err != nil {
				return err
			}
		}
		for start := 0; start < len(snap.Policies); start += liveWriteChunk {
			rows := snap.Policies[start:min(start+liveWriteChunk, len(snap.Policies))]
			var sb strings.Builder
			sb.WriteString("INSERT INTO live_policy_stats (instance, policy_id, packets, bytes, active_flows, last_seen, reset_seq, updated_at) VALUES ")
			args := make([]any, 0, len(rows)*8)
			for i, r := range rows {
				if i > 0 {
					sb.WriteString(", ")
				}
				sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
				args = append(args, t.Instance, r.PolicyID, r.Packets, r.Bytes, r.ActiveFlows, r.LastSeen, t.ResetSeq, stamp)
			}
			sb.WriteString(` ON CONFLICT (instance, policy_id) DO UPDATE SET packets = excluded.packets,
  bytes = excluded.bytes, active_flows = excluded.active_flows, last_seen = excluded.last_seen,
  reset_seq = excluded.reset_seq, updated_at = excluded.updated_at`)
			if err := tx.Exec(sb.String(), args...).Error; err != nil {
				return err
			}
		}
		if len(snap.Removed) > 0 {
			if err := tx.Exec("DELETE FROM live_policy_stats WHERE instance = ? AND policy_id IN ?", t.Instance, snap.Removed).Error; err != nil {
				return err
			}
		}
		cutoff := stamp.Add(-liveStatsForget)
		if err := tx.Exec(`DELETE FROM live_policy_stats WHERE instance IN
  (SELECT instance FROM live_totals WHERE updated_at < ?)`, cutoff).Error; err != nil {
			return err
		}
		return tx.Exec("DELETE FROM live_totals WHERE updated_at < ?", cutoff).Error
	})
	return translate(err, "write live stats of "+snap.Totals.Instance)
}

// Forget removes a replica's rows, as it stops: its live counters end with it.
func (l *LiveStatsStore) Forget(ctx context.Context, instance string) error {
	err := l.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec("DELETE FROM live_policy_stats WHERE instance = ?", instance).Error; err != nil {
			return err
		}
		return tx.Exec("DELETE FROM live_totals WHERE instance = ?", instance).Error
	})
	return translate(err, "forget live stats of "+instance)
}

// Reset records, inside a stats reset's transaction, that the counters of policyID (0: every
// policy) were reset by the change numbered seq, and removes the policy rows it zeroed. A
// replica's snapshot written before it applied the reset carries an older ResetSeq and is left
// out of cluster totals from then on, so a stale snapshot never brings pre-reset counts back.
func (l *LiveStatsStore) Reset(ctx context.Context, policyID, seq int64) error {
	stamp, err := l.now(ctx)
	if err != nil {
		return err
	}
	db := l.db.WithContext(ctx)
	if policyID == 0 {
		err = db.Exec("DELETE FROM live_policy_stats").Error
	} else {
		err = db.Exec("DELETE FROM live_policy_stats WHERE policy_id = ?", policyID).Error
	}
	if err != nil {
		return translate(err, "reset live stats")
	}
	greatest := "GREATEST"
	if l.dialect != DialectPostgres {
		greatest = "max"
	}
	err = db.Exec(`INSERT INTO live_stats_resets (policy_id, reset_seq, reset_at) VALUES (?, ?, ?)
ON CONFLICT (policy_id) DO UPDATE SET reset_seq = `+greatest+`(live_stats_resets.reset_seq, excluded.reset_seq),
  reset_at = excluded.reset_at`, policyID, seq, stamp).Error
	return translate(err, "reset live stats")
}

// Resets returns the newest stats reset of every scope.
func (l *LiveStatsStore) Resets(ctx context.Context) (LiveResets, error) {
	var rows []struct {
		PolicyID int64
		ResetSeq int64
	}
	if err := l.db.WithContext(ctx).Raw("SELECT policy_id, reset_seq FROM live_stats_resets").Scan(&rows).Error; err != nil {
		return LiveResets{}, translate(err, "read live stats resets")
	}
	out := LiveResets{ByPolicy: map[int64]int64{}}
	for _, r := range rows {
		if r.PolicyID == 0 {
			out.All = r.ResetSeq
		} else {
			out.ByPolicy[r.PolicyID] = r.ResetSeq
		}
	}
	return out, nil
}

// LiveCluster is every replica's latest totals, read at Now on the database's clock.
type LiveCluster struct {
	Now    time.Time
	Totals []LiveTotals
	Resets LiveResets
}

// Cluster reads every replica's latest totals and the newest resets.
func (l *LiveStatsStore) Cluster(ctx context.Context) (LiveCluster, error) {
	now, err := l.now(ctx)
	if err != nil {
		return LiveCluster{}, err
	}
	out := LiveCluster{Now: now}
	err = l.db.WithContext(ctx).Raw(`SELECT instance, packets, bytes, active_flows, unclassified_packets,
  unclassified_bytes, unclassified_reports, tracked_flows, flow_overflow, flows_expired, reset_seq, updated_at
FROM live_totals ORDER BY instance`).Scan(&out.Totals).Error
	if err != nil {
		return LiveCluster{}, translate(err, "read live totals")
	}
	for i := range out.Totals {
		out.Totals[i].UpdatedAt = out.Totals[i].UpdatedAt.UTC()
	}
	out.Resets, err = l.Resets(ctx)
	return out, err
}

// Policies reads every replica's rows of the given policies.
func (l *LiveStatsStore) Policies(ctx context.Context, ids []int64) ([]LivePolicy, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var rows []LivePolicy
	err := l.db.WithContext(ctx).Raw(`SELECT instance, policy_id, packets, bytes, active_flows, last_seen, reset_seq
FROM live_policy_stats WHERE policy_id IN ? ORDER BY policy_id, instance`, ids).Scan(&rows).Error
	return rows, translate(err, "read live policy stats")
}
