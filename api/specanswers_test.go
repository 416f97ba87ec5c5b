package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/storage"
)

// rawDo sends a request without following redirects and without checking it against the spec.
func (a *testAPI) rawDo(req *http.Request) apiResponse {
	a.t.Helper()
	c := *a.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return apiResponse{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// TestUnknownQueryParametersAreRefused checks that a query parameter an operation does not take
// is a 400 naming it, public operations included, as unknown body fields are refused.
func TestUnknownQueryParametersAreRefused(t *testing.T) {
	a := newTestAPI(t, storage.DialectSQLite)
	fx := a.seed()
	for _, tc := range []struct {
		path, token string
		fields      []string
	}{
		{"/api/v1/sites?limti=1", a.viewer, []string{"limti"}},
		{"/api/v1/sites?limit=1&b=1&a=2", a.viewer, []string{"a", "b"}},
		{"/api/v1/stats/history?fromat=csv", a.viewer, []string{"fromat"}},
		{"/api/v1/policies/" + strconv.FormatInt(fx.policy.ID, 10) + "/flows?sort=bytes&order=asc", a.viewer, []string{"order"}},
		{"/healthz?verbose=1", "", []string{"verbose"}},
		{"/readyz?x", "", []string{"x"}},
		{"/openapi.yaml?format=json", "", []string{"format"}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			defer func(parent *testing.T) { a.t = parent }(a.t)
			a.t = t
			p := a.send(a.newRequest(http.MethodGet, tc.path, tc.token, nil), false).problem(t, http.StatusBadRequest)
			if !slices.Equal(p.fields(), tc.fields) {
				t.Errorf("fields = %q, want %q", p.fields(), tc.fields)
			}
			for _, e := range p.Errors {
				if !strings.HasPrefix(e.Message, "unknown query parameter") {
					t.Errorf("message %q does not say the parameter is unknown", e.Message)
				}
			}
		})
	}
	// Known parameters still pass, and a public operation without any still answers.
	a.do(http.MethodGet, "/api/v1/sites?limit=1", a.viewer, nil).problemless(t, http.StatusOK)
	a.do(http.MethodGet, "/healthz", "", nil).problemless(t, http.StatusOK)
}

// problemless fails the test unless the response has the status and is not a problem.
func (r apiResponse) problemless(t testing.TB, status int) {
	t.Helper()
	if r.Status != status || r.Header.Get("Content-Type") == problemContentType {
		t.Fatalf("got %s, want %d", r, status)
	}
}

// TestProblemInstanceIsAURIReference checks that a problem's instance is the path as sent,
// percent-encoded, not the decoded path with its spaces.
func TestProblemInstanceIsAURIReference(t *testing.T) {
	a := newTestAPI(t, storage.DialectSQLite)
	for _, path := range []string{"/docs/a%20b.js", "/api/v1/n%C3%B6pe"} {
		r := a.rawDo(a.newRequest(http.MethodGet, path, a.viewer, nil))
		var p Problem
		if err := json.Unmarshal(r.Body, &p); err != nil || r.Header.Get("Content-Type") != problemContentType {
			t.Fatalf("GET %s = %s, want a problem", path, r)
		}
		if p.Instance != path {
			t.Errorf("GET %s: instance = %q, want %q", path, p.Instance, path)
		}
	}
}

// TestTrailingSlashRedirectCarriesRequestID checks that gin's trailing-slash redirect, which it
// answers before any middleware, still carries X-Request-ID (the client's when it sent one).
func TestTrailingSlashRedirectCarriesRequestID(t *testing.T) {
	a := newTestAPI(t, storage.DialectSQLite)
	req := a.newRequest(http.MethodGet, "/api/v1/sites/", a.viewer, nil)
	r := a.rawDo(req)
	if r.Status != http.StatusMovedPermanently || r.Header.Get("Location") != "/api/v1/sites" {
		t.Fatalf("GET /api/v1/sites/ = %s, want 301 to /api/v1/sites", r)
	}
	if !validRequestID(r.Header.Get(headerRequestID)) {
		t.Errorf("redirect has X-Request-ID %q", r.Header.Get(headerRequestID))
	}
	req = a.newRequest(http.MethodGet, "/api/v1/sites/", a.viewer, nil)
	req.Header.Set(headerRequestID, "mine-1")
	if got := a.rawDo(req).Header.Values(headerRequestID); !slices.Equal(got, []string{"mine-1"}) {
		t.Errorf("redirect X-Request-ID = %q, want the client's mine-1 once", got)
	}
	// Answers past the redirect keep one request id, the same as in the problem body.
	p := a.do(http.MethodGet, "/api/v1/sites/6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11", a.viewer, nil).problem(t, http.StatusNotFound)
	if p.RequestID == "" {
		t.Error("no request id in the problem")
	}
}

// TestPolicyFlowsPageWithCursor pages through a policy's top flows two at a time: every flow
// once, largest first, and a forged cursor is a 400.
func TestPolicyFlowsPageWithCursor(t *testing.T) {
	a := newTestAPI(t, storage.DialectSQLite)
	fx := a.seed()
	var reports []collector.Report
	for i := range 5 {
		reports = append(reports, collector.Report{PolicyID: &fx.policy.ID,
			Flow: flowOf("10.1.0.9", "198.51.100.7", uint16(1000+i), 80, 6), Packets: 1, Bytes: uint64(100 * (i + 1))})
	}
	decodeAs[apigen.TrafficResult](t, a.ingest(reports), http.StatusOK)
	var got []int64
	query := "?limit=2"
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("the cursor does not end")
		}
		page := a.flowsOf(fx.policy.ID, query)
		for _, f := range page.Items {
			got = append(got, f.Bytes)
		}
		if page.NextCursor == nil {
			break
		}
		query = "?limit=2&cursor=" + *page.NextCursor
	}
	if want := []int64{500, 400, 300, 200, 100}; !slices.Equal(got, want) {
		t.Errorf("bytes over the pages = %v, want %v", got, want)
	}
	for _, cursor := range []string{"bm9wZQ", "MA", storage.EncodeCursor("-1"), storage.EncodeCursor("100001")} {
		p := a.do(http.MethodGet, fmt.Sprintf("/api/v1/policies/%d/flows?cursor=%s", fx.policy.ID, cursor), a.viewer, nil).problem(t, http.StatusBadRequest)
		if !slices.Equal(p.fields(), []string{"cursor"}) {
			t.Errorf("cursor %q: fields %q, want cursor", cursor, p.fields())
		}
	}
}

