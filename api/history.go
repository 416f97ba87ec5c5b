package api

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/history"
)

// Defaults and limits of the history routes, as openapi.yaml documents them.
const (
	defaultHistoryFrom  = "-1h"
	defaultHistoryTo    = "now"
	defaultHistoryEvery = "1m"
	// maxHistoryWindows is the most windows one series of an answer may have.
	maxHistoryWindows = 10_000
	// maxHistoryPoints bounds the points of a whole GET /stats/history answer (series times
	// windows), so that a viewer cannot make the server build gigabytes of JSON.
	maxHistoryPoints = 1_000_000
	// maxHistorySeries is the most series of a GET /stats/history answer without top; asking
	// the store for one more must stay within history.MaxHistoryTop.
	maxHistorySeries = 500
)

// csvContentType is the media type of a CSV history export.
const csvContentType = "text/csv; charset=utf-8"

// historyRange is a history request's range and window width, resolved and checked.
type historyRange struct {
	from, to time.Time
	every    time.Duration
	// everyText is every as the client wrote it (or the default), echoed in the answer.
	everyText string
	windows   int64
}

// now is the clock relative times are resolved against.
func (s *Server) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// historyRangeOf resolves the from, to and every parameters against one reading of the clock
// and checks them; every problem is a 400 naming its parameter.
func (s *Server) historyRangeOf(from, to, every *string) (historyRange, error) {
	now := s.now().UTC()
	fromText, toText, everyText := orDefault(from, defaultHistoryFrom), orDefault(to, defaultHistoryTo), orDefault(every, defaultHistoryEvery)
	var fields []FieldError
	r := historyRange{everyText: everyText}
	var err error
	if r.from, err = parseHistoryTime(fromText, now); err != nil {
		fields = append(fields, FieldError{Field: "from", Message: err.Error()})
	}
	if r.to, err = parseHistoryTime(toText, now); err != nil {
		fields = append(fields, FieldError{Field: "to", Message: err.Error()})
	}
	if r.every, err = parseHistoryEvery(everyText); err != nil {
		fields = append(fields, FieldError{Field: "every", Message: err.Error()})
	}
	if len(fields) > 0 {
		return r, fieldErrors(errBadRequest, fields)
	}
	if !r.from.Before(r.to) {
		return r, fieldErrors(errBadRequest, []FieldError{{Field: "to", Message: fmt.Sprintf(
			"must be after from (from resolves to %s, to to %s)", r.from.Format(time.RFC3339Nano), r.to.Format(time.RFC3339Nano))}})
	}
	r.windows = history.HistoryWindowCount(r.from, r.to, r.every)
	if r.windows > maxHistoryWindows {
		return r, fieldErrors(errBadRequest, []FieldError{{Field: "every", Message: fmt.Sprintf(
			"%s windows over %s..%s make %s points, more than the limit of %d per series: use a wider every or a shorter range",
			everyText, r.from.Format(time.RFC3339), r.to.Format(time.RFC3339), windowCountText(r.windows), maxHistoryWindows)}})
	}
	return r, nil
}

func orDefault(p *string, def string) string {
	if p == nil || *p == "" {
		return def
	}
	return *p
}

func windowCountText(n int64) string {
	if n == math.MaxInt64 {
		return "too many"
	}
	return strconv.FormatInt(n, 10)
}

// historyUnits are the units of relative times and window widths.
var historyUnits = map[byte]time.Duration{
	's': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour,
}

// parseHistoryTime reads an RFC 3339 time, "now", or a negative duration before now such
// as -30m (units s, m, h, d, w).
func parseHistoryTime(s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now, nil
	}
	if len(s) > 0 && s[0] == '-' {
		d, err := parseCount(s[1:], "s, m, h, d or w")
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not RFC 3339, now or a relative time like -1h: %w", s, err)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not RFC 3339 (2025-06-01T12:00:00Z), now or a relative time like -1h", s)
	}
	return t.UTC(), nil
}

// parseHistoryEvery reads a window width such as 10s, 1m, 1h or 1d.
func parseHistoryEvery(s string) (time.Duration, error) {
	if s != "" && s[len(s)-1] == 'w' {
		return 0, fmt.Errorf("%q: the unit must be s, m, h or d", s)
	}
	d, err := parseCount(s, "s, m, h or d")
	if err != nil {
		return 0, fmt.Errorf("%q is not a window width like 10s, 1m or 1h: %w", s, err)
	}
	return d, nil
}

