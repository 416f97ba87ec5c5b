package history

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
)

// SQLHistory is the history store on the policy_stats table of the inventory database, the
// embedded default when no InfluxDB is configured. Timestamps are stored in UTC.
//
// Windows are computed in SQL: the window index of a row is floor(epoch seconds / every),
// from extract(epoch ...) on PostgreSQL and from the whole-second prefix of the stored text
// on SQLite (the driver stores "2006-01-02 15:04:05.999999999+00:00"; SQLite's own date
// functions round fractions to milliseconds, which could move a row at hh:mm:59.9996 into the
// next window). The database then groups per window and instance and returns one row per
// window, so a day of 10 s flushes comes back as 1,440 rows at 1 m windows, not 8,640.
type SQLHistory struct {
	db      *sql.DB
	dialect string
	owner   *storage.DB
	tiers   tierPlan
}

// NewSQLHistory returns the SQL history store on db, which must be migrated. db stays the
// caller's: Close does not close it.
func NewSQLHistory(db *storage.DB) *SQLHistory {
	return &SQLHistory{db: db.SQL(), dialect: db.Dialect, owner: db}
}

// sqlWriteChunk is the most rows per INSERT: 6 parameters each stays far below the parameter
// limits of SQLite (32,766) and PostgreSQL (65,535).
const sqlWriteChunk = 500

// WriteDeltas upserts one row per delta in one transaction: a row with the same policy,
// instance and time is replaced, so a retried batch does not double count. Within one batch
// the last delta for a key wins, as on InfluxDB.
func (s *SQLHistory) WriteDeltas(ctx context.Context, deltas []PolicyDelta) error {
	ctx, cancel := s.deadline(ctx, 4)
	defer cancel()
	if len(deltas) == 0 {
		return nil
	}
	if err := validateDeltas(deltas); err != nil {
		return err
	}
	rows := dedupeDeltas(deltas)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return AsWriteError(fmt.Errorf("write %d history rows: begin: %w", len(rows), err))
	}
	defer func() { _ = tx.Rollback() }()
	for _, ts := range []TrafficSeries{PolicyTraffic, PathTraffic} {
		var of []PolicyDelta
		for _, d := range rows {
			if seriesOf(d) == ts {
				of = append(of, d)
			}
		}
		for start := 0; start < len(of); start += sqlWriteChunk {
			chunk := of[start:min(start+sqlWriteChunk, len(of))]
			query, args := s.upsertSQL(ts, chunk)
			if _, err := tx.ExecContext(ctx, query, args...); err != nil {
				return AsWriteError(fmt.Errorf("write %d history rows: %w", len(rows), err))
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return AsWriteError(fmt.Errorf("write %d history rows: commit: %w", len(rows), err))
	}
	// Rows into buckets already rolled up are rolled up again; a failure is retryable: the
	// raw rows are written, and writing them again replaces them.
	if err := rollupWritten(ctx, s.tiers, s, rows); err != nil {
		return AsWriteError(fmt.Errorf("write %d history rows: %w", len(rows), err))
	}
	return nil
}

// dedupeDeltas keeps the last delta of each (policy, instance, time), in first-seen order:
// PostgreSQL refuses to upsert one row twice in a statement.
func dedupeDeltas(deltas []PolicyDelta) []PolicyDelta {
	type key struct {
		policyID int64
		pathID   int64
		instance string
		at       int64
	}
	index := make(map[key]int, len(deltas))
	out := make([]PolicyDelta, 0, len(deltas))
	for _, d := range deltas {
		d.Time = d.Time.UTC()
		k := key{d.PolicyID, d.PathID, d.Instance, d.Time.UnixNano()}
		if i, ok := index[k]; ok {
			out[i] = d
			continue
		}
		index[k] = len(out)
		out = append(out, d)
	}
	return out
}

// upsertSQL is the upsert of rows, all of series ts, into its table.
func (s *SQLHistory) upsertSQL(ts TrafficSeries, rows []PolicyDelta) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, 6*len(rows))
	b.WriteString("INSERT INTO " + ts.Table + " (" + ts.IDKey + ", instance, timestamp, packets, bytes, active_flows) VALUES ")
	for i, d := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for j := range 6 {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(s.placeholder(len(args) + j + 1))
		}
		b.WriteByte(')')
		args = append(args, seriesID(d), d.Instance, d.Time, d.Packets, d.Bytes, d.ActiveFlows)
	}
	b.WriteString(` ON CONFLICT (` + ts.IDKey + `, instance, timestamp) DO UPDATE SET
packets = excluded.packets, bytes = excluded.bytes, active_flows = excluded.active_flows`)
	return b.String(), args
}

