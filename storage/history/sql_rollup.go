package history

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
)

// NewSQLHistoryTiers returns the SQL history store with rollup tiers (see TierConfig): the
// retention job (RunRetention) then also rolls raw rows up into policy_stats_1m and
// policy_stats_1h and prunes each tier, and queries read the coarsest tier that serves them.
func NewSQLHistoryTiers(db *storage.DB, tiers TierConfig) (*SQLHistory, error) {
	plan, err := newTierPlan(&tiers)
	if err != nil {
		return nil, err
	}
	s := NewSQLHistory(db)
	s.tiers = plan
	return s, nil
}

// Tier returns the tier a query over [from, to) at every reads (TierRaw, Tier1m or Tier1h).
func (s *SQLHistory) Tier(ctx context.Context, from, to time.Time, every time.Duration) (string, error) {
	ctx, cancel := s.deadline(ctx, 1)
	defer cancel()
	tier, _, err := s.plan(ctx, policyHistory, from, to, every)
	return tier, err
}

// PathTier is Tier for path history.
func (s *SQLHistory) PathTier(ctx context.Context, from, to time.Time, every time.Duration) (string, error) {
	ctx, cancel := s.deadline(ctx, 1)
	defer cancel()
	tier, _, err := s.plan(ctx, pathHistory, from, to, every)
	return tier, err
}

func (s *SQLHistory) plan(ctx context.Context, k historyKind, from, to time.Time, every time.Duration) (string, []segment, error) {
	return s.tiers.choose(from.UTC(), to.UTC(), every, func(tier string) (time.Time, error) {
		return s.rolledUntil(ctx, k, tier)
	})
}

// rolledUntil is the end of the last bucket of tier that has traffic, zero when it has none.
func (s *SQLHistory) rolledUntil(ctx context.Context, k historyKind, tier string) (time.Time, error) {
	var last sql.NullInt64
	query := fmt.Sprintf("SELECT MAX(bucket) FROM %s WHERE %s = %d", k.tierTable(tier), k.idColumn, totalSeriesID)
	if err := s.db.QueryRowContext(ctx, query).Scan(&last); err != nil {
		return time.Time{}, fmt.Errorf("history tier %s: %w", tier, err)
	}
	if !last.Valid {
		return time.Time{}, nil
	}
	return time.Unix(last.Int64, 0).UTC().Add(tierResolution(tier)), nil
}

// Rollup brings the rollup tiers of policy and path history up to date: the 1-minute
// buckets from the last one rolled up (or the start of raw retention) to the last settled
// minute, then the hours those minutes complete. It rebuilds buckets from the raw rows, so
// running it again, or on two replicas at once, gives the same rows. It returns how far both
// tiers are complete (of both kinds).
func (s *SQLHistory) Rollup(ctx context.Context) (minutes, hours time.Time, err error) {
	if !s.tiers.on {
		return time.Time{}, time.Time{}, nil
	}
	return rollupKinds(ctx, s.tiers, s)
}

// firstSource returns the time of the first row in [from, to) that tier is built from.
func (s *SQLHistory) firstSource(ctx context.Context, k historyKind, tier string, from, to time.Time) (time.Time, bool, error) {
	if tier == Tier1m {
		var first sql.NullTime
		query := fmt.Sprintf("SELECT MIN(timestamp) FROM %s WHERE timestamp >= %s AND timestamp < %s", k.rawTable, s.placeholder(1), s.placeholder(2))
		var text sql.NullString
		var err error
		if s.dialect == storage.DialectPostgres {
			err = s.db.QueryRowContext(ctx, query, from, to).Scan(&first)
		} else {
			// SQLite returns MIN of the stored text as text.
			if err = s.db.QueryRowContext(ctx, query, from, to).Scan(&text); err == nil && text.Valid {
				var t time.Time
				if t, err = parseSQLiteTime(text.String); err == nil {
					first = sql.NullTime{Time: t, Valid: true}
				}
			}
		}
		if err != nil {
			return time.Time{}, false, fmt.Errorf("history rollup: %w", err)
		}
		return first.Time, first.Valid, nil
	}
	var first sql.NullInt64
	query := fmt.Sprintf("SELECT MIN(bucket) FROM %s WHERE bucket >= %s AND bucket < %s", k.tierTable(Tier1m), s.placeholder(1), s.placeholder(2))
	if err := s.db.QueryRowContext(ctx, query, from.Unix(), to.Unix()).Scan(&first); err != nil {
		return time.Time{}, false, fmt.Errorf("history rollup: %w", err)
	}
	return time.Unix(first.Int64, 0).UTC(), first.Valid, nil
}