// parseCount reads a positive whole number followed by one unit letter of historyUnits.
func parseCount(s, units string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("want a positive number and a unit (%s)", units)
	}
	unit, ok := historyUnits[s[len(s)-1]]
	if !ok {
		return 0, fmt.Errorf("the unit must be %s", units)
	}
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil || n <= 0 || s[0] == '+' {
		return 0, fmt.Errorf("want a positive whole number before the unit")
	}
	if n > int64(math.MaxInt64/unit) {
		return 0, errors.New("too long: at most about 292 years")
	}
	return time.Duration(n) * unit, nil
}

// HistoryReader is what the history routes need of the history store: windowed sums, the
// per-interval bytes of rates and percentiles, and the tier that answers. history.SQLHistory
// and history.InfluxHistory implement it, with the semantics package history documents; the
// path route also needs PathHistoryReader.
type HistoryReader interface {
	// QueryPolicy returns the windows of one policy's history over [from, to); policy id 0
	// (history.UnclassifiedPolicyID) is the unclassified traffic.
	QueryPolicy(ctx context.Context, policyID int64, from, to time.Time, every time.Duration) ([]history.HistoryPoint, error)
	// QueryTop returns the windows of every policy with points in [from, to), or of the top
	// policies by bytes when top > 0, most bytes first.
	QueryTop(ctx context.Context, from, to time.Time, every time.Duration, top int) ([]history.PolicySeries, error)
	// QueryIntervals returns, per policy (the given ones, all for none), the bytes of each
	// interval of [from, to) with traffic.
	QueryIntervals(ctx context.Context, ids []int64, from, to time.Time, interval time.Duration) (map[int64][]history.IntervalBytes, error)
	// QueryPolicyWithIntervals is QueryPolicy and QueryIntervals of one policy in one read.
	QueryPolicyWithIntervals(ctx context.Context, policyID int64, from, to time.Time, every, interval time.Duration) ([]history.HistoryPoint, []history.IntervalBytes, error)
	// QueryTopWithIntervals is QueryTop and QueryIntervals of the series it returns in one
	// read.
	QueryTopWithIntervals(ctx context.Context, from, to time.Time, every time.Duration, top int, interval time.Duration) ([]history.PolicySeries, map[int64][]history.IntervalBytes, error)
	// QueryTotal returns the windows of all policies together, and with interval > 0 their
	// per-interval bytes.
	QueryTotal(ctx context.Context, from, to time.Time, every, interval time.Duration) ([]history.HistoryPoint, []history.IntervalBytes, error)
	// Tier names the tier that answers reads over [from, to) at every.
	Tier(ctx context.Context, from, to time.Time, every time.Duration) (string, error)
}

// historyStore returns the configured history store, or the 503 the spec documents.
func (s *Server) historyStore() (HistoryReader, error) {
	if s.cfg.History == nil {
		return nil, newError(errUnavailable, "the history store is not configured")
	}
	return s.cfg.History, nil
}

// historyQueryError turns a failed store query into the answer: the store's own validation
// is a 400 (the handler checks first, so this is a backstop); anything else means the store
// did not answer, logged with the request id and reported as 503.
func historyQueryError(c *gin.Context, err error) error {
	if errors.Is(err, storage.ErrInvalid) {
		return newError(errBadRequest, "%v", err)
	}
	loggerFrom(c).Error("history query failed", "err", err, "request_id", requestID(c))
	return newError(errUnavailable, "the history store is unavailable")
}

// rateInterval returns the flush interval peak rates and percentiles of r are computed
// over, or 0 when they are left out: no whole-second flush interval configured, or more
// intervals than one query may read.
func (s *Server) rateInterval(r historyRange) time.Duration {
	iv := s.cfg.HistoryInterval
	if iv < time.Second || iv%time.Second != 0 || history.IntervalCount(r.from, r.to, iv) > history.MaxHistoryIntervals {
		return 0
	}
	return iv
}