// TestEndpointAddressForms checks the standard ipv4/ipv6 formats as the server applies them: an
// IPv6 zone or a prefix is refused with a message in words, plain addresses of both families
// are stored.
func TestEndpointAddressForms(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed()
		path := "/api/v1/sites/" + fx.site.ID + "/endpoints"
		for i, addr := range []string{"fe80::1%eth0", "fe80::1%25eth0", "192.0.2.1/32", "01.2.3.4", " 192.0.2.1"} {
			req := a.newRequest(http.MethodPost, path, a.operator, map[string]any{"name": fmt.Sprintf("bad%d", i), "address": addr})
			p := a.send(req, false).problem(t, http.StatusUnprocessableEntity)
			if !slices.Equal(p.fields(), []string{"address"}) || !strings.Contains(p.Errors[0].Message, "IPv4 or IPv6 address") {
				t.Errorf("address %q: %+v, want address named with what it must be", addr, p.Errors)
			}
		}
		for i, addr := range []string{"192.0.2.1", "2001:db8::10", "::ffff:192.0.2.1"} {
			e := decodeAs[apigen.Endpoint](t, a.do(http.MethodPost, path, a.operator, map[string]any{"name": fmt.Sprintf("good%d", i), "address": addr}), http.StatusCreated)
			if e.Address != addr {
				t.Errorf("stored address %q, want %q", e.Address, addr)
			}
		}
	})
}

