package storage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"go.yaml.in/yaml/v3"

	"github.com/patronus-sdwan/patronus/storage"
)

const dashboardFile = "../deploy/grafana/dashboards/patronus.json"

// grafanaDashboard is the part of a dashboard JSON this test reads.
type grafanaDashboard struct {
	Templating struct {
		List []struct {
			Name       string               `json:"name"`
			Query      any                  `json:"query"`
			Datasource grafanaDatasourceRef `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaPanel struct {
	Title   string `json:"title"`
	Type    string `json:"type"`
	Targets []struct {
		RefID      string               `json:"refId"`
		Query      string               `json:"query"`
		Datasource grafanaDatasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a row's panels
}

// grafanaDatasourceRef is how a dashboard names a datasource.
type grafanaDatasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// grafanaRange is what Grafana substitutes into a Flux query.
type grafanaRange struct {
	from, to time.Time
	interval time.Duration // the panel's interval, v.windowPeriod
	bucket   string        // the datasource's default bucket
	vars     map[string]string
}

var (
	// Grafana's backend (pkg/tsdb/influxdb/flux/macros.go) replaces every "word.word" whose
	// second word is one of its macros, whatever the first word is.
	fluxMacro = regexp.MustCompile(`(?m)([a-zA-Z]+)\.([a-zA-Z]+)`)
	// Dashboard variables, interpolated by Grafana's frontend before the query is sent.
	templateVar = regexp.MustCompile(`\$\{([a-zA-Z_]\w*)(?::(\w+))?\}|\$([a-zA-Z_]\w*)`)
)

// interpolate does to query what Grafana does before sending it to InfluxDB: dashboard
// variables, then the Flux macros (time range as RFC 3339, window period as a Go duration,
// bucket and organisation as quoted strings), then $__interval. An unknown variable fails.
func (r grafanaRange) interpolate(t *testing.T, query string) string {
	t.Helper()
	query = templateVar.ReplaceAllStringFunc(query, func(m string) string {
		parts := templateVar.FindStringSubmatch(m)
		name := parts[1] + parts[3]
		if strings.HasPrefix(name, "__interval") {
			return m // a Grafana global, replaced below
		}
		v, ok := r.vars[name]
		if !ok {
			t.Fatalf("query uses dashboard variable %q the test does not know: %s", m, query)
		}
		return v
	})
	for _, m := range fluxMacro.FindAllStringSubmatch(query, -1) {
		switch m[2] {
		case "timeRangeStart":
			query = strings.ReplaceAll(query, m[0], r.from.UTC().Format(time.RFC3339Nano))
		case "timeRangeStop":
			query = strings.ReplaceAll(query, m[0], r.to.UTC().Format(time.RFC3339Nano))
		case "windowPeriod":
			query = strings.ReplaceAll(query, m[0], r.interval.String())
		case "bucket", "defaultBucket":
			query = strings.ReplaceAll(query, m[0], `"`+r.bucket+`"`)
		case "organization":
			query = strings.ReplaceAll(query, m[0], `"patronus"`)
		}
	}
	query = strings.ReplaceAll(query, "$__interval_ms", strconv.FormatInt(r.interval.Milliseconds(), 10))
	return strings.ReplaceAll(query, "$__interval", r.interval.String())
}

// sample is one row of a query result: a series label, a time (zero when the row has
// none) and a value.
type sample struct {
	label string
	at    time.Time
	value float64
}

func (s sample) String() string {
	at := "-"
	if !s.at.IsZero() {
		at = s.at.Format("15:04:05")
	}
	return fmt.Sprintf("%s@%s=%g", s.label, at, s.value)
}

// dashboardData is the traffic the dashboard test records: two instances flushing every 10 s
// (b 5 s after a) for ten minutes, policies 1-3 with different patterns, plus points just
// outside the range on both sides.
func dashboardData(from time.Time) []storage.PolicyDelta {
	var out []storage.PolicyDelta
	for k := range 60 {
		for _, inst := range []struct {
			name   string
			offset time.Duration
		}{{"a", 0}, {"b", 5 * time.Second}} {
			at := from.Add(time.Duration(k)*10*time.Second + inst.offset)
			add := func(policy int64, packets, bytes, flows int64) {
				out = append(out, storage.PolicyDelta{PolicyID: policy, Instance: inst.name, Time: at, Packets: packets, Bytes: bytes, ActiveFlows: flows})
			}
			n := int64(k + 1)
			add(1, 10*n, 1000*n+7, n%7+1)
			if inst.name == "a" && k%2 == 0 {
				add(2, 3*n, 333*n, n%3+2)
			}
			if inst.name == "b" {
				add(3, n, 50*n+1, 5)
			}
		}
	}
	out = append(out,
		storage.PolicyDelta{PolicyID: 1, Instance: "a", Time: from.Add(10 * time.Minute), Packets: 1e6, Bytes: 1e9, ActiveFlows: 1e3},
		storage.PolicyDelta{PolicyID: 2, Instance: "b", Time: from.Add(-time.Nanosecond), Packets: 1e6, Bytes: 1e9, ActiveFlows: 1e3},
	)
	return out
}

// expectPanels computes, from the recorded points, what each panel must show for the
// selected policies over r.
func expectPanels(r grafanaRange, data []storage.PolicyDelta, selected map[int64]bool) map[string][]sample {
	var in []storage.PolicyDelta
	for _, d := range data {
		if !d.Time.Before(r.from) && d.Time.Before(r.to) {
			in = append(in, d)
		}
	}
	// aggregateWindow's time is the window's stop, clipped to the range.
	windowEnd := func(t time.Time) time.Time {
		end := t.Add(-time.Duration(t.UnixNano() % int64(r.interval))).Add(r.interval)
		if end.After(r.to) {
			return r.to
		}
		return end
	}
	secs := r.interval.Seconds()
	type key struct {
		label string
		at    time.Time
	}
	bytes, packets := map[key]float64{}, map[key]float64{}
	flowMax := map[key]map[string]float64{}
	total, perPolicy := 0.0, map[string]float64{}
	points := map[key]float64{}
	perFlush := map[key]map[time.Time]float64{}
	last := map[string]time.Time{}
	for _, d := range in {
		policy := strconv.FormatInt(d.PolicyID, 10)
		w := windowEnd(d.Time)
		points[key{d.Instance, w}]++
		if perFlush[key{d.Instance, w}] == nil {
			perFlush[key{d.Instance, w}] = map[time.Time]float64{}
		}
		perFlush[key{d.Instance, w}][d.Time]++
		if d.Time.After(last[d.Instance]) {
			last[d.Instance] = d.Time
		}
		if !selected[d.PolicyID] {
			continue
		}
		k := key{policy, w}
		bytes[k] += float64(d.Bytes)
		packets[k] += float64(d.Packets)
		if flowMax[k] == nil {
			flowMax[k] = map[string]float64{}
		}
		flowMax[k][d.Instance] = math.Max(flowMax[k][d.Instance], float64(d.ActiveFlows))
		total += float64(d.Bytes)
		perPolicy[policy] += float64(d.Bytes)
	}
	series := func(m map[key]float64, scale float64) []sample {
		var out []sample
		for k, v := range m {
			out = append(out, sample{k.label, k.at, v / scale})
		}
		return sortSamples(out)
	}
	flows := map[key]float64{}
	for k, byInstance := range flowMax {
		for _, v := range byInstance {
			flows[k] += v
		}
	}
	maxFlush := map[key]float64{}
	for k, byFlush := range perFlush {
		for _, v := range byFlush {
			maxFlush[k] = math.Max(maxFlush[k], v)
		}
	}
	var top []sample
	for policy, v := range perPolicy {
		top = append(top, sample{label: policy, value: v})
	}
	sort.Slice(top, func(i, j int) bool { return top[i].value > top[j].value })
	if len(top) > 10 {
		top = top[:10]
	}
	var since []sample
	for instance, at := range last {
		since = append(since, sample{label: instance, value: r.to.Sub(at).Seconds()})
	}
	return map[string][]sample{
		"Bytes/s per policy":        series(bytes, secs),
		"Packets/s per policy":      series(packets, secs),
		"Active flows per policy":   series(flows, 1),
		"Top policies by bytes":     top, // in the panel's order
		"Bytes in range":            {{value: total}},
		"Points written per window": series(points, 1),
		"Points per flush":          series(maxFlush, 1),
		"Seconds since last flush":  sortSamples(since),
	}
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

// runFlux runs a query and returns its rows, labelled by policy_id or instance.
func runFlux(t *testing.T, client influxdb2.Client, flux string) []sample {
	t.Helper()
	res, err := client.QueryAPI("patronus").Query(context.Background(), flux)
	if err != nil {
		t.Fatalf("query failed: %v\n%s", err, flux)
	}
	defer res.Close()
	var out []sample
	for res.Next() {
		rec := res.Record()
		s := sample{at: rec.Time()}
		for _, col := range []string{"policy_id", "instance"} {
			if v, ok := rec.ValueByKey(col).(string); ok {
				s.label = v
			}
		}
		switch v := rec.Value().(type) {
		case int64:
			s.value = float64(v)
		case uint64:
			s.value = float64(v)
		case float64:
			s.value = v
		case string:
			s.label = v // a variable query's values
		default:
			t.Fatalf("row %v has value %v (%T)", rec, v, v)
		}
		out = append(out, s)
	}
	if err := res.Err(); err != nil {
		t.Fatalf("query failed: %v\n%s", err, flux)
	}
	return out
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

// TestGrafanaDashboardQueries runs every Flux query of the dashboard, as Grafana would send
// it, against the real InfluxDB holding known traffic, and checks the numbers each panel
// shows; also the policy variable's query.
func TestGrafanaDashboardQueries(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash grafanaDashboard
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("parse %s: %v", dashboardFile, err)
	}

	serverURL, bucket := influxDatabase(t)
	h := newInflux(t, storage.InfluxConfig{URL: serverURL, Token: influxToken, Org: "patronus", Bucket: bucket})
	from := base
	data := dashboardData(from)
	if err := h.WriteDeltas(context.Background(), data); err != nil {
		t.Fatal(err)
	}
	client := influxdb2.NewClient(serverURL, influxToken)
	t.Cleanup(client.Close)

	for _, v := range dash.Templating.List {
		query, _ := v.Query.(string)
		if v.Datasource.Type != "influxdb" || query == "" {
			t.Fatalf("variable %q is not a Flux query on the InfluxDB datasource", v.Name)
		}
		r := grafanaRange{from: from, to: from.Add(10 * time.Minute), interval: time.Minute, bucket: bucket}
		got := sortSamples(runFlux(t, client, r.interpolate(t, query)))
		want := []sample{{label: "1"}, {label: "2"}, {label: "3"}}
		if !sameSamples(got, want) {
			t.Errorf("variable %q: got %v, want %v", v.Name, got, want)
		}
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

	// What Grafana's ${policy:regex} becomes: the variable's allValue for All, the value
	// itself for one policy, an alternation for several.
	selections := map[string]map[int64]bool{
		".*":    {1: true, 2: true, 3: true}, // All
		"2":     {2: true},
		"(1|3)": {1: true, 3: true},
	}
	// Three ranges and intervals: the aligned ten minutes at 1m, a range that starts and
	// ends inside windows at 2m, and five minutes at the datasource's minimum interval (10s,
	// the flush interval), where every window holds one flush of each instance.
	ranges := []grafanaRange{
		{from: from, to: from.Add(10 * time.Minute), interval: time.Minute},
		{from: from.Add(90 * time.Second), to: from.Add(9*time.Minute + 45*time.Second), interval: 2 * time.Minute},
		{from: from.Add(time.Minute), to: from.Add(6 * time.Minute), interval: 10 * time.Second},
	}
	queries := 0
	for _, p := range panels {
		for _, target := range p.Targets {
			queries++
			if target.Datasource.Type != "influxdb" {
				t.Errorf("panel %q target %s is not on the InfluxDB datasource", p.Title, target.RefID)
				continue
			}
			for regex, selected := range selections {
				for _, r := range ranges {
					r.bucket, r.vars = bucket, map[string]string{"policy": regex}
					want, ok := expectPanels(r, data, selected)[p.Title]
					if !ok {
						t.Fatalf("panel %q has no expected values in this test: add them", p.Title)
					}
					got := runFlux(t, client, r.interpolate(t, target.Query))
					if p.Title != "Top policies by bytes" { // the panel's order is the query's
						got = sortSamples(got)
					}
					if len(want) == 0 {
						t.Fatalf("panel %q: the test data gives it nothing to show", p.Title)
					}
					if !sameSamples(got, want) {
						t.Errorf("panel %q (policy %s, %s..%s every %s):\n got  %v\n want %v", p.Title, regex,
							r.from.Format("15:04"), r.to.Format("15:04"), r.interval, got, want)
					}
				}
			}
		}
	}
	if queries < 8 {
		t.Fatalf("found %d queries in the dashboard, want at least 8", queries)
	}
}

const datasourceFile = "../deploy/grafana/provisioning/datasources/influxdb.yaml"

// TestGrafanaDashboardUsesProvisionedDatasource checks that the dashboard's variable and
// every query name the datasource deploy/grafana provisions, and that it sends Flux to
// InfluxDB: TestGrafanaDashboardQueries shows what the queries return, which is what the
// dashboard shows only if Grafana sends them there, as Flux.
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
				Version       string `yaml:"version"`
				Organization  string `yaml:"organization"`
				DefaultBucket string `yaml:"defaultBucket"`
				TimeInterval  string `yaml:"timeInterval"`
			} `yaml:"jsonData"`
			SecureJSONData struct {
				Token string `yaml:"token"`
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
	if ds.UID == "" || ds.Type != "influxdb" || ds.JSONData.Version != "Flux" || ds.URL == "" ||
		ds.JSONData.Organization == "" || ds.JSONData.DefaultBucket == "" || ds.SecureJSONData.Token == "" {
		t.Errorf("datasource %+v: want a uid, type influxdb, version Flux, a url, organization, defaultBucket and token", ds)
	}
	// Windows shorter than a flush would show every other window empty.
	if d, err := time.ParseDuration(ds.JSONData.TimeInterval); err != nil || d < 10*time.Second {
		t.Errorf("timeInterval %q: want at least the default flush interval, 10s", ds.JSONData.TimeInterval)
	}

	raw, err = os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash grafanaDashboard
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("parse %s: %v", dashboardFile, err)
	}
	for _, v := range dash.Templating.List {
		if v.Datasource.UID != ds.UID {
			t.Errorf("variable %q uses datasource %q, want the provisioned %q", v.Name, v.Datasource.UID, ds.UID)
		}
	}
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			for _, target := range p.Targets {
				if target.Datasource.UID != ds.UID {
					t.Errorf("panel %q target %s uses datasource %q, want the provisioned %q", p.Title, target.RefID, target.Datasource.UID, ds.UID)
				}
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
}
