package history

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxInfluxQLAnswer bounds the body of one InfluxQL answer: a query the API allows (10,000
// windows, a few instances, the top 1,000 policies) stays far below it, and a server that
// sends more cannot make this process hold it all.
const maxInfluxQLAnswer = 256 << 20

// influxQL runs InfluxQL statements on the 1.x /query endpoint of one database and
// retention policy. It uses plain net/http: the v2 client has no 1.x query API, and the
// answer's JSON is small enough to decode directly.
type influxQL struct {
	http     *http.Client
	endpoint string // ".../query"
	auth     string // the Authorization header, "" for none
	database string
	rp       string
}

// newInfluxQL returns the InfluxQL client for cfg: bucket "database/retention-policy" (or a
// database alone, for its default policy), token "user:password" as basic auth or anything
// else as a token.
func newInfluxQL(cfg InfluxConfig, timeout time.Duration) *influxQL {
	db, rp, _ := strings.Cut(cfg.Bucket, "/")
	q := &influxQL{
		http:     &http.Client{Timeout: timeout},
		endpoint: strings.TrimRight(cfg.URL, "/") + "/query",
		database: db,
		rp:       rp,
	}
	switch user, pass, ok := strings.Cut(cfg.Token, ":"); {
	case ok:
		q.auth = "Basic " + basicAuth(user, pass)
	case cfg.Token != "":
		q.auth = "Token " + cfg.Token
	}
	return q
}

func basicAuth(user, pass string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, pass)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

// influxQLSeries is one series of an InfluxQL answer: its tags and rows of values, the
// first column the time in nanoseconds (epoch=ns).
type influxQLSeries = influxQLSeriesOf[json.Number]

// influxQLSeriesOf is a series whose values decode as V: json.Number for numeric columns,
// any (json.Number or string) for a mix.
type influxQLSeriesOf[V any] struct {
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]V             `json:"values"`
}

type influxQLAnswer[V any] struct {
	Results []struct {
		Series  []influxQLSeriesOf[V] `json:"series"`
		Error   string                `json:"error"`
		Partial bool                  `json:"partial"`
	} `json:"results"`
	Error string `json:"error"`
}

// run executes one statement and returns its series. A partial answer (the server's row
// limit cut it) is an error: the sums would be wrong.
func (q *influxQL) run(ctx context.Context, statement string) ([]influxQLSeries, error) {
	return runInfluxQL[json.Number](ctx, q, statement, q.rp)
}