// TestProblemKindsAreDocumented checks that every problem type the server answers with is in the
// spec's list of kinds.
func TestProblemKindsAreDocumented(t *testing.T) {
	desc := loadSpec(t).Info.Description
	slugs := []string{"method-not-allowed", "internal"}
	for _, k := range errorTable {
		slugs = append(slugs, k.slug)
	}
	for _, slug := range slugs {
		if !strings.Contains(desc, "`"+slug+"`") {
			t.Errorf("problem kind %q is not documented in info.description", slug)
		}
	}
}

// TestListSchemasHaveExamples checks that every list answer of the spec shows an example page.
func TestListSchemasHaveExamples(t *testing.T) {
	for name, ref := range loadSpec(t).Components.Schemas {
		s := ref.Value
		if items := s.Properties["items"]; items != nil && items.Value.Type.Is("array") && s.Example == nil {
			t.Errorf("list schema %s has no example", name)
		}
	}
}

// TestTrafficReportsEveryError sends the batch: a port out of range, a negative count, an
// unknown policy and a flow from IPv4 to IPv6 in one batch are named all at once, and nothing is
// counted.
func TestTrafficReportsEveryError(t *testing.T) {
	a := newTestAPI(t, storage.DialectSQLite)
	fx := a.seed()
	before := a.stats()
	body := fmt.Sprintf(`{"reports":[`+
		`{"flow":{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","src_port":1,"dst_port":70000,"protocol":6},"packets":-1,"bytes":1},`+
		`{"policy_id":999999,"flow":{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","src_port":1,"dst_port":2,"protocol":6},"packets":1,"bytes":1},`+
		`{"policy_id":%d,"flow":{"src_ip":"10.0.0.1","dst_ip":"2001:db8::1","src_port":1,"dst_port":2,"protocol":6},"packets":1,"bytes":1}]}`, fx.policy.ID)
	p := a.send(a.newRequest(http.MethodPost, "/api/v1/traffic", a.operator, []byte(body)), false).problem(t, http.StatusUnprocessableEntity)
	want := []string{"reports[0].flow.dst_port", "reports[0].packets", "reports[1].policy_id", "reports[2].flow.dst_ip"}
	if !slices.Equal(p.fields(), want) {
		t.Errorf("fields = %q, want %q", p.fields(), want)
	}
	checkPlainWords(t, p)
	if after := a.stats(); !reflect.DeepEqual(after, before) {
		t.Errorf("a refused batch changed the counters: %+v -> %+v", before, after)
	}
	// A mixed-family flow alone is refused too: no policy could match it.
	one := `{"reports":[{"flow":{"src_ip":"2001:db8::1","dst_ip":"10.0.0.2","src_port":1,"dst_port":2,"protocol":6},"packets":1,"bytes":1}]}`
	p = a.send(a.newRequest(http.MethodPost, "/api/v1/traffic", a.operator, []byte(one)), false).problem(t, http.StatusUnprocessableEntity)
	if !slices.Equal(p.fields(), []string{"reports[0].flow.dst_ip"}) || !strings.Contains(p.Errors[0].Message, "address family") {
		t.Errorf("mixed family: %+v", p.Errors)
	}
}