func (s *SQLHistory) placeholder(n int) string {
	if s.dialect == storage.DialectPostgres {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// windowExpr is the SQL expression of a row's window index for windows of secs seconds.
func (s *SQLHistory) windowExpr(secs int64) string {
	n := strconv.FormatInt(secs, 10)
	if s.dialect == storage.DialectPostgres {
		return "CAST(floor(extract(epoch FROM timestamp) / " + n + ") AS BIGINT)"
	}
	// Whole seconds from the text's "YYYY-MM-DD HH:MM:SS" prefix; floor division also for
	// times before 1970.
	sec := "CAST(strftime('%s', substr(timestamp, 1, 19)) AS INTEGER)"
	return "(" + sec + " / " + n + " - (" + sec + " % " + n + " < 0))"
}

// windowsSQL selects (id, window, packets, bytes, active_flows) per series of ts and window
// over [from, to): sums per window, active_flows the max per instance summed over instances.
// filter is an extra condition on the id column with its arguments after from and to.
func (s *SQLHistory) windowsSQL(ts TrafficSeries, secs int64, filter string) string {
	return fmt.Sprintf(`SELECT %[1]s, w,
  CAST(SUM(packets) AS BIGINT), CAST(SUM(bytes) AS BIGINT), CAST(SUM(flows) AS BIGINT)
FROM (
  SELECT %[1]s, %[2]s AS w, instance,
    SUM(packets) AS packets, SUM(bytes) AS bytes, MAX(active_flows) AS flows
  FROM %[3]s
  WHERE timestamp >= %[4]s AND timestamp < %[5]s%[6]s
  GROUP BY %[1]s, w, instance
) per_instance
GROUP BY %[1]s, w
ORDER BY %[1]s, w`, ts.IDKey, s.windowExpr(secs), ts.Table, s.placeholder(1), s.placeholder(2), filter)
}

// QueryPolicy returns one policy's windows over [from, to) with the semantics the package
// documents, from the tiers Tier names.
func (s *SQLHistory) QueryPolicy(ctx context.Context, policyID int64, from, to time.Time, every time.Duration) ([]HistoryPoint, error) {
	return s.querySeries(ctx, PolicyTraffic, policyID, from, to, every)
}

// querySeries returns the windows of series id of ts over [from, to).
func (s *SQLHistory) querySeries(ctx context.Context, ts TrafficSeries, id int64, from, to time.Time, every time.Duration) ([]HistoryPoint, error) {
	ctx, cancel := s.deadline(ctx, 1)
	defer cancel()
	grid, err := newWindowGrid(from, to, every)
	if err != nil {
		return nil, err
	}
	set, err := s.windows(ctx, kindOf(ts), grid, from, to, []int64{id})
	if err != nil {
		return nil, fmt.Errorf("query history of %s %d: %w", ts.IDKey, id, err)
	}
	if points, ok := set.series[id]; ok {
		return points, nil
	}
	return grid.points(), nil
}

// windows reads the windows of the given policies (all for none) over [from, to), each
// segment of the plan on its own and merged.
func (s *SQLHistory) windows(ctx context.Context, k historyKind, grid windowGrid, from, to time.Time, ids []int64) (*seriesSet, error) {
	_, segs, err := s.plan(ctx, k, from, to, grid.every)
	if err != nil {
		return nil, err
	}
	set := newSeriesSet(grid)
	for _, seg := range segs {
		if err := s.segmentWindows(ctx, k, set, seg, ids); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// segmentWindows adds the windows of one segment of a plan to set.
func (s *SQLHistory) segmentWindows(ctx context.Context, k historyKind, set *seriesSet, seg segment, ids []int64) error {
	part := newSeriesSet(set.grid)
	var err error
	if seg.tier == TierRaw {
		filter, args := s.idFilter(k, ids, false, seg.from.UTC(), seg.to.UTC())
		err = s.readWindows(ctx, part, s.windowsSQL(k.series(), int64(set.grid.every/time.Second), filter), args...)
	} else {
		err = s.readTierWindows(ctx, k, part, seg, ids)
	}
	if err != nil {
		return err
	}
	set.merge(part)
	return nil
}

// allFilter is the condition of the queries over every series of ts: id 0 (unclassified
// traffic) is a series of its own, never part of all.
func allFilter(ts TrafficSeries) string {
	return " AND " + ts.IDKey + " <> 0"
}

// QueryTop returns the windows of every policy with rows in [from, to), or of the top
// policies by bytes, ordered as the package documents.
func (s *SQLHistory) QueryTop(ctx context.Context, from, to time.Time, every time.Duration, top int) ([]PolicySeries, error) {
	ctx, cancel := s.deadline(ctx, 1)
	defer cancel()
	grid, err := newWindowGrid(from, to, every)
	if err != nil {
		return nil, err
	}
	if err := validateTop(top); err != nil {
		return nil, err
	}
	from, to = from.UTC(), to.UTC()
	var ids []int64
	if top > 0 {
		if ids, err = s.topIDs(ctx, from, to, every, top); err != nil {
			return nil, fmt.Errorf("query top policies: %w", err)
		}
		if len(ids) == 0 {
			return []PolicySeries{}, nil
		}
	}
	set, err := s.windows(ctx, policyHistory, grid, from, to, ids)
	if err != nil {
		return nil, fmt.Errorf("query history of policies: %w", err)
	}
	return set.ordered(), nil
}

func (s *SQLHistory) topIDs(ctx context.Context, from, to time.Time, every time.Duration, top int) ([]int64, error) {
	_, segs, err := s.plan(ctx, policyHistory, from, to, s.tiers.rankEvery(every))
	if err != nil {
		return nil, err
	}
	sums := make(map[int64]int64)
	for _, seg := range segs {
		if seg.tier != TierRaw {
			part, err := s.tierTotals(ctx, policyHistory, seg)
			if err != nil {
				return nil, err
			}
			for id, b := range part {
				sums[id] += b
			}
			continue
		}
		limit := ""
		if len(segs) == 1 {
			limit = fmt.Sprintf(" LIMIT %d", top)
		}
		err := s.eachRow(ctx, fmt.Sprintf(`SELECT policy_id, CAST(SUM(bytes) AS BIGINT) AS total
FROM policy_stats WHERE timestamp >= %s AND timestamp < %s%s
GROUP BY policy_id ORDER BY total DESC, policy_id%s`, s.placeholder(1), s.placeholder(2), allFilter(PolicyTraffic), limit), []any{seg.from, seg.to},
			func(id int64, vals ...int64) { sums[id] += vals[0] }, 1)
		if err != nil {
			return nil, err
		}
	}
	totals := make([]policyTotal, 0, len(sums))
	for id, b := range sums {
		totals = append(totals, policyTotal{policyID: id, bytes: b})
	}
	return topPolicies(totals, top), nil
}

func (s *SQLHistory) readWindows(ctx context.Context, set *seriesSet, query string, args ...any) error {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	secs := int64(set.grid.every / time.Second)
	for rows.Next() {
		var policyID, window, packets, bytes, flows int64
		if err := rows.Scan(&policyID, &window, &packets, &bytes, &flows); err != nil {
			return err
		}
		set.add(policyID, time.Unix(window*secs, 0), packets, bytes, flows)
	}
	return rows.Err()
}

// QueryIntervals returns per-interval bytes as the package documents, grouped in SQL; from a
// rollup tier as tierIntervals reads them back.
func (s *SQLHistory) QueryIntervals(ctx context.Context, ids []int64, from, to time.Time, interval time.Duration) (map[int64][]IntervalBytes, error) {
	return s.queryIntervals(ctx, PolicyTraffic, ids, from, to, interval)
}

// queryIntervals returns the per-interval bytes of the given series of ts (all for none).
func (s *SQLHistory) queryIntervals(ctx context.Context, ts TrafficSeries, ids []int64, from, to time.Time, interval time.Duration) (map[int64][]IntervalBytes, error) {
	ctx, cancel := s.deadline(ctx, 1)
	defer cancel()
	if err := validateIntervals(from, to, interval); err != nil {
		return nil, err
	}
	k := kindOf(ts)
	// Exact from the 1m tier and raw, or the 1h histograms for long ranges (intervalsEvery).
	_, segs, err := s.plan(ctx, k, from, to, s.tiers.intervalsEvery(from, to, interval))
	if err != nil {
		return nil, fmt.Errorf("query history intervals: %w", err)
	}
	out := make(map[int64][]IntervalBytes)
	for _, seg := range segs {
		if err := s.segmentIntervals(ctx, k, seg, ids, interval, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// segmentIntervals adds the per-interval bytes of one segment of a plan to out.
func (s *SQLHistory) segmentIntervals(ctx context.Context, k historyKind, seg segment, ids []int64, interval time.Duration, out map[int64][]IntervalBytes) error {
	if seg.tier == TierRaw {
		return s.rawIntervals(ctx, k, ids, seg, interval, out)
	}
	rows, err := s.tierRows(ctx, k, seg.tier, seg.from, seg.to, ids, false)
	if err != nil {
		return fmt.Errorf("query history intervals: %w", err)
	}
	for id, ivs := range tierIntervals(seg.tier, rows) {
		out[id] = append(out[id], ivs...)
	}
	return nil
}

// rawIntervals adds the per-interval bytes of the raw rows of seg to out.
func (s *SQLHistory) rawIntervals(ctx context.Context, k historyKind, ids []int64, seg segment, interval time.Duration, out map[int64][]IntervalBytes) error {
	secs := int64(interval / time.Second)
	filter, args := s.idFilter(k, ids, false, seg.from.UTC(), seg.to.UTC())
	err := s.eachRow(ctx, fmt.Sprintf(`SELECT %[1]s, %[2]s AS w, CAST(SUM(bytes) AS BIGINT)
FROM %[3]s WHERE timestamp >= %[4]s AND timestamp < %[5]s%[6]s
GROUP BY %[1]s, w`, k.idColumn, s.windowExpr(secs), k.rawTable, s.placeholder(1), s.placeholder(2), filter), args, func(id int64, vals ...int64) {
		out[id] = append(out[id], IntervalBytes{Time: time.Unix(vals[0]*secs, 0).UTC(), Bytes: vals[1]})
	}, 2)
	if err != nil {
		return fmt.Errorf("query history intervals: %w", err)
	}
	return nil
}

// QueryPolicyWithIntervals is QueryPolicy and QueryIntervals of one policy together (see
// withIntervals).
func (s *SQLHistory) QueryPolicyWithIntervals(ctx context.Context, policyID int64, from, to time.Time, every, interval time.Duration) ([]HistoryPoint, []IntervalBytes, error) {
	return s.seriesWithIntervals(ctx, PolicyTraffic, policyID, from, to, every, interval)
}

// QueryPathWithIntervals is QueryPath and QueryPathIntervals of one path together.
func (s *SQLHistory) QueryPathWithIntervals(ctx context.Context, pathID int64, from, to time.Time, every, interval time.Duration) ([]HistoryPoint, []IntervalBytes, error) {
	return s.seriesWithIntervals(ctx, PathTraffic, pathID, from, to, every, interval)
}

func (s *SQLHistory) seriesWithIntervals(ctx context.Context, ts TrafficSeries, id int64, from, to time.Time, every, interval time.Duration) ([]HistoryPoint, []IntervalBytes, error) {
	ctx, cancel := s.deadline(ctx, 1)
	defer cancel()
	return seriesWithIntervals(ctx, s.withIntervals, ts, id, from, to, every, interval)
}

// QueryTopWithIntervals is QueryTop and the QueryIntervals of the series it returns together
// (see withIntervals).
func (s *SQLHistory) QueryTopWithIntervals(ctx context.Context, from, to time.Time, every time.Duration, top int, interval time.Duration) ([]PolicySeries, map[int64][]IntervalBytes, error) {
	ctx, cancel := s.deadline(ctx, 1)
	defer cancel()
	return topWithIntervals(ctx, s.withIntervals, s.topIDs, from, to, every, top, interval)
}

// withIntervals reads the windows of grid and the per-interval bytes of the given series (all
// for none) over [from, to). Where the two are planned on the same segments (every a
// multiple of a minute, and the range one whose intervals the 1m tier serves), a tier
// segment's rows are read once for both; otherwise each is read as on its own.
func (s *SQLHistory) withIntervals(ctx context.Context, k historyKind, grid windowGrid, from, to time.Time, ids []int64, interval time.Duration) (*seriesSet, map[int64][]IntervalBytes, error) {
	wsegs, isegs, err := planBoth(grid.every, s.tiers.intervalsEvery(from, to, interval), func(every time.Duration) ([]segment, error) {
		_, segs, err := s.plan(ctx, k, from, to, every)
		return segs, err
	})
	if err != nil {
		return nil, nil, err
	}
	return readWithIntervals(ctx, s, k, grid, wsegs, isegs, ids, interval, sameSegments(wsegs, isegs))
}

// ratedTierRows reads the rows of a tier segment for both windows and per-interval bytes.
func (s *SQLHistory) ratedTierRows(ctx context.Context, k historyKind, seg segment, ids []int64) ([]rollupRow, error) {
	return s.tierRows(ctx, k, seg.tier, seg.from, seg.to, ids, false)
}

// QueryTotal returns all policies together as the package documents, summed in SQL; from a
// rollup tier, the all-policies rows. The windows follow the plan for every; the intervals
// are planned as QueryIntervals plans them (intervalsEvery), whatever every is.
func (s *SQLHistory) QueryTotal(ctx context.Context, from, to time.Time, every, interval time.Duration) ([]HistoryPoint, []IntervalBytes, error) {
	ctx, cancel := s.deadline(ctx, 1)
	defer cancel()
	grid, err := newWindowGrid(from, to, every)
	if err != nil {
		return nil, nil, err
	}
	if interval != 0 {
		if err := validateIntervals(from, to, interval); err != nil {
			return nil, nil, err
		}
	}
	_, segs, err := s.plan(ctx, policyHistory, from, to, every)
	if err != nil {
		return nil, nil, fmt.Errorf("query history total: %w", err)
	}
	points := grid.points()
	for _, seg := range segs {
		if seg.tier != TierRaw {
			part := newSeriesSet(grid)
			if err := s.readTierWindows(ctx, policyHistory, part, seg, []int64{totalSeriesID}); err != nil {
				return nil, nil, err
			}
			for i, p := range part.series[totalSeriesID] {
				points[i].Packets += p.Packets
				points[i].Bytes += p.Bytes
			}
			continue
		}
		secs := int64(every / time.Second)
		query := fmt.Sprintf(`SELECT %s AS w, CAST(SUM(packets) AS BIGINT), CAST(SUM(bytes) AS BIGINT)
FROM policy_stats WHERE timestamp >= %s AND timestamp < %s%s GROUP BY w`, s.windowExpr(secs), s.placeholder(1), s.placeholder(2), allFilter(PolicyTraffic))
		err = s.eachRow(ctx, query, []any{seg.from.UTC(), seg.to.UTC()}, func(w int64, vals ...int64) {
			if i := grid.index(time.Unix(w*secs, 0)); i >= 0 {
				points[i].Packets += vals[0]
				points[i].Bytes += vals[1]
			}
		}, 2)
		if err != nil {
			return nil, nil, err
		}
	}
	if interval == 0 {
		return points, nil, nil
	}
	intervals, err := s.totalIntervals(ctx, from, to, interval)
	if err != nil {
		return nil, nil, err
	}
	return points, intervals, nil
}

// totalIntervals returns the per-interval bytes of all policies together (id 0 left out),
// from the tiers QueryIntervals reads over the same range (see intervalsEvery).
func (s *SQLHistory) totalIntervals(ctx context.Context, from, to time.Time, interval time.Duration) ([]IntervalBytes, error) {
	_, segs, err := s.plan(ctx, policyHistory, from, to, s.tiers.intervalsEvery(from, to, interval))
	if err != nil {
		return nil, fmt.Errorf("query history total: %w", err)
	}
	var intervals []IntervalBytes
	for _, seg := range segs {
		if seg.tier != TierRaw {
			rows, err := s.tierRows(ctx, policyHistory, seg.tier, seg.from, seg.to, []int64{totalSeriesID}, true)
			if err != nil {
				return nil, fmt.Errorf("query history total: %w", err)
			}
			intervals = append(intervals, tierIntervals(seg.tier, rows)[totalSeriesID]...)
			continue
		}
		secs := int64(interval / time.Second)
		query := fmt.Sprintf(`SELECT %s AS w, CAST(SUM(bytes) AS BIGINT)
FROM policy_stats WHERE timestamp >= %s AND timestamp < %s%s GROUP BY w`, s.windowExpr(secs), s.placeholder(1), s.placeholder(2), allFilter(PolicyTraffic))
		err = s.eachRow(ctx, query, []any{seg.from.UTC(), seg.to.UTC()}, func(w int64, vals ...int64) {
			intervals = append(intervals, IntervalBytes{Time: time.Unix(w*secs, 0).UTC(), Bytes: vals[0]})
		}, 1)
		if err != nil {
			return nil, err
		}
	}
	return intervals, nil
}

// eachRow runs query and calls fn with each row's first column and its n integer columns.
func (s *SQLHistory) eachRow(ctx context.Context, query string, args []any, fn func(w int64, vals ...int64), n int) error {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("query history total: %w", err)
	}
	defer rows.Close()
	vals := make([]int64, n+1)
	dest := make([]any, n+1)
	for i := range dest {
		dest[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("query history total: %w", err)
		}
		fn(vals[0], vals[1:]...)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("query history total: %w", err)
	}
	return nil
}

// pruneChunk is the most rows one pruning statement deletes, so a large backlog is removed in
// short transactions that let writers in between.
const pruneChunk = 10_000

// Prune deletes the history rows (of policies and of paths) older than before and returns
// how many it deleted.
func (s *SQLHistory) Prune(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for _, ts := range []TrafficSeries{PolicyTraffic, PathTraffic} {
		n, err := s.pruneTable(ctx, ts.Table, before)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// pruneTable deletes the rows of one history table older than before.
func (s *SQLHistory) pruneTable(ctx context.Context, table string, before time.Time) (int64, error) {
	query := fmt.Sprintf(`DELETE FROM %[1]s WHERE id IN (
  SELECT id FROM %[1]s WHERE timestamp < %[2]s LIMIT %[3]d)`, table, s.placeholder(1), pruneChunk)
	var total int64
	for {
		stmtCtx, cancel := s.deadline(ctx, 1)
		res, err := s.db.ExecContext(stmtCtx, query, before.UTC())
		cancel()
		if err != nil {
			return total, fmt.Errorf("prune history before %s: %w", before.Format(time.RFC3339), err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("prune history before %s: %w", before.Format(time.RFC3339), err)
		}
		total += n
		if n < pruneChunk {
			return total, nil
		}
	}
}

// RetentionJobName is the singleton job name of the SQL history retention.
const RetentionJobName = "history-retention"

// RetentionJob returns one run of the retention: with tiers, roll up what settled (Rollup)
// and prune each rollup tier past its retention; then prune the raw rows older than
// retention (never rows not rolled up yet) and log how many went (to log, or slog.Default()
// when nil).
func (s *SQLHistory) RetentionJob(retention time.Duration, log *slog.Logger) func(ctx context.Context) error {
	if log == nil {
		log = slog.Default()
	}
	return func(ctx context.Context) error {
		now := time.Now()
		if s.tiers.on {
			now = s.tiers.now()
		}
		before := now.Add(-retention)
		if s.tiers.on {
			minutes, hours, err := s.Rollup(ctx)
			if err != nil {
				return err
			}
			before = minTime(before, minutes)
			for _, k := range historyKinds {
				for _, t := range []struct {
					tier   string
					before time.Time
				}{{Tier1m, minTime(now.Add(-s.tiers.ret1m), hours)}, {Tier1h, now.Add(-s.tiers.ret1h)}} {
					n, err := s.pruneTier(ctx, k, t.tier, t.before)
					if err != nil {
						return err
					}
					if n > 0 {
						log.Info("history retention", "tier", t.tier, "table", k.tierTable(t.tier), "deleted", n, "before", t.before.UTC().Format(time.RFC3339))
					}
				}
			}
		}
		n, err := s.Prune(ctx, before)
		if err != nil {
			return err
		}
		level := slog.LevelDebug
		if n > 0 {
			level = slog.LevelInfo
		}
		log.Log(ctx, level, "history retention", "deleted", n, "before", before.UTC().Format(time.RFC3339))
		return nil
	}
}

// RunRetention prunes rows older than retention now and then every interval, until ctx ends,
// on one replica of the cluster at a time (see RunSingleton). Failures are logged and retried
// at the next run.
func (s *SQLHistory) RunRetention(ctx context.Context, retention, interval time.Duration, log *slog.Logger) {
	storage.RunSingleton(ctx, s.owner, storage.SingletonJob{
		Name: RetentionJobName, Interval: interval, Run: s.RetentionJob(retention, log), Logger: log,
	})
}

// Ping checks that the database answers and has the policy_stats table.
func (s *SQLHistory) Ping(ctx context.Context) error {
	ctx, cancel := s.deadline(ctx, 1)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, "SELECT 1 FROM policy_stats LIMIT 1")
	if err != nil {
		return fmt.Errorf("ping sql history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ping sql history: %w", err)
	}
	return nil
}

// Close does nothing: the database belongs to the caller.
func (s *SQLHistory) Close() {}

// deadline bounds one call of the store by the database's statement deadline (n times it for a
// transaction), as the GORM stores' callbacks bound theirs: this store uses database/sql
// directly, outside those callbacks, and a database gone silent must not hang history.
func (s *SQLHistory) deadline(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, time.Duration(n)*s.owner.StatementTimeout())
}