// intervalText formats a flush interval for the answer's interval field.
func intervalText(iv time.Duration) *string {
	if iv == 0 {
		return nil
	}
	t := strconv.FormatInt(int64(iv/time.Second), 10) + "s"
	return &t
}

// ratedSeries is one series of an answer with its rates and summary.
type ratedSeries struct {
	points  []history.HistoryPoint
	rates   []history.PointRates
	summary history.HistorySummary
}

// rateSeries computes the rates of points over r; intervals are the series' per-interval bytes.
func rateSeries(r historyRange, iv time.Duration, points []history.HistoryPoint, intervals []history.IntervalBytes) ratedSeries {
	rates, sum := history.HistoryRates(points, intervals, r.from, r.to, r.every, iv)
	return ratedSeries{points: points, rates: rates, summary: sum}
}

func (rs ratedSeries) pointsOut(withPeak bool) []apigen.HistoryPoint {
	out := make([]apigen.HistoryPoint, len(rs.points))
	for i, p := range rs.points {
		out[i] = apigen.HistoryPoint{Time: p.Time.UTC(), Packets: p.Packets, Bytes: p.Bytes, ActiveFlows: p.ActiveFlows,
			Pps: rs.rates[i].PPS, Bps: rs.rates[i].BPS}
		if withPeak {
			out[i].PeakBps = &rs.rates[i].PeakBPS
		}
	}
	return out
}

// previous returns the period of equal length just before r, with the same windows.
func (r historyRange) previous() historyRange {
	d := r.to.Sub(r.from)
	p := r
	p.from, p.to = r.from.Add(-d), r.from
	return p
}

func (rs ratedSeries) previousOut(r historyRange, withPeak bool) *apigen.HistoryPrevious {
	return &apigen.HistoryPrevious{From: r.from, To: r.to, Points: rs.pointsOut(withPeak), Summary: rs.summaryOut(withPeak)}
}

func (rs ratedSeries) summaryOut(withPeak bool) apigen.HistorySummary {
	sum := rs.summary
	out := apigen.HistorySummary{TotalPackets: sum.TotalPackets, TotalBytes: sum.TotalBytes, AvgBps: sum.AvgBPS}
	if withPeak {
		out.MaxBps, out.P95Bps, out.LastBps, out.Intervals = &sum.MaxBPS, &sum.P95BPS, &sum.LastBPS, &sum.Intervals
	}
	return out
}

// GetPolicyStatsHistory answers one policy's traffic history over a range, in JSON or CSV.
func (s *Server) GetPolicyStatsHistory(c *gin.Context, policyID apigen.PolicyID, params apigen.GetPolicyStatsHistoryParams) {
	r, asCSV, store, ok := s.openSeriesHistory(c, params.From, params.To, params.Every, (*string)(params.Format))
	if !ok {
		return
	}
	ctx := c.Request.Context()
	policy, err := s.store.Policies().Get(ctx, policyID)
	if err != nil {
		writeError(c, err)
		return
	}
	a, err := s.readSeriesHistory(c, r, policyReader(store, policyID), params.Compare != nil && !asCSV)
	if err != nil {
		writeError(c, err)
		return
	}
	c.Header(historyTierHeader, a.tier)
	if asCSV {
		writeHistoryCSV(c, fmt.Sprintf("policy-%d-history.csv", policyID), a.rated, a.withPeak())
		return
	}
	c.JSON(http.StatusOK, apigen.PolicyHistory{
		PolicyID: policyID, PolicyName: policy.Name, From: r.from, To: r.to, Every: r.everyText, Tier: apigen.HistoryTier(a.tier), Interval: intervalText(a.iv),
		Points: a.rated.pointsOut(a.withPeak()), Summary: a.rated.summaryOut(a.withPeak()), Previous: a.previous,
	})
}

// wantsCSV says whether the answer is CSV: format wins, then Accept (JSON unless the client
// prefers text/csv).
func wantsCSV[F ~string](c *gin.Context, format *F) (bool, error) {
	if format != nil {
		switch *format {
		case "csv":
			return true, nil
		case "json":
			return false, nil
		default:
			return false, fieldErrors(errBadRequest, []FieldError{{Field: "format", Message: "must be json or csv"}})
		}
	}
	if c.GetHeader("Accept") == "" {
		return false, nil
	}
	return c.NegotiateFormat(gin.MIMEJSON, "text/csv") == "text/csv", nil
}