// TestAuditTimesTakeHistoryForms checks that the audit log's since and until take the forms
// history's from and to take: RFC 3339, now, and times relative to now.
func TestAuditTimesTakeHistoryForms(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		decodeAs[apigen.Site](t, a.do(http.MethodPost, "/api/v1/sites", a.operator, map[string]any{"name": a.name("audited")}), http.StatusCreated)
		count := func(query string) int {
			return len(decodeAs[apigen.AuditList](t, a.do(http.MethodGet, "/api/v1/audit?resource_kind=site&"+query, a.viewer, nil), http.StatusOK).Items)
		}
		if n := count("since=-5m"); n == 0 {
			t.Error("since=-5m finds nothing, want the site just created")
		}
		if n := count("since=-5m&until=now"); n == 0 {
			t.Error("since=-5m&until=now finds nothing")
		}
		if n := count("until=-1h"); n != 0 {
			t.Errorf("until=-1h finds %d entries, want none", n)
		}
		if n := count("since=2000-01-01T00:00:00Z"); n == 0 {
			t.Error("an RFC 3339 since finds nothing")
		}
		for _, bad := range []string{"-5min", "2026-12-01T18:00:00", "yesterday"} {
			p := a.send(a.newRequest(http.MethodGet, "/api/v1/audit?since="+bad, a.viewer, nil), false).problem(t, http.StatusBadRequest)
			if !slices.Equal(p.fields(), []string{"since"}) || !strings.Contains(p.Errors[0].Message, "relative to now") {
				t.Errorf("since=%s: %+v", bad, p.Errors)
			}
			checkPlainWords(t, p)
		}
	})
}

// TestRoutingFollowsPathDirection builds the case: paths from site A to site B and
// paths from B to A. A decision from B to A chooses only among the paths whose local endpoint
// is at B, and its reason counts only those.
func TestRoutingFollowsPathDirection(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed() // fx.path runs from fx.site (A) to fx.site2 (B)
		ctx := t.Context()
		forward := []int64{fx.path.ID}
		var backward []int64
		for i, addr := range []string{"198.51.100.1", "198.51.100.2"} {
			e := storage.Endpoint{SiteID: fx.site2.ID, Name: a.name(fmt.Sprintf("back%d", i)), Address: addr, WANKind: "fiber"}
			if err := a.store.Endpoints().Create(ctx, &e); err != nil {
				t.Fatal(err)
			}
			p := storage.Path{Name: a.name("back"), LocalEndpointID: e.ID, RemoteEndpointID: fx.endpoint.ID, Status: storage.PathUp}
			if err := a.store.Paths().Create(ctx, &p); err != nil {
				t.Fatal(err)
			}
			backward = append(backward, p.ID)
		}
		// The forward path scores best of all: a direction-blind choice would take it both ways.
		a.putMetrics(fx.path.ID, metricsBody(1, 0))
		a.putMetrics(backward[0], metricsBody(50, 1))
		a.putMetrics(backward[1], metricsBody(20, 0))
		decide := func(src, dst string) apigen.RoutingDecision {
			q := fmt.Sprintf("/api/v1/routing/decision?src_site_id=%s&dst_site_id=%s", src, dst)
			return decodeAs[apigen.RoutingDecision](t, a.do(http.MethodGet, q, a.viewer, nil), http.StatusOK)
		}
		if d := decide(fx.site2.ID, fx.site.ID); d.SelectedPathID != backward[1] || !strings.Contains(d.Reason, "among 2 up paths") {
			t.Errorf("B to A chose path %d (%q), want %d among the 2 paths from B", d.SelectedPathID, d.Reason, backward[1])
		}
		if d := decide(fx.site.ID, fx.site2.ID); d.SelectedPathID != forward[0] || !strings.Contains(d.Reason, "among 1 up paths") {
			t.Errorf("A to B chose path %d (%q), want %d, the only path from A", d.SelectedPathID, d.Reason, forward[0])
		}
		// With the only A->B path down, A to B has no usable path although B->A paths are up.
		decodeAs[apigen.Path](t, a.do(http.MethodPatch, fmt.Sprintf("/api/v1/paths/%d", fx.path.ID), a.operator, map[string]any{"status": "down"}), http.StatusOK)
		q := fmt.Sprintf("/api/v1/routing/decision?src_site_id=%s&dst_site_id=%s", fx.site.ID, fx.site2.ID)
		a.do(http.MethodGet, q, a.viewer, nil).problem(t, http.StatusNotFound)
	})
}
