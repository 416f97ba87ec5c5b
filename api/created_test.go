package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// TestCreatedAnswersCarryLocation: every 201 names the new resource in Location (checked
// against the spec's header by the response validation), and that location reads the
// resource back; a token's revokes it.
func TestCreatedAnswersCarryLocation(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed()
		created := func(path string, body any) (location string, id string) {
			t.Helper()
			r := a.do(http.MethodPost, path, a.admin, body)
			out := decodeAs[idOnly](t, r, http.StatusCreated)
			return r.Header.Get("Location"), strings.Trim(string(out.ID), `"`)
		}
		readBack := func(what, location, id string) {
			t.Helper()
			got := decodeAs[idOnly](t, a.do(http.MethodGet, location, a.viewer, nil), http.StatusOK)
			if strings.Trim(string(got.ID), `"`) != id {
				t.Errorf("%s: GET %s answered id %s, want %s", what, location, got.ID, id)
			}
		}

		loc, siteID := created("/api/v1/sites", map[string]any{"name": a.name("site"), "location": "Lyon, FR"})
		if want := "/api/v1/sites/" + siteID; loc != want {
			t.Errorf("site: Location %q, want %q", loc, want)
		}
		readBack("site", loc, siteID)

		loc, endpointID := created("/api/v1/sites/"+siteID+"/endpoints", map[string]any{"name": a.name("wan"), "address": "198.51.100.40"})
		if want := "/api/v1/endpoints/" + endpointID; loc != want {
			t.Errorf("endpoint: Location %q, want %q", loc, want)
		}
		readBack("endpoint", loc, endpointID)

		loc, pathID := created("/api/v1/paths", map[string]any{"name": a.name("path"), "local_endpoint_id": endpointID, "remote_endpoint_id": fx.endpoint2.ID})
		if want := "/api/v1/paths/" + pathID; loc != want {
			t.Errorf("path: Location %q, want %q", loc, want)
		}
		readBack("path", loc, pathID)

		loc, policyID := created("/api/v1/policies", map[string]any{"name": a.name("policy"), "priority": 77, "action": map[string]any{"type": "drop"}})
		if want := "/api/v1/policies/" + policyID; loc != want {
			t.Errorf("policy: Location %q, want %q", loc, want)
		}
		readBack("policy", loc, policyID)

		loc, tokenID := created("/api/v1/tokens", map[string]any{"name": a.name("token"), "role": "viewer"})
		if want := "/api/v1/tokens/" + tokenID; loc != want {
			t.Errorf("token: Location %q, want %q", loc, want)
		}
		if r := a.do(http.MethodDelete, loc, a.admin, nil); r.Status != http.StatusNoContent {
			t.Errorf("token: DELETE %s = %s", loc, r)
		}
		if _, err := strconv.ParseInt(tokenID, 10, 64); err != nil {
			t.Errorf("token id %q", tokenID)
		}
	})
}

// TestAccessLogOneLinePerRequest: each request gets one info line with its method, route,
// status, duration and request id, never its token; probes and scrapes log at debug only.
func TestAccessLogOneLinePerRequest(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		t.Run(level.String(), func(t *testing.T) {
			logs := &syncBuffer{}
			a := newTestAPI(t, storagetest.Dialects[0], withConfig(func(c *Config) {
				c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))
			}))
			fx := a.seed()
			req := a.newRequest(http.MethodGet, "/api/v1/sites/"+fx.site.ID, a.viewer, nil)
			req.Header.Set(headerRequestID, "access-log-test-1")
			if r := a.send(req, true); r.Status != http.StatusOK {
				t.Fatalf("GET site: %s", r)
			}
			req = a.newRequest(http.MethodGet, "/api/v1/sites/"+fx.site.ID, "ptr_not-a-real-token", nil)
			req.Header.Set(headerRequestID, "access-log-test-2")
			if r := a.send(req, true); r.Status != http.StatusUnauthorized {
				t.Fatalf("GET site with a bad token: %s", r)
			}
			for _, probe := range []string{"/healthz", "/readyz", "/metrics"} {
				req := a.newRequest(http.MethodGet, probe, "", nil)
				req.Header.Set(headerRequestID, "access-log-probe")
				a.send(req, true)
			}

			lines := requestLines(logs.String())
			for _, want := range []struct{ id, status, actor string }{{"access-log-test-1", "200", "actor=test-viewer"}, {"access-log-test-2", "401", ""}} {
				var got []string
				for _, l := range lines {
					if strings.Contains(l, "request_id="+want.id+" ") {
						got = append(got, l)
					}
				}
				if len(got) != 1 {
					t.Fatalf("%d access lines for request %s, want 1:\n%s", len(got), want.id, logs.String())
				}
				l := got[0]
				for _, field := range []string{"level=INFO", "method=GET", "route=/api/v1/sites/{site_id}", "path=/api/v1/sites/" + fx.site.ID,
					"status=" + want.status, "duration_ms=", want.actor} {
					if !strings.Contains(l, field) {
						t.Errorf("access line lacks %q: %s", field, l)
					}
				}
			}
			probes := 0
			for _, l := range lines {
				if strings.Contains(l, "request_id=access-log-probe ") {
					probes++
					if !strings.Contains(l, "level=DEBUG") {
						t.Errorf("a probe logged above debug: %s", l)
					}
				}
			}
			if want := map[slog.Level]int{slog.LevelInfo: 0, slog.LevelDebug: 3}[level]; probes != want {
				t.Errorf("%d access lines for probes at level %s, want %d:\n%s", probes, level, want, logs.String())
			}
			for _, secret := range []string{a.viewer, "ptr_not-a-real-token", "Bearer", "Authorization"} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("the log holds %q:\n%s", secret, logs.String())
				}
			}
		})
	}
}

// requestLines returns the log's access lines.
func requestLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "msg=request ") {
			out = append(out, l)
		}
	}
	return out
}

// idOnly is the id of any resource, a UUID string or an integer.
type idOnly struct {
	ID json.RawMessage `json:"id"`
}
