package api

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestBadParametersAndBodyInOneAnswer: a request with bad parameters and a bad body is one
// 400 naming every bad parameter and every bad body field, for bodies the spec validates and
// for the traffic batch its handler validates; the answer is bounded at 100 fields.
func TestBadParametersAndBodyInOneAnswer(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed()
		policyID := strconv.FormatInt(fx.policy.ID, 10)
		for _, tc := range []struct {
			name, method, path, body string
			header                   [2]string
			fields                   []string
		}{
			{name: "UnknownParamsAndSchema", method: http.MethodPost, path: "/api/v1/sites?limti=1&b=2",
				body: `{"name":42,"colour":"red"}`, fields: []string{"b", "colour", "limti", "name"}},
			{name: "UnknownParamAndMalformedJSON", method: http.MethodPost, path: "/api/v1/sites?dry_run=true",
				body: `{"name":`, fields: []string{"body", "dry_run"}},
			{name: "PathHeaderQueryAndBody", method: http.MethodPatch, path: "/api/v1/sites/not-a-uuid?x=1",
				body: `{"name":true}`, header: [2]string{"If-Match", "W/1"}, fields: []string{"If-Match", "name", "site_id", "x"}},
			{name: "ControlCharParamAndBody", method: http.MethodPatch, path: "/api/v1/policies/" + policyID + "?n=%00",
				body: `{"priority":-1,"match":{"dst_cidr":"banana"}}`, fields: []string{"match.dst_cidr", "n", "priority"}},
			{name: "TrafficParamAndReports", method: http.MethodPost, path: "/api/v1/traffic?verbose=1",
				body:   `{"reports":[{"flow":{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","protocol":6,"src_port":1,"dst_port":70000},"packets":-1,"bytes":1}]}`,
				fields: []string{"reports[0].flow.dst_port", "reports[0].packets", "verbose"}},
			{name: "TrafficParamOnly", method: http.MethodPost, path: "/api/v1/traffic?verbose=1",
				body:   `{"reports":[{"flow":{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","protocol":6,"src_port":1,"dst_port":80},"packets":1,"bytes":1}]}`,
				fields: []string{"verbose"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				defer func(parent *testing.T) { a.t = parent }(a.t)
				a.t = t
				req := a.newRequest(tc.method, tc.path, a.operator, tc.body)
				if tc.header[0] != "" {
					req.Header.Set(tc.header[0], tc.header[1])
				}
				before := a.snapshot()
				p := a.send(req, false).problem(t, http.StatusBadRequest)
				got := p.fields()
				slices.Sort(got)
				got = slices.Compact(got) // a field may have several messages
				if !slices.Equal(got, tc.fields) {
					t.Errorf("names %q, want %q: %+v", got, tc.fields, p)
				}
				checkPlainWords(t, p)
				if d := diffSnapshots(before, a.snapshot()); d != "" {
					t.Errorf("a refused request changed data:\n%s", d)
				}
			})
		}

		t.Run("Bounded", func(t *testing.T) {
			var q []string
			for i := range 150 {
				q = append(q, "x"+strconv.Itoa(i)+"=1")
			}
			req := a.newRequest(http.MethodPost, "/api/v1/sites?"+strings.Join(q, "&"), a.operator, `{"name":42}`)
			p := a.send(req, false).problem(t, http.StatusBadRequest)
			if len(p.Errors) != maxFieldErrors || !strings.Contains(p.Detail, "the first 100 of 151 errors") {
				t.Errorf("%d errors, detail %q; want the first 100 of 151", len(p.Errors), p.Detail)
			}
		})
	})
}
