package history_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	influxwrite "github.com/influxdata/influxdb-client-go/v2/api/write"
	"go.yaml.in/yaml/v3"
)

const dashboardFile = "../../deploy/grafana/dashboards/patronus.json"

// grafanaDashboard is the part of a dashboard JSON this test reads.
type grafanaDashboard struct {
	Templating struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaVariable struct {
	Name       string               `json:"name"`
	Type       string               `json:"type"`
	Query      any                  `json:"query"`
	Datasource grafanaDatasourceRef `json:"datasource"`
	IncludeAll bool                 `json:"includeAll"`
	AllValue   *string              `json:"allValue"`
}

type grafanaTarget struct {
	RefID      string               `json:"refId"`
	Query      string               `json:"query"`
	RawQuery   bool                 `json:"rawQuery"`
	Alias      string               `json:"alias"`
	Datasource grafanaDatasourceRef `json:"datasource"`
}

type grafanaPanel struct {
	Title           string          `json:"title"`
	Type            string          `json:"type"`
	Targets         []grafanaTarget `json:"targets"`
	Transformations []struct {
		ID      string `json:"id"`
		Options struct {
			ConfigRefID string `json:"configRefId"`
			Mappings    []struct {
				FieldName  string `json:"fieldName"`
				HandlerKey string `json:"handlerKey"`
			} `json:"mappings"`
		} `json:"options"`
	} `json:"transformations"`
	FieldConfig struct {
		Defaults struct {
			Unit   string `json:"unit"`
			Custom struct {
				Stacking struct {
					Mode string `json:"mode"`
				} `json:"stacking"`
				ThresholdsStyle struct {
					Mode string `json:"mode"`
				} `json:"thresholdsStyle"`
			} `json:"custom"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Panels []grafanaPanel `json:"panels"` // a row's panels
}

// grafanaDatasourceRef is how a dashboard names a datasource.
type grafanaDatasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func readDashboard(t *testing.T) (grafanaDashboard, []grafanaPanel) {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash grafanaDashboard
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("parse %s: %v", dashboardFile, err)
	}
	var panels []grafanaPanel
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			panels = append(panels, p)
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	return dash, panels
}

// grafanaRange is what Grafana substitutes into an InfluxQL query.
type grafanaRange struct {
	from, to time.Time
	interval time.Duration // the panel's interval, $__interval
	vars     map[string]string
}

// templateVar matches the dashboard variables and globals Grafana's frontend interpolates.
var templateVar = regexp.MustCompile(`\$\{([a-zA-Z_]\w*)(?::(\w+))?\}|\$([a-zA-Z_]\w*)`)

// grafanaInterval formats an interval as Grafana writes $__interval: 10s, 1m, 2h.
func grafanaInterval(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

// grafanaRegexEscape is Grafana's regex formatting of one variable value (kbn.regexEscape).
func grafanaRegexEscape(s string) string {
	return regexp.MustCompile(`[\\^$*+?.()|\[\]{}/]`).ReplaceAllString(s, `\$0`)
}

// regexOf is what ${v:regex} becomes for the selected values: the value for one, an
// alternation for several.
func regexOf(values ...string) string {
	escaped := make([]string, len(values))
	for i, v := range values {
		escaped[i] = grafanaRegexEscape(v)
	}
	if len(escaped) == 1 {
		return escaped[0]
	}
	return "(" + strings.Join(escaped, "|") + ")"
}

// interpolate does to query what Grafana does before sending it to InfluxDB: the range
// globals in epoch milliseconds, the interval, and the dashboard variables (given already
// formatted). An unknown variable fails.
func (r grafanaRange) interpolate(t *testing.T, query string) string {
	t.Helper()
	return templateVar.ReplaceAllStringFunc(query, func(m string) string {
		parts := templateVar.FindStringSubmatch(m)
		name := parts[1] + parts[3]
		switch name {
		case "__from":
			return strconv.FormatInt(r.from.UnixMilli(), 10)
		case "__to":
			return strconv.FormatInt(r.to.UnixMilli(), 10)
		case "__interval_ms":
			return strconv.FormatInt(r.interval.Milliseconds(), 10)
		case "__interval":
			return grafanaInterval(r.interval)
		}
		v, ok := r.vars[name]
		if !ok {
			t.Fatalf("query uses variable %q the test does not know: %s", m, query)
		}
		return v
	})
}

// sample is one row of a query result: its series' tag values, a time and a value.
type sample struct {
	label string
	at    time.Time
	value float64
}

func (s sample) String() string {
	return fmt.Sprintf("%s@%s=%g", s.label, s.at.Format("15:04:05"), s.value)
}

func sortSamples(s []sample) []sample {
	sort.Slice(s, func(i, j int) bool {
		if s[i].label != s[j].label {
			return s[i].label < s[j].label
		}
		return s[i].at.Before(s[j].at)
	})
	return s
}

func sameSamples(got, want []sample) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range want {
		if got[i].label != want[i].label || !got[i].at.Equal(want[i].at) ||
			math.Abs(got[i].value-want[i].value) > 1e-9*math.Max(1, math.Abs(want[i].value)) {
			return false
		}
	}
	return true
}

// runPanelQuery runs an InfluxQL query and returns its rows, each labelled with its series'
// tag values in key order, joined by "|"; the value is the first column after time.
func runPanelQuery(t *testing.T, serverURL, db, q string) []sample {
	t.Helper()
	var out []sample
	for _, s := range influxQL(t, serverURL, db, q) {
		keys := make([]string, 0, len(s.Tags))
		for k := range s.Tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		values := make([]string, len(keys))
		for i, k := range keys {
			values[i] = s.Tags[k]
		}
		label := strings.Join(values, "|")
		for _, row := range s.Values {
			if len(row) < 2 || s.Columns[0] != "time" {
				t.Fatalf("query %s: row %v of columns %v", q, row, s.Columns)
			}
			ns, err := row[0].(json.Number).Int64()
			if err != nil {
				t.Fatalf("query %s: time %v", q, row[0])
			}
			if row[1] == nil {
				t.Fatalf("query %s: null value in %v (every panel query fills or drops empty windows)", q, row)
			}
			v, err := row[1].(json.Number).Float64()
			if err != nil {
				t.Fatalf("query %s: value %v", q, row[1])
			}
			out = append(out, sample{label: label, at: time.Unix(0, ns).UTC(), value: v})
		}
	}
	return sortSamples(out)
}

// variableValues runs a variable's query as Grafana does and returns the values it offers:
// the second column of each row (the tag value of SHOW TAG VALUES, the first column after
// time of a SELECT).
func variableValues(t *testing.T, serverURL, db, q string) []string {
	t.Helper()
	var out []string
	for _, s := range influxQL(t, serverURL, db, q) {
		for _, row := range s.Values {
			switch v := row[1].(type) {
			case string:
				out = append(out, v)
			case json.Number:
				out = append(out, v.String())
			default:
				t.Fatalf("variable query %s: row %v", q, row)
			}
		}
	}
	return out
}

// tpoint is one point of the dashboard test's data.
type tpoint struct {
	measurement string
	tags        map[string]string
	fields      map[string]any // int64 or float64
	at          time.Time
}

func (p tpoint) num(field string) (float64, bool) {
	switch v := p.fields[field].(type) {
	case int64:
		return float64(v), true
	case float64:
		return v, true
	}
	return 0, false
}

// Names of the dashboard test's policies and paths, with what line protocol and Grafana's
// regex formatting must escape.
var (
	dashPolicies = map[string]string{"0": "unclassified", "1": "web, tls=443", "2": "voip ü", "3": "backup (nightly)"}
	dashPaths    = map[string]string{"1": "paris-berlin fiber", "2": "paris/berlin lte"}
)

// dashboardData is the traffic the dashboard test records, per the measurements the
// flusher writes: two instances flushing every 10 s (b 5 s after a) for ten minutes,
// policies with different patterns (one with bursts, one on one instance only),
// unclassified traffic as policy 0, traffic on two paths, path metrics every 30 s, and
// points just outside the range on both sides.
func dashboardData(from time.Time) []tpoint {
	var out []tpoint
	policyPoint := func(id, instance string, at time.Time, packets, bytes, flows int64) {
		out = append(out, tpoint{"policy_traffic", map[string]string{"policy_id": id, "policy_name": dashPolicies[id], "instance": instance},
			map[string]any{"packets": packets, "bytes": bytes, "active_flows": flows}, at})
	}
	pathPoint := func(id, instance string, at time.Time, packets, bytes int64) {
		out = append(out, tpoint{"path_traffic", map[string]string{"path_id": id, "path_name": dashPaths[id], "instance": instance},
			map[string]any{"packets": packets, "bytes": bytes}, at})
	}
	for k := range 60 {
		n := int64(k + 1)
		for _, inst := range []struct {
			name   string
			offset time.Duration
		}{{"a", 0}, {"b", 5 * time.Second}} {
			at := from.Add(time.Duration(k)*10*time.Second + inst.offset)
			policyPoint("1", inst.name, at, 10*n, 1000*n+7, n%7+1)
			pathPoint("1", inst.name, at, 20*n, 2000*n+11)
			if inst.name == "a" {
				if k%2 == 0 {
					policyPoint("2", "a", at, 3*n, 333*n, n%3+2)
				}
				if k%3 == 0 {
					policyPoint("0", "a", at, n, 64*n, 1)
				}
			} else {
				bytes := 50*n + 1
				if k%20 == 7 {
					bytes = 400_000 + n // bursts
				}
				policyPoint("3", "b", at, n, bytes, 5)
				pathPoint("2", "b", at, n, 500*(n%5+1))
			}
		}
		if k%3 == 0 {
			at := from.Add(time.Duration(k) * 10 * time.Second)
			for id, base := range map[string]float64{"1": 20, "2": 45} {
				out = append(out, tpoint{"path_metrics", map[string]string{"path_id": id, "path_name": dashPaths[id]}, map[string]any{
					"latency_ms": base + float64(k%4), "jitter_ms": 1 + float64(k%3)/2, "packet_loss_pct": float64(k%5) / 10,
					"bandwidth_mbps": 100.0, "mtu": int64(1500), "score": int64(90 - k%4),
				}, at})
			}
		}
	}
	end := from.Add(10 * time.Minute)
	policyPoint("1", "a", end, 1e6, 1e9, 1e3)
	policyPoint("2", "b", from.Add(-time.Nanosecond), 1e6, 1e9, 1e3)
	policyPoint("0", "b", end, 1e6, 1e9, 1e3)
	pathPoint("1", "a", end, 1e6, 1e9)
	out = append(out, tpoint{"path_metrics", map[string]string{"path_id": "1", "path_name": dashPaths["1"]},
		map[string]any{"latency_ms": 999.0, "jitter_ms": 999.0, "packet_loss_pct": 99.0, "bandwidth_mbps": 1.0, "mtu": int64(1), "score": int64(1)},
		from.Add(-time.Second)})
	return out
}

// bucketOf is the start of the epoch-aligned window of width d holding t.
func bucketOf(t time.Time, d time.Duration) time.Time {
	ns := t.UnixNano()
	return time.Unix(0, ns-((ns%int64(d))+int64(d))%int64(d)).UTC()
}

// buckets are the windows of width d that GROUP BY time(d) fill(...) answers over r.
func (r grafanaRange) buckets(d time.Duration) []time.Time {
	var out []time.Time
	for b := bucketOf(r.from, d); b.Before(r.to); b = b.Add(d) {
		out = append(out, b)
	}
	return out
}

// grouped sums (or with agg, reduces) a field of the points in r that keep accepts, by
// the tags named and window d. With fill, every window of a series seen gets a value.
type grouping struct {
	measurement string
	keep        func(tpoint) bool
	field       string
	tags        []string
	window      time.Duration
	agg         func([]float64) float64 // sum when nil
	fill        bool
}

func (g grouping) run(r grafanaRange, data []tpoint) map[string]map[time.Time]float64 {
	values := map[string]map[time.Time][]float64{}
	for _, p := range data {
		v, ok := p.num(g.field)
		if p.measurement != g.measurement || !ok || p.at.Before(r.from) || !p.at.Before(r.to) || (g.keep != nil && !g.keep(p)) {
			continue
		}
		tags := slices.Clone(g.tags)
		sort.Strings(tags)
		labels := make([]string, len(tags))
		for i, k := range tags {
			labels[i] = p.tags[k]
		}
		label := strings.Join(labels, "|")
		if values[label] == nil {
			values[label] = map[time.Time][]float64{}
		}
		b := bucketOf(p.at, g.window)
		values[label][b] = append(values[label][b], v)
	}
	agg := g.agg
	if agg == nil {
		agg = func(vs []float64) (s float64) {
			for _, v := range vs {
				s += v
			}
			return s
		}
	}
	out := map[string]map[time.Time]float64{}
	for label, byBucket := range values {
		out[label] = map[time.Time]float64{}
		if g.fill {
			for _, b := range r.buckets(g.window) {
				out[label][b] = 0
			}
		}
		for b, vs := range byBucket {
			out[label][b] = agg(vs)
		}
	}
	return out
}

func samplesOf(m map[string]map[time.Time]float64, scale float64) []sample {
	var out []sample
	for label, byBucket := range m {
		for at, v := range byBucket {
			out = append(out, sample{label, at, v * scale})
		}
	}
	return sortSamples(out)
}

func maxOf(vs []float64) float64 { return slices.Max(vs) }

func meanOf(vs []float64) float64 {
	s := 0.0
	for _, v := range vs {
		s += v
	}
	return s / float64(len(vs))
}

// nearestRank is InfluxQL's percentile(): the value at rank floor(n*p/100 + 0.5) of the
// sorted values.
func nearestRank(vs []float64, p float64) float64 {
	sorted := slices.Sorted(slices.Values(vs))
	i := int(math.Floor(float64(len(sorted))*p/100+0.5)) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// topPolicies are the n policy ids (unclassified included) with most bytes in r.
func topPolicies(r grafanaRange, data []tpoint, n int) []string {
	totals := grouping{measurement: "policy_traffic", field: "bytes", tags: []string{"policy_id"}, window: 100 * 365 * 24 * time.Hour}.run(r, data)
	var ids []string
	sums := map[string]float64{}
	for id, byBucket := range totals {
		ids = append(ids, id)
		for _, v := range byBucket {
			sums[id] += v
		}
	}
	sort.Slice(ids, func(i, j int) bool { return sums[ids[i]] > sums[ids[j]] })
	return ids[:min(n, len(ids))]
}

// expectPanels computes, from the recorded points, what each panel's target must answer
// over r for the selected policy names and the top policy ids; keys are "title/refId".
func expectPanels(r grafanaRange, data []tpoint, selected map[string]bool, top []string) map[string][]sample {
	iv := r.interval
	perSecond := 1000 / float64(iv.Milliseconds())
	chosen := func(p tpoint) bool { return selected[p.tags["policy_name"]] }
	inTop := func(p tpoint) bool { return slices.Contains(top, p.tags["policy_id"]) }
	unclassified := func(p tpoint) bool { return p.tags["policy_id"] == "0" }
	policy := []string{"policy_id", "policy_name"}
	path := []string{"path_id", "path_name"}
	traffic := func(field string, keep func(tpoint) bool, tags []string) grouping {
		return grouping{measurement: "policy_traffic", keep: keep, field: field, tags: tags, window: iv, fill: true}
	}
	// The 95th percentile of the per-10 s rates of the selected policies over the range.
	perFlush := traffic("bytes", chosen, nil)
	perFlush.window = 10 * time.Second
	var rates []float64
	for _, v := range perFlush.run(r, data)[""] {
		rates = append(rates, v*8/10)
	}
	// Active flows: each instance's largest gauge in the window, summed over instances.
	flowMax := grouping{measurement: "policy_traffic", keep: chosen, field: "active_flows", tags: []string{"policy_id", "policy_name", "instance"}, window: iv, agg: maxOf}.run(r, data)
	flows := map[string]map[time.Time]float64{}
	for label, byBucket := range flowMax {
		policyLabel := label[strings.Index(label, "|")+1:] // instance sorts first: a|1|name
		if flows[policyLabel] == nil {
			flows[policyLabel] = map[time.Time]float64{}
		}
		for b, v := range byBucket {
			flows[policyLabel][b] += v
		}
	}
	// Points per flush: the most points an instance wrote with one timestamp in the window.
	perSecondCounts := grouping{measurement: "policy_traffic", field: "packets", tags: []string{"instance"}, window: time.Second, agg: func(vs []float64) float64 { return float64(len(vs)) }}.run(r, data)
	flushMax := map[string]map[time.Time]float64{}
	for label, byBucket := range perSecondCounts {
		flushMax[label] = map[time.Time]float64{}
		for b, v := range byBucket {
			w := bucketOf(b, iv)
			flushMax[label][w] = math.Max(flushMax[label][w], v)
		}
	}
	pathMetric := func(field string) []sample {
		return samplesOf(grouping{measurement: "path_metrics", field: field, tags: path, window: iv, agg: meanOf}.run(r, data), 1)
	}
	return map[string][]sample{
		"Bits/s per policy/A":                                   samplesOf(traffic("bytes", chosen, policy).run(r, data), 8*perSecond),
		"Packets/s per policy/A":                                samplesOf(traffic("packets", chosen, policy).run(r, data), perSecond),
		"Total bits/s and 95th percentile/A":                    samplesOf(traffic("bytes", chosen, nil).run(r, data), 8*perSecond),
		"Total bits/s and 95th percentile/B":                    {{value: nearestRank(rates, 95)}},
		"Top policies by bytes, with other (bits/s, stacked)/A": samplesOf(traffic("bytes", inTop, policy).run(r, data), 8*perSecond),
		"Top policies by bytes, with other (bits/s, stacked)/B": samplesOf(traffic("bytes", func(p tpoint) bool { return !inTop(p) }, nil).run(r, data), 8*perSecond),
		"Unclassified traffic/A":                                samplesOf(traffic("bytes", unclassified, nil).run(r, data), 8*perSecond),
		"Unclassified traffic/B":                                samplesOf(traffic("packets", unclassified, nil).run(r, data), perSecond),
		"Active flows per policy/A":                             samplesOf(flows, 1),
		"Path utilization (bits/s)/A":                           samplesOf(grouping{measurement: "path_traffic", field: "bytes", tags: path, window: iv, fill: true}.run(r, data), 8*perSecond),
		"Path latency (ms)/A":                                   pathMetric("latency_ms"),
		"Path packet loss (%)/A":                                pathMetric("packet_loss_pct"),
		"Path jitter (ms)/A":                                    pathMetric("jitter_ms"),
		"Path score/A":                                          pathMetric("score"),
		"Points written per window/A":                           samplesOf(grouping{measurement: "policy_traffic", field: "packets", tags: []string{"instance"}, window: iv, agg: func(vs []float64) float64 { return float64(len(vs)) }}.run(r, data), 1),
		"Points per flush/A":                                    samplesOf(flushMax, 1),
	}
}

// writeDashboardData writes the points to the database as the flusher would.
func writeDashboardData(t *testing.T, serverURL, bucket string, data []tpoint) {
	t.Helper()
	client := influxdb2.NewClientWithOptions(serverURL, influxToken, influxdb2.DefaultOptions().SetPrecision(time.Nanosecond))
	defer client.Close()
	points := make([]*influxwrite.Point, len(data))
	for i, p := range data {
		points[i] = influxwrite.NewPoint(p.measurement, p.tags, p.fields, p.at)
	}
	if err := client.WriteAPIBlocking("patronus", bucket).WritePoint(context.Background(), points...); err != nil {
		t.Fatal(err)
	}
}

// TestGrafanaDashboardQueries runs every InfluxQL query of the dashboard, as Grafana would
// send it, against the real InfluxDB holding known traffic, and checks the numbers each
// panel shows: rates, the 95th percentile, top-N with other, unclassified traffic, active
// flows, path utilization and path metrics, and the variables' values.
func TestGrafanaDashboardQueries(t *testing.T) {
	dash, panels := readDashboard(t)
	serverURL, bucket := influxDatabase(t)
	db, _, _ := strings.Cut(bucket, "/")
	from := base
	data := dashboardData(from)
	writeDashboardData(t, serverURL, bucket, data)

	vars := map[string]grafanaVariable{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = v
	}
	for _, name := range []string{"policy", "top_n", "top"} {
		if _, ok := vars[name]; !ok {
			t.Fatalf("dashboard has no variable %q", name)
		}
	}
	policyQuery, _ := vars["policy"].Query.(string)
	topQuery, _ := vars["top"].Query.(string)
	if vars["policy"].AllValue == nil || *vars["policy"].AllValue != ".*" || !vars["top"].IncludeAll || vars["top"].AllValue != nil {
		t.Fatal("variable policy must select All as .*, and top must include All as the alternation of its values (no allValue)")
	}
	names := variableValues(t, serverURL, db, policyQuery)
	sort.Strings(names)
	if want := []string{"backup (nightly)", "unclassified", "voip ü", "web, tls=443"}; !slices.Equal(names, want) {
		t.Errorf("variable policy offers %q, want %q", names, want)
	}

	// What Grafana's ${policy:regex} becomes: the allValue for All, the escaped value for
	// one, an alternation for several.
	selections := []struct {
		regex    string
		selected map[string]bool
	}{
		{".*", map[string]bool{"unclassified": true, "web, tls=443": true, "voip ü": true, "backup (nightly)": true}},
		{regexOf("voip ü"), map[string]bool{"voip ü": true}},
		{regexOf("web, tls=443", "backup (nightly)"), map[string]bool{"web, tls=443": true, "backup (nightly)": true}},
	}
	// Three ranges and intervals: the aligned ten minutes at 1m, a range that starts and
	// ends inside windows at 2m, and five minutes at the datasource's minimum interval (10s,
	// the flush interval), where every window holds one flush of each instance.
	ranges := []grafanaRange{
		{from: from, to: from.Add(10 * time.Minute), interval: time.Minute},
		{from: from.Add(90 * time.Second), to: from.Add(9*time.Minute + 45*time.Second), interval: 2 * time.Minute},
		{from: from.Add(time.Minute), to: from.Add(6 * time.Minute), interval: 10 * time.Second},
	}
	const topN = 2
	checked := map[string]bool{}
	for _, r := range ranges {
		r.vars = map[string]string{"top_n": strconv.Itoa(topN)}
		top := variableValues(t, serverURL, db, r.interpolate(t, topQuery))
		if want := topPolicies(r, data, topN); !sameSet(top, want) {
			t.Errorf("variable top over %s..%s: %v, want %v", r.from.Format("15:04:05"), r.to.Format("15:04:05"), top, want)
		}
		r.vars["top"] = regexOf(top...)
		for _, sel := range selections {
			r.vars["policy"] = sel.regex
			want := expectPanels(r, data, sel.selected, top)
			for _, p := range panels {
				for _, target := range p.Targets {
					key := p.Title + "/" + target.RefID
					w, ok := want[key]
					if !ok {
						t.Fatalf("panel %q target %s has no expected values in this test: add them", p.Title, target.RefID)
					}
					if len(w) == 0 {
						t.Fatalf("panel %q target %s: the test data gives it nothing to show", p.Title, target.RefID)
					}
					got := runPanelQuery(t, serverURL, db, r.interpolate(t, target.Query))
					if strings.Contains(target.Query, "percentile(") && len(got) == 1 {
						got[0].at = time.Time{} // one value over the range, drawn as a line
					}
					if !sameSamples(got, w) {
						t.Errorf("panel %q target %s (policy %s, %s..%s every %s):\n got  %v\n want %v", p.Title, target.RefID, sel.regex,
							r.from.Format("15:04:05"), r.to.Format("15:04:05"), grafanaInterval(r.interval), got, w)
					}
					checked[key] = true
				}
			}
		}
	}
	if len(checked) < 16 {
		t.Fatalf("checked %d panel queries, want at least 16", len(checked))
	}
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// TestGrafanaDashboardShape checks what the query results alone cannot show: series are
// labelled with policy and path names, rates have rate units, the 95th percentile is drawn
// as a line, top-N with other is stacked, and every query is bounded by the time range.
func TestGrafanaDashboardShape(t *testing.T) {
	_, panels := readDashboard(t)
	byTitle := map[string]grafanaPanel{}
	for _, p := range panels {
		byTitle[p.Title] = p
		for _, target := range p.Targets {
			q := target.Query
			if !target.RawQuery {
				t.Errorf("panel %q target %s is not a raw InfluxQL query", p.Title, target.RefID)
			}
			if strings.Count(q, "time >= ${__from}ms AND time < ${__to}ms") != strings.Count(q, "FROM") {
				t.Errorf("panel %q target %s: not every SELECT is bounded by the range [from, to): %s", p.Title, target.RefID, q)
			}
			for _, tag := range []string{"policy_name", "path_name", "instance"} {
				if strings.Contains(lastGroupBy(q), `"`+tag+`"`) && target.Alias != "$tag_"+tag {
					t.Errorf("panel %q target %s groups by %s but is labelled %q, not $tag_%s", p.Title, target.RefID, tag, target.Alias, tag)
				}
			}
			if strings.Contains(q, `sum("bytes")`) && !strings.Contains(q, "* 8") {
				t.Errorf("panel %q target %s sums bytes without turning them into bits per second", p.Title, target.RefID)
			}
		}
		if unit := p.FieldConfig.Defaults.Unit; len(p.Targets) > 0 && strings.Contains(p.Targets[0].Query, `sum("bytes")`) && unit != "bps" {
			t.Errorf("panel %q shows bytes in unit %q, want bps", p.Title, unit)
		}
	}
	p95 := byTitle["Total bits/s and 95th percentile"]
	if len(p95.Transformations) != 1 || p95.Transformations[0].ID != "configFromData" || p95.Transformations[0].Options.ConfigRefID != "B" ||
		len(p95.Transformations[0].Options.Mappings) != 1 || p95.Transformations[0].Options.Mappings[0].HandlerKey != "threshold1" ||
		p95.FieldConfig.Defaults.Custom.ThresholdsStyle.Mode == "" || p95.FieldConfig.Defaults.Custom.ThresholdsStyle.Mode == "off" {
		t.Error("the 95th percentile (target B) is not drawn as a threshold line")
	}
	if byTitle["Top policies by bytes, with other (bits/s, stacked)"].FieldConfig.Defaults.Custom.Stacking.Mode != "normal" {
		t.Error("top-N with other is not stacked")
	}
	for _, title := range []string{"Path utilization (bits/s)", "Path latency (ms)", "Path packet loss (%)", "Unclassified traffic", "Packets/s per policy"} {
		if _, ok := byTitle[title]; !ok {
			t.Errorf("no panel %q", title)
		}
	}
}

// lastGroupBy is the GROUP BY clause of the outermost query.
func lastGroupBy(q string) string {
	i := strings.LastIndex(q, "GROUP BY")
	if i < 0 {
		return ""
	}
	return q[i:]
}

const datasourceFile = "../../deploy/grafana/provisioning/datasources/influxdb.yaml"

// TestGrafanaDashboardUsesProvisionedDatasource checks that the dashboard's variables and
// every query name the datasource deploy/grafana provisions, and that it sends InfluxQL to
// the database Patronus writes to: TestGrafanaDashboardQueries shows what the queries
// return, which is what the dashboard shows only if Grafana sends them there, as InfluxQL.
func TestGrafanaDashboardUsesProvisionedDatasource(t *testing.T) {
	raw, err := os.ReadFile(datasourceFile)
	if err != nil {
		t.Fatal(err)
	}
	var prov struct {
		Datasources []struct {
			UID      string `yaml:"uid"`
			Type     string `yaml:"type"`
			URL      string `yaml:"url"`
			JSONData struct {
				Version         string `yaml:"version"`
				DBName          string `yaml:"dbName"`
				TimeInterval    string `yaml:"timeInterval"`
				HTTPHeaderName1 string `yaml:"httpHeaderName1"`
			} `yaml:"jsonData"`
			SecureJSONData struct {
				HTTPHeaderValue1 string `yaml:"httpHeaderValue1"`
			} `yaml:"secureJsonData"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(raw, &prov); err != nil {
		t.Fatalf("parse %s: %v", datasourceFile, err)
	}
	if len(prov.Datasources) != 1 {
		t.Fatalf("%s provisions %d datasources, want 1", datasourceFile, len(prov.Datasources))
	}
	ds := prov.Datasources[0]
	if ds.UID == "" || ds.Type != "influxdb" || ds.JSONData.Version != "InfluxQL" || ds.URL == "" || ds.JSONData.DBName == "" ||
		ds.JSONData.HTTPHeaderName1 != "Authorization" || !strings.HasPrefix(ds.SecureJSONData.HTTPHeaderValue1, "Token ") {
		t.Errorf("datasource %+v: want a uid, type influxdb, version InfluxQL, a url, dbName and an Authorization: Token header", ds)
	}
	// Windows shorter than a flush would show every other window empty.
	if d, err := time.ParseDuration(ds.JSONData.TimeInterval); err != nil || d < 10*time.Second {
		t.Errorf("timeInterval %q: want at least the default flush interval, 10s", ds.JSONData.TimeInterval)
	}

	dash, panels := readDashboard(t)
	for _, v := range dash.Templating.List {
		if v.Type == "query" && v.Datasource.UID != ds.UID {
			t.Errorf("variable %q uses datasource %q, want the provisioned %q", v.Name, v.Datasource.UID, ds.UID)
		}
	}
	for _, p := range panels {
		for _, target := range p.Targets {
			if target.Datasource.UID != ds.UID {
				t.Errorf("panel %q target %s uses datasource %q, want the provisioned %q", p.Title, target.RefID, target.Datasource.UID, ds.UID)
			}
		}
	}
}
