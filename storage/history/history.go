package history

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
)

// PolicyDelta is the traffic a policy saw on one instance between two flushes:
// packets and bytes are deltas, ActiveFlows is a gauge at Time. PolicyID 0 is the
// unclassified traffic. A delta with a PathID is a path's traffic instead (PolicyID is then
// 0): it belongs to the path series (PathTraffic), so that policies and paths do not multiply
// each other's series.
type PolicyDelta struct {
	PolicyID int64
	PathID   int64
	// PolicyName is the policy's name when the delta was taken, the policy_name tag on
	// InfluxDB (Grafana shows it); empty when unknown. SQL history joins names instead.
	PolicyName  string
	Instance    string
	Time        time.Time
	Packets     int64
	Bytes       int64
	ActiveFlows int64
}

// HistoryPoint is one window of a policy's traffic history.
type HistoryPoint struct {
	// Time is the start of the window.
	Time        time.Time
	Packets     int64
	Bytes       int64
	ActiveFlows int64
}

// PolicySeries is the history of one policy, one point per window.
type PolicySeries struct {
	PolicyID int64
	Points   []HistoryPoint
}

// MeasurementPolicyTraffic is the InfluxDB measurement of history points.
const MeasurementPolicyTraffic = "policy_traffic"

// MeasurementPathTraffic is the InfluxDB measurement of per-path history points.
const MeasurementPathTraffic = "path_traffic"

// TrafficSeries says where one kind of traffic history lives: the InfluxDB measurement, the
// SQL table, and the tag (InfluxDB) or column (SQL) holding the series id. The reads and
// writes of every store are parameterized by it, so policies and paths share one machinery.
// Its values are constants of this package: they are written into queries unquoted.
type TrafficSeries struct {
	Measurement string
	Table       string
	IDKey       string
}

// The kinds of traffic history. Id 0 of PolicyTraffic is the unclassified traffic (matched
// no policy); the queries over all policies (QueryTop, QueryTotal, QueryIntervals without
// ids) leave id 0 out, so unclassified traffic is only ever read as a series of its own.
var (
	PolicyTraffic = TrafficSeries{Measurement: MeasurementPolicyTraffic, Table: "policy_stats", IDKey: "policy_id"}
	PathTraffic   = TrafficSeries{Measurement: MeasurementPathTraffic, Table: "path_stats", IDKey: "path_id"}
)

// UnclassifiedPolicyID is the policy id under which unclassified traffic is written.
const UnclassifiedPolicyID int64 = 0

// seriesOf returns the series a delta is written to: its path's when it has a path id.
func seriesOf(d PolicyDelta) TrafficSeries {
	if d.PathID != 0 {
		return PathTraffic
	}
	return PolicyTraffic
}

// seriesID returns the id of the delta within seriesOf(d).
func seriesID(d PolicyDelta) int64 {
	if d.PathID != 0 {
		return d.PathID
	}
	return d.PolicyID
}

// Limits of history queries, so one request cannot ask a store for unbounded work.
const (
	// MaxHistoryWindows is the most windows one query may span.
	MaxHistoryWindows = 100_000
	// MaxHistoryTop is the largest top a QueryTop may ask for.
	MaxHistoryTop = 1000
)

// WriteError is a failed history write, classified for the caller's retry policy: network
// errors, 5xx and 429 are Retryable (after RetryAfter when the server said so); any other
// failure is permanent, and sending the same batch again cannot succeed.
type WriteError struct {
	// Status is the HTTP status of the answer, 0 when there was none.
	Status    int
	Retryable bool
	// RetryAfter is how long the server asked the client to wait, 0 when it did not say.
	RetryAfter time.Duration
	Err        error
}

// Error describes the failure with its status and classification.
func (e *WriteError) Error() string {
	kind := "permanent"
	if e.Retryable {
		kind = "retryable"
	}
	msg := fmt.Sprintf("history write failed (%s", kind)
	if e.Status != 0 {
		msg += fmt.Sprintf(", HTTP %d", e.Status)
	}
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(", retry after %s", e.RetryAfter)
	}
	return msg + fmt.Sprintf("): %v", e.Err)
}

// Unwrap returns the cause.
func (e *WriteError) Unwrap() error { return e.Err }