// runInfluxQL is run with values decoded as V, against retention policy rp.
func runInfluxQL[V any](ctx context.Context, q *influxQL, statement, rp string) ([]influxQLSeriesOf[V], error) {
	form := url.Values{"q": {statement}, "db": {q.database}, "epoch": {"ns"}}
	if rp != "" {
		form.Set("rp", rp)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if q.auth != "" {
		req.Header.Set("Authorization", q.auth)
	}
	resp, err := q.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("influxql query: %w", err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxInfluxQLAnswer)
	var answer influxQLAnswer[V]
	dec := json.NewDecoder(body)
	dec.UseNumber()
	decodeErr := dec.Decode(&answer)
	switch {
	case resp.StatusCode != http.StatusOK && answer.Error != "":
		return nil, fmt.Errorf("influxql query: HTTP %d: %s", resp.StatusCode, answer.Error)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("influxql query: HTTP %d", resp.StatusCode)
	case decodeErr != nil:
		return nil, fmt.Errorf("influxql query: decode answer: %w", decodeErr)
	case answer.Error != "":
		return nil, fmt.Errorf("influxql query: %s", answer.Error)
	case len(answer.Results) != 1:
		return nil, fmt.Errorf("influxql query: %d results for one statement", len(answer.Results))
	case answer.Results[0].Error != "":
		return nil, fmt.Errorf("influxql query: %s", answer.Results[0].Error)
	case answer.Results[0].Partial:
		return nil, fmt.Errorf("influxql query: the server cut the answer short (max-row-limit)")
	}
	return answer.Results[0].Series, nil
}

// influxQLIdent quotes s as an InfluxQL identifier.
func influxQLIdent(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// influxQLString quotes s as an InfluxQL string literal.
func influxQLString(s string) string {
	return `'` + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + `'`
}

// from is the FROM clause: the measurement in the configured database and policy.
func (q *influxQL) from(measurement string) string {
	return q.fromRP(q.rp, measurement)
}

// fromRP is the FROM clause of measurement in retention policy rp of the database.
func (q *influxQL) fromRP(rp, measurement string) string {
	if rp == "" {
		return influxQLIdent(q.database) + ".." + influxQLIdent(measurement)
	}
	return influxQLIdent(q.database) + "." + influxQLIdent(rp) + "." + influxQLIdent(measurement)
}

// where is the condition on time and the series of ts (all but id 0 for none). Times are
// integer nanoseconds and ids numbers formatted here, so neither can carry InfluxQL.
func influxQLWhere(ts TrafficSeries, from, to time.Time, ids []int64) string {
	return influxQLRange(from, to) + influxQLIDs(ts, ids)
}

// influxQLRange is the condition on time alone, [from, to) in integer nanoseconds: every
// series, the unclassified traffic's too.
func influxQLRange(from, to time.Time) string {
	return fmt.Sprintf("time >= %d AND time < %d", from.UnixNano(), to.UnixNano())
}

// influxQLIDs is the condition on the series of ts after a time condition: the given ids, or
// all but id 0 for none.
func influxQLIDs(ts TrafficSeries, ids []int64) string {
	var b strings.Builder
	key := influxQLIdent(ts.IDKey)
	if len(ids) == 0 {
		b.WriteString(" AND " + key + " != '0'")
		return b.String()
	}
	b.WriteString(" AND (")
	for i, id := range ids {
		if i > 0 {
			b.WriteString(" OR ")
		}
		b.WriteString(key + ` = ` + influxQLString(strconv.FormatInt(id, 10)))
	}
	b.WriteString(")")
	return b.String()
}

// readInfluxQLWindows adds the windows of the given policies (all for none) to set: the
// server sums packets and bytes and takes the max of active_flows per window, policy and
// instance (windows aligned to the epoch, like the grid's); the instances are summed here.
func (h *InfluxHistory) readInfluxQLWindows(ctx context.Context, ts TrafficSeries, set *seriesSet, from, to time.Time, ids []int64) error {
	statement := fmt.Sprintf(`SELECT SUM("packets"), SUM("bytes"), MAX("active_flows") FROM %s WHERE %s GROUP BY time(%ds), %s, "instance" fill(none)`,
		h.influxQL.from(ts.Measurement), influxQLWhere(ts, from, to, ids), int64(set.grid.every/time.Second), influxQLIdent(ts.IDKey))
	series, err := h.influxQL.run(ctx, statement)
	if err != nil {
		return err
	}
	return eachTrafficRow(series, func(tag any) (int64, error) { return recordSeriesID(ts, tag) }, ts.IDKey, set.add)
}

// eachTrafficRow calls fn for each row of an answer of (time, packets, bytes, active flows)
// per series, the series' id read from its tag idTag by idOf; an absent value is 0.
func eachTrafficRow(series []influxQLSeries, idOf func(tag any) (int64, error), idTag string, fn func(id int64, at time.Time, packets, bytes, flows int64)) error {
	for _, s := range series {
		id, err := idOf(s.Tags[idTag])
		if err != nil {
			return err
		}
		for _, row := range s.Values {
			if len(row) != 4 {
				return fmt.Errorf("influxql answer row with %d columns, want 4", len(row))
			}
			at, err := row[0].Int64()
			if err != nil {
				return fmt.Errorf("influxql answer time %q: %w", row[0], err)
			}
			fn(id, time.Unix(0, at), numberOrZero(row[1]), numberOrZero(row[2]), numberOrZero(row[3]))
		}
	}
	return nil
}

// numberOrZero is an integer column's value, 0 for null.
func numberOrZero(n json.Number) int64 {
	v, err := n.Int64()
	if err != nil {
		return 0
	}
	return v
}

// influxQLTotals returns each policy's bytes over [from, to).
func (h *InfluxHistory) influxQLTotals(ctx context.Context, from, to time.Time) ([]policyTotal, error) {
	statement := fmt.Sprintf(`SELECT SUM("bytes") FROM %s WHERE %s GROUP BY "policy_id"`,
		h.influxQL.from(MeasurementPolicyTraffic), influxQLWhere(PolicyTraffic, from, to, nil))
	series, err := h.influxQL.run(ctx, statement)
	if err != nil {
		return nil, err
	}
	totals := make([]policyTotal, 0, len(series))
	for _, s := range series {
		id, err := recordPolicyID(s.Tags["policy_id"])
		if err != nil {
			return nil, err
		}
		var bytes int64
		for _, row := range s.Values {
			if len(row) == 2 {
				bytes += numberOrZero(row[1])
			}
		}
		totals = append(totals, policyTotal{policyID: id, bytes: bytes})
	}
	return totals, nil
}

// influxQLIntervals returns the per-interval bytes of the given policies (all for none).
func (h *InfluxHistory) influxQLIntervals(ctx context.Context, ts TrafficSeries, ids []int64, from, to time.Time, interval time.Duration) (map[int64][]IntervalBytes, error) {
	statement := fmt.Sprintf(`SELECT SUM("bytes") FROM %s WHERE %s GROUP BY time(%ds), %s fill(none)`,
		h.influxQL.from(ts.Measurement), influxQLWhere(ts, from, to, ids), int64(interval/time.Second), influxQLIdent(ts.IDKey))
	series, err := h.influxQL.run(ctx, statement)
	if err != nil {
		return nil, err
	}
	out := make(map[int64][]IntervalBytes, len(series))
	for _, s := range series {
		id, err := recordSeriesID(ts, s.Tags[ts.IDKey])
		if err != nil {
			return nil, err
		}
		rows := make([]IntervalBytes, 0, len(s.Values))
		for _, row := range s.Values {
			if len(row) != 2 {
				return nil, fmt.Errorf("influxql answer row with %d columns, want 2", len(row))
			}
			at, err := row[0].Int64()
			if err != nil {
				return nil, fmt.Errorf("influxql answer time %q: %w", row[0], err)
			}
			rows = append(rows, IntervalBytes{Time: time.Unix(0, at).UTC(), Bytes: numberOrZero(row[1])})
		}
		out[id] = append(out[id], rows...)
	}
	return out, nil
}

// influxQLTotal returns the windows of all policies together.
func (h *InfluxHistory) influxQLTotal(ctx context.Context, grid windowGrid, from, to time.Time) ([]HistoryPoint, error) {
	series, err := h.influxQL.run(ctx, fmt.Sprintf(`SELECT SUM("packets"), SUM("bytes") FROM %s WHERE %s GROUP BY time(%ds) fill(none)`,
		h.influxQL.from(MeasurementPolicyTraffic), influxQLWhere(PolicyTraffic, from, to, nil), int64(grid.every/time.Second)))
	if err != nil {
		return nil, err
	}
	points := grid.points()
	for _, s := range series {
		for _, row := range s.Values {
			if len(row) != 3 {
				return nil, fmt.Errorf("influxql answer row with %d columns, want 3", len(row))
			}
			at, err := row[0].Int64()
			if err != nil {
				return nil, fmt.Errorf("influxql answer time %q: %w", row[0], err)
			}
			if i := grid.index(time.Unix(0, at)); i >= 0 {
				points[i].Packets += numberOrZero(row[1])
				points[i].Bytes += numberOrZero(row[2])
			}
		}
	}
	return points, nil
}

// influxQLTotalIntervals returns the per-interval bytes of all policies together.
func (h *InfluxHistory) influxQLTotalIntervals(ctx context.Context, from, to time.Time, interval time.Duration) ([]IntervalBytes, error) {
	series, err := h.influxQL.run(ctx, fmt.Sprintf(`SELECT SUM("bytes") FROM %s WHERE %s GROUP BY time(%ds) fill(none)`,
		h.influxQL.from(MeasurementPolicyTraffic), influxQLWhere(PolicyTraffic, from, to, nil), int64(interval/time.Second)))
	if err != nil {
		return nil, err
	}
	var intervals []IntervalBytes
	for _, s := range series {
		for _, row := range s.Values {
			if len(row) != 2 {
				return nil, fmt.Errorf("influxql answer row with %d columns, want 2", len(row))
			}
			at, err := row[0].Int64()
			if err != nil {
				return nil, fmt.Errorf("influxql answer time %q: %w", row[0], err)
			}
			intervals = append(intervals, IntervalBytes{Time: time.Unix(0, at).UTC(), Bytes: numberOrZero(row[1])})
		}
	}
	return intervals, nil
}