// writeHistoryCSV writes a series as CSV with a header row, times in RFC 3339 UTC; peak_bps
// is empty when it is not known.
func writeHistoryCSV(c *gin.Context, filename string, rs ratedSeries, withPeak bool) {
	c.Header("Content-Type", csvContentType)
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename=%q`, filename))
	c.Status(http.StatusOK)
	w := csv.NewWriter(c.Writer)
	_ = w.Write(historyCSVHeader)
	writeHistoryRows(w, nil, rs, withPeak)
	w.Flush()
}

// historyTierHeader is the response header naming the tier a history answer was read from.
const historyTierHeader = "X-History-Tier"

// historyCSVHeader names the columns of a history CSV row.
var historyCSVHeader = []string{"time", "packets", "bytes", "active_flows", "pps", "bps", "peak_bps"}

// writeHistoryRows writes one row per window of rs, each after the lead columns.
func writeHistoryRows(w *csv.Writer, lead []string, rs ratedSeries, withPeak bool) {
	for i, p := range rs.points {
		peak := ""
		if withPeak {
			peak = formatRate(rs.rates[i].PeakBPS)
		}
		_ = w.Write(append(slices.Clip(lead), p.Time.UTC().Format(time.RFC3339), strconv.FormatInt(p.Packets, 10),
			strconv.FormatInt(p.Bytes, 10), strconv.FormatInt(p.ActiveFlows, 10),
			formatRate(rs.rates[i].PPS), formatRate(rs.rates[i].BPS), peak))
	}
}

// writeStatsHistoryCSV writes every series as CSV rows led by the policy id (0 for other)
// and name (empty for other and for a deleted policy), after a header row.
func (s *Server) writeStatsHistoryCSV(c *gin.Context, series []statsSeries, iv time.Duration) {
	c.Header("Content-Type", csvContentType)
	c.Header("Content-Disposition", `attachment; filename="stats-history.csv"`)
	c.Status(http.StatusOK)
	w := csv.NewWriter(c.Writer)
	_ = w.Write(append([]string{"policy_id", "policy_name"}, historyCSVHeader...))
	for _, ss := range series {
		name := ""
		if n := s.policyName(ss.policyID); n != nil && !ss.other {
			name = *n
		}
		writeHistoryRows(w, []string{strconv.FormatInt(ss.policyID, 10), name}, ss.ratedSeries, ss.withPeak(iv))
	}
	w.Flush()
}

// formatRate writes a rate in the shortest form that reads back exactly.
func formatRate(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// GetStatsHistory answers the traffic history of every policy with traffic in the range, or
// of the top N by bytes, most bytes first.
func (s *Server) GetStatsHistory(c *gin.Context, params apigen.GetStatsHistoryParams) {
	r, err := s.historyRangeOf(params.From, params.To, params.Every)
	if err != nil {
		writeError(c, err)
		return
	}
	// Without top, ask for one series more than may be answered, to know when there are too
	// many.
	maxSeries := min(int64(maxHistorySeries), maxHistoryPoints/r.windows)
	top := int(maxSeries) + 1
	if params.Top != nil {
		if *params.Top < 1 || int64(*params.Top) > maxSeries || *params.Top > history.MaxHistoryTop {
			writeError(c, fieldErrors(errBadRequest, []FieldError{{Field: "top", Message: fmt.Sprintf(
				"must be between 1 and %d for %d windows (at most %d points per answer)", maxSeries, r.windows, maxHistoryPoints)}}))
			return
		}
		top = int(*params.Top)
	}
	rank := apigen.GetStatsHistoryParamsRankBytes
	if params.Rank != nil {
		rank = *params.Rank
	}
	iv := s.rateInterval(r)
	var fields []FieldError
	asCSV, err := wantsCSV(c, params.Format)
	if err != nil {
		writeError(c, err)
		return
	}
	if asCSV && params.Compare != nil {
		fields = append(fields, FieldError{Field: "compare", Message: "is not available in CSV; ask for JSON (format=json)"})
	}
	if params.Other != nil && *params.Other && params.Top == nil {
		fields = append(fields, FieldError{Field: "other", Message: "needs top: without it every policy is listed and there is no other"})
	}
	if rank != apigen.GetStatsHistoryParamsRankBytes && (params.Top == nil || iv == 0) {
		fields = append(fields, FieldError{Field: "rank", Message: fmt.Sprintf(
			"%s needs top and per-interval rates (a flush interval of whole seconds, at most %d intervals in the range)", rank, history.MaxHistoryIntervals)})
	}
	if len(fields) > 0 {
		writeError(c, fieldErrors(errBadRequest, fields))
		return
	}
	store, err := s.historyStore()
	if err != nil {
		writeError(c, err)
		return
	}
	q := statsQuery{history: store, r: r, iv: iv, top: top, rank: rank, other: params.Other != nil && *params.Other}
	ctx := c.Request.Context()
	series, err := q.run(ctx)
	if err != nil {
		writeError(c, historyQueryError(c, err))
		return
	}
	if params.Top == nil && int64(len(series)) > maxSeries {
		writeError(c, fieldErrors(errBadRequest, []FieldError{{Field: "top", Message: fmt.Sprintf(
			"more than %d policies had traffic in the range, over the limit of %d points per answer at %d windows: ask for the top N",
			maxSeries, maxHistoryPoints, r.windows)}}))
		return
	}
	tier, err := store.Tier(ctx, r.from, r.to, r.every)
	if err != nil {
		writeError(c, historyQueryError(c, err))
		return
	}
	c.Header(historyTierHeader, tier)
	if asCSV {
		s.writeStatsHistoryCSV(c, series, iv)
		return
	}
	var previous []statsSeries
	if params.Compare != nil {
		// The same policies (and other) over the preceding period.
		pq := q
		pq.r = r.previous()
		if previous, err = pq.runFor(ctx, series); err != nil {
			writeError(c, historyQueryError(c, err))
			return
		}
	}
	out := apigen.StatsHistory{From: r.from, To: r.to, Every: r.everyText, Tier: apigen.HistoryTier(tier), Interval: intervalText(iv), Series: make([]apigen.HistorySeries, len(series))}
	for i, ss := range series {
		summary := ss.summaryOut(ss.withPeak(iv))
		out.Series[i] = apigen.HistorySeries{PolicyID: ss.policyID, Points: ss.pointsOut(ss.withPeak(iv)), Summary: &summary}
		if ss.other {
			out.Series[i].Other = &ss.other
		} else {
			out.Series[i].PolicyName = s.policyName(ss.policyID)
		}
		if previous != nil {
			out.Series[i].Previous = previous[i].previousOut(r.previous(), previous[i].withPeak(iv))
		}
	}
	c.JSON(http.StatusOK, out)
}

// policyName is the name of a policy as this replica's classifier knows it (the inventory's,
// as of the last change applied), "unclassified" for id 0, nil for a policy deleted since.
func (s *Server) policyName(id int64) *string {
	if s.cfg.Collector == nil {
		return nil
	}
	if name := s.cfg.Collector.PolicyName(id); name != "" && (id == collector.Unclassified || s.cfg.Collector.KnowsPolicy(id)) {
		return &name
	}
	return nil
}

// GetPipelineStats answers the state of the history flush. Without a flush pipeline
// (Config.Pipeline nil) nothing was flushed: the counters are zero and the times null.
func (s *Server) GetPipelineStats(c *gin.Context) {
	out := apigen.PipelineStats{Backend: apigen.PipelineStatsBackendSQL}
	if _, ok := s.cfg.History.(*history.InfluxHistory); ok {
		out.Backend = apigen.PipelineStatsBackendInfluxdb
	}
	if s.cfg.Pipeline != nil {
		st := s.cfg.Pipeline.Stats()
		out.PointsWritten, out.PointsPending, out.PointsDropped, out.BatchesFailed =
			st.PointsWritten, st.PointsPending, st.PointsDropped, st.BatchesFailed
		if st.LastError != "" {
			out.LastError = &st.LastError
		}
		out.LastErrorAt = timeOrNil(st.LastErrorAt)
		out.LastSuccessAt = timeOrNil(st.LastSuccessAt)
	}
	c.JSON(http.StatusOK, out)
}

// timeOrNil is t in UTC, or nil for the zero time.
func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