// validateDeltas rejects deltas no store can record faithfully: the caller has a bug, and
// retrying cannot help, so the error is permanent.
func validateDeltas(deltas []PolicyDelta) error {
	for i, d := range deltas {
		var problem string
		switch {
		case d.Instance == "":
			problem = "empty instance"
		case d.Time.IsZero():
			problem = "zero time"
		case d.Packets < 0 || d.Bytes < 0 || d.ActiveFlows < 0:
			problem = "negative value"
		case d.PathID < 0 || d.PolicyID < 0:
			problem = "negative id"
		case d.PathID != 0 && d.PolicyID != 0:
			problem = "both a policy and a path id"
		}
		if problem != "" {
			return &WriteError{Err: fmt.Errorf("%w: delta %d (policy %d): %s", storage.ErrInvalid, i, d.PolicyID, problem)}
		}
	}
	return nil
}

// windowGrid is the list of windows a query answers with: count windows of every, the
// first starting at start.
type windowGrid struct {
	start time.Time
	every time.Duration
	count int
}

// newWindowGrid validates a query range and returns its windows.
func newWindowGrid(from, to time.Time, every time.Duration) (windowGrid, error) {
	switch {
	case from.IsZero() || to.IsZero():
		return windowGrid{}, fmt.Errorf("%w: history range needs from and to", storage.ErrInvalid)
	case !from.Before(to):
		return windowGrid{}, fmt.Errorf("%w: history range from %s is not before to %s", storage.ErrInvalid, from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano))
	case every < time.Second || every%time.Second != 0:
		return windowGrid{}, fmt.Errorf("%w: history window %s is not a whole number of seconds", storage.ErrInvalid, every)
	}
	start := floorTime(from, every)
	n := to.Sub(start) / every
	if start.Add(n * every).Before(to) {
		n++
	}
	// A range longer than time.Duration can hold (~292 years) saturates Sub; it is too many
	// windows either way.
	if n > MaxHistoryWindows || n <= 0 {
		return windowGrid{}, fmt.Errorf("%w: history range %s..%s at %s spans more than %d windows", storage.ErrInvalid,
			from.Format(time.RFC3339), to.Format(time.RFC3339), every, MaxHistoryWindows)
	}
	return windowGrid{start: start, every: every, count: int(n)}, nil
}

// HistoryWindowCount returns how many windows a query over [from, to) at every answers
// with: the epoch-aligned windows of every that overlap the range. It is 0 when from is not
// before to or every is not a whole number of seconds, so callers can check a range against
// their own limit before asking a store.
func HistoryWindowCount(from, to time.Time, every time.Duration) int64 {
	if !from.Before(to) || every < time.Second || every%time.Second != 0 {
		return 0
	}
	secs := int64(every / time.Second)
	first := floorDiv(from.Unix(), secs)
	last := floorDiv(to.Add(-time.Nanosecond).Unix(), secs) // the window of the last instant before to
	return last - first + 1
}

// floorDiv is a / b rounded towards minus infinity, for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// floorTime returns the start of the epoch-aligned window of every that holds t.
func floorTime(t time.Time, every time.Duration) time.Time {
	secs := int64(every / time.Second)
	unix := t.Unix() // whole seconds, rounded towards minus infinity
	k := unix / secs
	if unix%secs < 0 {
		k--
	}
	return time.Unix(k*secs, 0).UTC()
}

// points returns the grid's windows as zero points.
func (g windowGrid) points() []HistoryPoint {
	out := make([]HistoryPoint, g.count)
	for i := range out {
		out[i].Time = g.start.Add(time.Duration(i) * g.every)
	}
	return out
}

// index returns the window that holds t, or -1 when t is outside the grid.
func (g windowGrid) index(t time.Time) int {
	if t.Before(g.start) {
		return -1
	}
	i := int(floorTime(t, g.every).Sub(g.start) / g.every)
	if i >= g.count {
		return -1
	}
	return i
}

// seriesSet gathers windowed values per policy and orders them the way QueryTop promises.
type seriesSet struct {
	grid   windowGrid
	series map[int64][]HistoryPoint
}

func newSeriesSet(grid windowGrid) *seriesSet {
	return &seriesSet{grid: grid, series: make(map[int64][]HistoryPoint)}
}

// add adds values to the window holding t of a policy's series; values outside the grid
// are ignored.
func (s *seriesSet) add(policyID int64, t time.Time, packets, bytes, activeFlows int64) {
	i := s.grid.index(t)
	if i < 0 {
		return
	}
	points, ok := s.series[policyID]
	if !ok {
		points = s.grid.points()
		s.series[policyID] = points
	}
	points[i].Packets += packets
	points[i].Bytes += bytes
	points[i].ActiveFlows += activeFlows
}

