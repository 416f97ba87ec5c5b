package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/patronus-sdwan/patronus/storage"
)

// errorRecorder is a testing.TB that keeps the errors reported to it instead of failing, to test
// the harness's own checks.
type errorRecorder struct {
	testing.TB
	errs []string
}

func (r *errorRecorder) Helper() {}

func (r *errorRecorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestContractCheckCatchesBrokenResponses shows that the harness's response check, which every
// API test goes through, fails a test on each kind of mismatch with openapi.yaml, and passes
// responses that match.
func TestContractCheckCatchesBrokenResponses(t *testing.T) {
	const rid = "contract-test-1"
	okHeader := func(kv ...string) http.Header {
		h := http.Header{}
		h.Set(headerRequestID, rid)
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	problemBody := func(status int, kind, requestID string) string {
		return fmt.Sprintf(`{"type":%q,"title":"x","status":%d,"request_id":%q}`, problemTypeBase+kind, status, requestID)
	}
	const site = `{"id":"6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11","name":"paris","location":"","description":"",` +
		`"version":1,"created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05Z"}`
	cases := []struct {
		name, method, path string
		resp               apiResponse
		wantErr            string // "" when the response matches the spec
	}{
		{"Valid", http.MethodGet, "/api/v1/sites",
			apiResponse{200, okHeader("Content-Type", "application/json"), []byte(`{"items":[` + site + `],"next_cursor":null}`)}, ""},
		{"ValidProblem", http.MethodGet, "/api/v1/sites/6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11",
			apiResponse{404, okHeader("Content-Type", problemContentType), []byte(problemBody(404, "not-found", rid))}, ""},
		{"UndocumentedStatus", http.MethodGet, "/api/v1/sites",
			apiResponse{418, okHeader("Content-Type", problemContentType), []byte(problemBody(418, "teapot", rid))}, "status is not supported"},
		{"UndocumentedNotImplemented", http.MethodGet, "/api/v1/sites",
			apiResponse{501, okHeader("Content-Type", problemContentType), []byte(problemBody(501, "internal", rid))}, "status is not supported"},
		{"BodyOffSchema", http.MethodGet, "/api/v1/sites",
			apiResponse{200, okHeader("Content-Type", "application/json"), []byte(`{"items":[{"id":"not-a-uuid"}],"next_cursor":null}`)}, "response body doesn't match"},
		{"ErrorAsPlainJSON", http.MethodGet, "/api/v1/sites/6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11",
			apiResponse{404, okHeader("Content-Type", "application/json"), []byte(problemBody(404, "not-found", rid))}, "Content-Type"},
		{"ProblemOffSchema", http.MethodGet, "/api/v1/sites/6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11",
			apiResponse{404, okHeader("Content-Type", problemContentType), []byte(`{"status":"404"}`)}, "response body doesn't match"},
		{"ProblemWithOtherRequestID", http.MethodGet, "/api/v1/sites/6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11",
			apiResponse{404, okHeader("Content-Type", problemContentType), []byte(problemBody(404, "not-found", "other"))}, "problem request_id"},
		{"NoRequestID", http.MethodGet, "/api/v1/sites/6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11",
			apiResponse{404, http.Header{"Content-Type": {problemContentType}}, []byte(problemBody(404, "not-found", ""))}, "X-Request-ID"},
		{"UnauthorizedWithoutChallenge", http.MethodGet, "/api/v1/sites",
			apiResponse{401, okHeader("Content-Type", problemContentType), []byte(problemBody(401, "unauthenticated", rid))}, "WWW-Authenticate"},
		{"NoContentWithBody", http.MethodDelete, "/api/v1/paths/3",
			apiResponse{204, okHeader(), []byte(`{}`)}, "a 204 with a body"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, "http://127.0.0.1:1"+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			rec := &errorRecorder{TB: t}
			checkResponse(rec, req, tc.resp)
			got := strings.Join(rec.errs, "\n")
			switch {
			case tc.wantErr == "" && got != "":
				t.Errorf("a response that matches the spec was refused:\n%s", got)
			case tc.wantErr != "" && !strings.Contains(got, tc.wantErr):
				t.Errorf("errors = %q, want one mentioning %q", got, tc.wantErr)
			}
		})
	}
}

// TestEveryRouteIsInTheSpec checks the real server's gin routes against openapi.yaml both ways,
// and that a request to each operation reaches it rather than gin's 404 or 405.
func TestEveryRouteIsInTheSpec(t *testing.T) {
	a := newTestAPI(t, storage.DialectSQLite)
	a.do(http.MethodGet, "/healthz", "", nil) // gin unescapes the `\:` of sites:batchDelete on first use
	ops := contractOperations(t)
	var spec, routes []string
	for _, o := range ops {
		spec = append(spec, o.method+" "+ginPath(o.path))
	}
	for _, r := range a.srv.router.Routes() {
		routes = append(routes, r.Method+" "+r.Path)
	}
	for _, r := range routes {
		if !slices.Contains(spec, r) {
			t.Errorf("gin route %s is not an operation of openapi.yaml", r)
		}
	}
	for _, s := range spec {
		if !slices.Contains(routes, s) {
			t.Errorf("operation %s of openapi.yaml has no gin route", s)
		}
	}

	fx := a.seed()
	for _, o := range ops {
		if o.streams() {
			continue // the role matrix opens the stream
		}
		r := a.send(a.requestFor(o, fx), true)
		var p Problem
		_ = json.Unmarshal(r.Body, &p)
		if r.Status == http.StatusMethodNotAllowed || (r.Status == http.StatusNotFound && strings.HasPrefix(p.Detail, "no route")) {
			t.Errorf("%s %s is not routed: %s", o.method, o.path, r)
		}
		if o.role != "" && r.Status != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %s, want 401", o.method, o.path, r)
		}
	}

	// Outside the spec: gin's own answers are problems too.
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/api/v1/nope", http.StatusNotFound},
		{http.MethodPut, "/api/v1/sites", http.StatusMethodNotAllowed},
		{http.MethodPost, "/api/v1/sites:batchCreate", http.StatusNotFound},
	} {
		req := a.newRequest(tc.method, tc.path, a.admin, nil)
		resp, err := a.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		apiResponse{Status: resp.StatusCode, Header: resp.Header, Body: body}.problem(t, tc.status)
	}
}