// parseSQLiteTime reads a time as the SQLite driver stores it.
func parseSQLiteTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05.999999999-07:00", time.RFC3339Nano, "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("history rollup: unreadable time %q", s)
}

// writeRollup replaces the rows of tier with buckets in [from, to) by rows, in one
// transaction.
func (s *SQLHistory) writeRollup(ctx context.Context, k historyKind, tier string, from, to time.Time, rows []rollupRow) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("history rollup %s: %w", tier, err)
	}
	defer func() { _ = tx.Rollback() }()
	table := k.tierTable(tier)
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE bucket >= %s AND bucket < %s", table, s.placeholder(1), s.placeholder(2)),
		from.Unix(), to.Unix()); err != nil {
		return fmt.Errorf("history rollup %s: %w", tier, err)
	}
	const cols = 10
	for start := 0; start < len(rows); start += sqlWriteChunk {
		chunk := rows[start:min(start+sqlWriteChunk, len(rows))]
		var b strings.Builder
		fmt.Fprintf(&b, "INSERT INTO %s (%s, bucket, packets, bytes, samples, active_flows, max_bytes, last_at, last_bytes, rates) VALUES ", table, k.idColumn)
		args := make([]any, 0, cols*len(chunk))
		for i, r := range chunk {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('(')
			for j := range cols {
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteString(s.placeholder(len(args) + j + 1))
			}
			b.WriteByte(')')
			var lastAt int64
			if !r.lastAt.IsZero() {
				lastAt = r.lastAt.Unix()
			}
			args = append(args, r.id, r.bucket.Unix(), r.packets, r.bytes, r.samples, r.activeFlows, r.maxBytes, lastAt, r.lastBytes, encodeRates(r.rates))
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("history rollup %s: %w", tier, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("history rollup %s: %w", tier, err)
	}
	return nil
}

// rawGroups reads the raw rows of [from, to) per series, instance and flush interval.
func (s *SQLHistory) rawGroups(ctx context.Context, k historyKind, from, to time.Time) ([]rawGroup, error) {
	ctx, cancel := s.deadline(ctx, 4)
	defer cancel()
	secs := int64(s.tiers.interval / time.Second)
	query := fmt.Sprintf(`SELECT %s, instance, %s AS w, CAST(SUM(packets) AS BIGINT), CAST(SUM(bytes) AS BIGINT), CAST(MAX(active_flows) AS BIGINT), COUNT(*)
FROM %s WHERE timestamp >= %s AND timestamp < %s GROUP BY %s, instance, w`,
		k.idColumn, s.windowExpr(secs), k.rawTable, s.placeholder(1), s.placeholder(2), k.idColumn)
	rows, err := s.db.QueryContext(ctx, query, from.UTC(), to.UTC())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []rawGroup
	for rows.Next() {
		var g rawGroup
		var w int64
		if err := rows.Scan(&g.id, &g.instance, &w, &g.packets, &g.bytes, &g.maxFlows, &g.count); err != nil {
			return nil, err
		}
		g.interval = time.Unix(w*secs, 0).UTC()
		out = append(out, g)
	}
	return out, rows.Err()
}

// tierRows reads the rows of tier with buckets in [from, to): of the given series, or of all
// (withTotal: the all-series rows too).
func (s *SQLHistory) tierRows(ctx context.Context, k historyKind, tier string, from, to time.Time, ids []int64, withTotal bool) ([]rollupRow, error) {
	ctx, cancel := s.deadline(ctx, 1)
	defer cancel()
	filter, args := s.idFilter(k, ids, withTotal, from.Unix(), to.Unix())
	query := fmt.Sprintf(`SELECT %s, bucket, packets, bytes, samples, active_flows, max_bytes, last_at, last_bytes, rates
FROM %s WHERE bucket >= %s AND bucket < %s%s ORDER BY %s, bucket`, k.idColumn, k.tierTable(tier), s.placeholder(1), s.placeholder(2), filter, k.idColumn)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []rollupRow
	for rows.Next() {
		var r rollupRow
		var bucket, lastAt int64
		var rates string
		if err := rows.Scan(&r.id, &bucket, &r.packets, &r.bytes, &r.samples, &r.activeFlows, &r.maxBytes, &lastAt, &r.lastBytes, &rates); err != nil {
			return nil, err
		}
		r.bucket = time.Unix(bucket, 0).UTC()
		if lastAt != 0 {
			r.lastAt = time.Unix(lastAt, 0).UTC()
		}
		if r.pairs, err = decodeRates(rates); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// idFilter is the condition on the series column after two range arguments: the given ids,
// or every series (and the all-series rows only when withTotal).
func (s *SQLHistory) idFilter(k historyKind, ids []int64, withTotal bool, args ...any) (string, []any) {
	if len(ids) == 0 {
		if withTotal { // every row: what the hourly rollup is built from
			return "", args
		}
		// Every series but the unclassified traffic (id 0), which is only read as a series
		// of its own.
		return fmt.Sprintf(" AND %s <> %d AND %s <> %d", k.idColumn, totalSeriesID, k.idColumn, UnclassifiedPolicyID), args
	}
	marks := make([]string, len(ids))
	for i, id := range ids {
		marks[i] = s.placeholder(len(args) + 1)
		args = append(args, id)
	}
	return " AND " + k.idColumn + " IN (" + strings.Join(marks, ",") + ")", args
}

// readTierWindows adds the windows of a tier segment to set: sums of packets and bytes, the
// largest active_flows of the window's buckets.
func (s *SQLHistory) readTierWindows(ctx context.Context, k historyKind, set *seriesSet, seg segment, ids []int64) error {
	secs := int64(set.grid.every / time.Second)
	filter, args := s.idFilter(k, ids, false, seg.from.Unix(), seg.to.Unix())
	n := strconv.FormatInt(secs, 10)
	w := "(bucket / " + n + " - (bucket % " + n + " < 0))"
	if s.dialect == storage.DialectPostgres {
		w = "floor(bucket::numeric / " + n + ")::bigint"
	}
	query := fmt.Sprintf(`SELECT %s, %s AS w, CAST(SUM(packets) AS BIGINT), CAST(SUM(bytes) AS BIGINT), CAST(MAX(active_flows) AS BIGINT)
FROM %s WHERE bucket >= %s AND bucket < %s%s GROUP BY %s, w`, k.idColumn, w, k.tierTable(seg.tier), s.placeholder(1), s.placeholder(2), filter, k.idColumn)
	return s.readWindows(ctx, set, query, args...)
}

// tierTotals returns each series' bytes over a tier segment.
func (s *SQLHistory) tierTotals(ctx context.Context, k historyKind, seg segment) (map[int64]int64, error) {
	filter, args := s.idFilter(k, nil, false, seg.from.Unix(), seg.to.Unix())
	rows, err := s.db.QueryContext(ctx, fmt.Sprintf(`SELECT %s, CAST(SUM(bytes) AS BIGINT) FROM %s WHERE bucket >= %s AND bucket < %s%s GROUP BY %s`,
		k.idColumn, k.tierTable(seg.tier), s.placeholder(1), s.placeholder(2), filter, k.idColumn), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[int64]int64)
	for rows.Next() {
		var id, bytes int64
		if err := rows.Scan(&id, &bytes); err != nil {
			return nil, err
		}
		out[id] += bytes
	}
	return out, rows.Err()
}

// pruneTier deletes the rows of a rollup tier with buckets before before.
func (s *SQLHistory) pruneTier(ctx context.Context, k historyKind, tier string, before time.Time) (int64, error) {
	ctx, cancel := s.deadline(ctx, 4)
	defer cancel()
	res, err := s.db.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE bucket < %s", k.tierTable(tier), s.placeholder(1)), before.Unix())
	if err != nil {
		return 0, fmt.Errorf("prune history tier %s before %s: %w", tier, before.Format(time.RFC3339), err)
	}
	return res.RowsAffected()
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