// ordered returns the series by total bytes, most first, then by policy id.
func (s *seriesSet) ordered() []PolicySeries {
	out := make([]PolicySeries, 0, len(s.series))
	totals := make(map[int64]int64, len(s.series))
	for id, points := range s.series {
		var total int64
		for _, p := range points {
			total += p.Bytes
		}
		totals[id] = total
		out = append(out, PolicySeries{PolicyID: id, Points: points})
	}
	sort.Slice(out, func(i, j int) bool {
		ti, tj := totals[out[i].PolicyID], totals[out[j].PolicyID]
		if ti != tj {
			return ti > tj
		}
		return out[i].PolicyID < out[j].PolicyID
	})
	return out
}

// policyTotal is one policy's bytes over a query range, used to pick the top policies.
type policyTotal struct {
	policyID int64
	bytes    int64
}

// topPolicies returns the ids of the n policies with the most bytes, ties broken by id.
func topPolicies(totals []policyTotal, n int) []int64 {
	sort.Slice(totals, func(i, j int) bool {
		if totals[i].bytes != totals[j].bytes {
			return totals[i].bytes > totals[j].bytes
		}
		return totals[i].policyID < totals[j].policyID
	})
	if len(totals) > n {
		totals = totals[:n]
	}
	ids := make([]int64, len(totals))
	for i, t := range totals {
		ids[i] = t.policyID
	}
	return ids
}

// validateTop checks QueryTop's top argument.
func validateTop(top int) error {
	if top < 0 || top > MaxHistoryTop {
		return fmt.Errorf("%w: top %d is not between 0 and %d", storage.ErrInvalid, top, MaxHistoryTop)
	}
	return nil
}

// AsWriteError is the one decision on a failed history write, shared by every store and its
// callers: a *WriteError (anywhere in the chain) keeps the classification of the store that
// made it, which knows what its answers mean; any other error is retryable, because a store
// that failed for a reason nobody classified (a dropped connection, a deadline, a database
// restarting) may well answer next time, and dropping acknowledged history is worse than
// sending it again (a retried batch overwrites itself, it cannot double count).
func AsWriteError(err error) *WriteError {
	var werr *WriteError
	if errors.As(err, &werr) {
		return werr
	}
	return &WriteError{Retryable: true, Err: err}
}

// merge adds the series of src, read from another segment of the same grid, to s: packets
// and bytes add up, active flows take the larger of the two (each segment's figure is
// already the window's over all instances).
func (s *seriesSet) merge(src *seriesSet) {
	for id, points := range src.series {
		dst, ok := s.series[id]
		if !ok {
			s.series[id] = points
			continue
		}
		for i := range points {
			dst[i].Packets += points[i].Packets
			dst[i].Bytes += points[i].Bytes
			dst[i].ActiveFlows = max(dst[i].ActiveFlows, points[i].ActiveFlows)
		}
	}
}

// historyKind names where one kind of series lives, so that the rollup code serves policy
// history and any other series with the same columns (path history, say) alike.
type historyKind struct {
	// rawTable and idColumn are the SQL table of raw points and its series column; the
	// rollup tables are rawTable_1m and rawTable_1h.
	rawTable, idColumn string
	// measurement and idTag are the InfluxDB measurement (in every tier's retention policy)
	// and its series tag.
	measurement, idTag string
}

// series is the TrafficSeries of the kind's raw points.
func (k historyKind) series() TrafficSeries {
	return TrafficSeries{Measurement: k.measurement, Table: k.rawTable, IDKey: k.idTag}
}

// policyHistory is the kind of the per-policy history.
var policyHistory = historyKind{rawTable: "policy_stats", idColumn: "policy_id", measurement: MeasurementPolicyTraffic, idTag: "policy_id"}

// pathHistory is the kind of the per-path history.
var pathHistory = historyKind{rawTable: "path_stats", idColumn: "path_id", measurement: MeasurementPathTraffic, idTag: "path_id"}

// historyKinds are the kinds with rollup tiers.
var historyKinds = []historyKind{policyHistory, pathHistory}

// kindOf is the kind of the series ts.
func kindOf(ts TrafficSeries) historyKind {
	if ts == PathTraffic {
		return pathHistory
	}
	return policyHistory
}

// deltasOf are the deltas of kind k.
func deltasOf(k historyKind, deltas []PolicyDelta) []PolicyDelta {
	var out []PolicyDelta
	for _, d := range deltas {
		if kindOf(seriesOf(d)) == k {
			out = append(out, d)
		}
	}
	return out
}

// tierTable is the SQL table of a rollup tier.
func (k historyKind) tierTable(tier string) string { return k.rawTable + "_" + tier }
