package history_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/history"
)

// influxSeries is one series of an InfluxQL answer.
type influxSeries struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

// influxQL runs one InfluxQL statement on database db of the test server, times in
// nanoseconds since the epoch, numbers as json.Number, and fails the test on any error.
func influxQL(t testing.TB, serverURL, db, q string) []influxSeries {
	t.Helper()
	resp, err := http.PostForm(serverURL+"/query", url.Values{"db": {db}, "q": {q}, "epoch": {"ns"}})
	if err != nil {
		t.Fatalf("InfluxQL %s: %v", q, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("InfluxQL %s: %v", q, err)
	}
	var out struct {
		Results []struct {
			Series []influxSeries `json:"series"`
			Error  string         `json:"error"`
		} `json:"results"`
		Error string `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.Error != "" {
		t.Fatalf("InfluxQL %s: HTTP %d %s %v", q, resp.StatusCode, body, err)
	}
	var series []influxSeries
	for _, r := range out.Results {
		if r.Error != "" {
			t.Fatalf("InfluxQL %s: %s", q, r.Error)
		}
		series = append(series, r.Series...)
	}
	return series
}

// tagValues returns the values of a tag key in a measurement, sorted.
func tagValues(t *testing.T, serverURL, db, measurement, key string) []string {
	t.Helper()
	var out []string
	for _, s := range influxQL(t, serverURL, db, fmt.Sprintf(`SHOW TAG VALUES FROM %q WITH KEY = %q`, measurement, key)) {
		for _, v := range s.Values {
			out = append(out, v[1].(string))
		}
	}
	sort.Strings(out)
	return out
}

// awkwardNames are policy names line protocol must escape, or cannot carry as they are.
var awkwardNames = []struct{ name, stored string }{
	{"web traffic", "web traffic"},
	{"a,b=c", "a,b=c"},
	{`"quoted" 'single'`, `"quoted" 'single'`},
	{"ünïcødé 日本 🚀", "ünïcødé 日本 🚀"},
	{`back\slash`, `back\slash`},
	{`C:\ drive\,x\=y`, "C:\uFF3C drive\uFF3C,x\uFF3C=y"},
	{`trailing\`, "trailing\uFF3C"},
	{"tab\there", "tab here"},
	{"#hash =eq", "#hash =eq"},
}

// TestInfluxPolicyNameTag writes points of policies with awkward names and reads the
// policy_name tags back from the real InfluxDB: each is the name, or for what line protocol
// cannot carry the documented stand-in; an empty name leaves the tag out.
func TestInfluxPolicyNameTag(t *testing.T) {
	serverURL, bucket := influxDatabase(t)
	db, _, _ := strings.Cut(bucket, "/")
	h := newInflux(t, history.InfluxConfig{URL: serverURL, Token: influxToken, Org: "patronus", Bucket: bucket})
	var deltas []history.PolicyDelta
	var want []string
	for i, n := range awkwardNames {
		d := delta(int64(i+1), "a", time.Duration(i)*time.Second, 1, 100, 1)
		d.PolicyName = n.name
		deltas = append(deltas, d)
		want = append(want, n.stored)
	}
	deltas = append(deltas, delta(99, "a", 0, 1, 100, 1)) // no name
	write(t, h, deltas...)
	sort.Strings(want)
	if got := tagValues(t, serverURL, db, history.MeasurementPolicyTraffic, "policy_name"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("policy_name tags\n got  %q\n want %q", got, want)
	}
	// Each name sits on its own policy's points, and the unnamed one has none.
	for i, n := range awkwardNames {
		series := influxQL(t, serverURL, db, fmt.Sprintf(`SELECT sum(bytes) FROM policy_traffic WHERE policy_id = '%d' GROUP BY policy_name`, i+1))
		if len(series) != 1 || series[0].Tags["policy_name"] != n.stored {
			t.Errorf("policy %d: series %v, want one tagged %q", i+1, series, n.stored)
		}
	}
	if series := influxQL(t, serverURL, db, `SELECT sum(bytes) FROM policy_traffic WHERE policy_id = '99' GROUP BY policy_name`); len(series) != 1 || series[0].Tags["policy_name"] != "" {
		t.Errorf("unnamed policy: series %v, want one without a name", series)
	}
	// The history reads are unchanged by the tag: a policy renamed between two points is
	// still one policy.
	renamed := delta(1, "a", time.Minute, 2, 200, 1)
	renamed.PolicyName = "renamed"
	write(t, h, renamed)
	if got := queryPolicy(t, h, 1, 0, 2*time.Minute, 2*time.Minute); len(got) != 1 || got[0].Bytes != 300 || got[0].Packets != 3 {
		t.Errorf("history of a renamed policy = %v, want one window of 3 packets, 300 bytes", got)
	}
}

func TestTagValue(t *testing.T) {
	for _, n := range awkwardNames {
		if got := history.TagValue(n.name); got != n.stored {
			t.Errorf("TagValue(%q) = %q, want %q", n.name, got, n.stored)
		}
	}
}

// TestInfluxPathMetricsNameTag checks the path_name tag of path_metrics points.
func TestInfluxPathMetricsNameTag(t *testing.T) {
	serverURL, bucket := influxDatabase(t)
	db, _, _ := strings.Cut(bucket, "/")
	h := newInflux(t, history.InfluxConfig{URL: serverURL, Token: influxToken, Org: "patronus", Bucket: bucket})
	for i, name := range []string{"paris, berlin = fiber", "lte 🚀"} {
		m := storage.PathMetrics{PathID: int64(i + 1), LatencyMs: 10, MTU: 1500, Score: 90, MeasuredAt: base}
		if err := h.WritePathMetrics(context.Background(), m, name); err != nil {
			t.Fatal(err)
		}
	}
	series := influxQL(t, serverURL, db, `SELECT last(latency_ms) FROM path_metrics GROUP BY path_id, path_name`)
	got := map[string]string{}
	for _, s := range series {
		got[s.Tags["path_id"]] = s.Tags["path_name"]
	}
	if want := map[string]string{"1": "paris, berlin = fiber", "2": "lte 🚀"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("path_name by path_id %v, want %v", got, want)
	}
}
