package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/patronus-sdwan/patronus/api/client"
	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/storage"
)

// contractDoer sends the generated client's requests to the test server, checking each request
// and response against openapi.yaml as the harness does.
type contractDoer struct{ a *testAPI }

// Do implements client.HttpRequestDoer.
func (d contractDoer) Do(req *http.Request) (*http.Response, error) {
	t := d.a.t
	t.Helper()
	checkRequest(t, req, requestBody(t, req))
	resp, err := d.a.client.Do(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	checkResponse(t, req, apiResponse{Status: resp.StatusCode, Header: resp.Header, Body: body})
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// newClient returns a generated client that talks to the test server with the bearer token.
func (a *testAPI) newClient(token string) *client.ClientWithResponses {
	a.t.Helper()
	c, err := client.NewClientWithResponses(a.baseURL, client.WithHTTPClient(contractDoer{a}),
		client.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+token)
			return nil
		}))
	if err != nil {
		a.t.Fatalf("new client: %v", err)
	}
	return c
}

// statusOf is what every generated response has.
type statusOf interface{ StatusCode() int }

// must fails the test unless the call succeeded with the status.
func must[R statusOf](t *testing.T, r R, err error, status int) R {
	t.Helper()
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	if r.StatusCode() != status {
		t.Fatalf("status %d, want %d: %+v", r.StatusCode(), status, r)
	}
	return r
}

func ptr[T any](v T) *T { return &v }

// TestEndToEndThroughGeneratedClient drives an operator's day only through the generated client
// against the real server on a loopback port: a token, sites, endpoints, a path and a policy;
// lists paged by cursor; updates; deletes; and the audit log read back with each filter.
func TestEndToEndThroughGeneratedClient(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		ctx := context.Background()
		admin := a.newClient(testAdminToken)
		rTok, err := admin.CreateTokenWithResponse(ctx, client.TokenCreate{Name: "e2e-operator", Role: client.RoleOperator})
		tok := must(t, rTok, err, http.StatusCreated).JSON201
		if tok.Name != "e2e-operator" || tok.Role != client.RoleOperator || len(tok.Token) < 32 {
			t.Fatalf("created token %+v", tok)
		}
		op := a.newClient(tok.Token)

		// Sites, and the list paged through by cursor.
		var siteIDs []uuid.UUID
		var etag string
		for _, name := range []string{"paris", "berlin", "madrid"} {
			r, err := op.CreateSiteWithResponse(ctx, client.SiteCreate{Name: name, Location: ptr(strings.ToUpper(name))})
			site := must(t, r, err, http.StatusCreated).JSON201
			if site.Name != name || site.Version != 1 {
				t.Fatalf("created site %+v", site)
			}
			if name == "paris" {
				etag = r.HTTPResponse.Header.Get("ETag")
			}
			siteIDs = append(siteIDs, site.ID)
		}
		r, err := op.CreateSiteWithResponse(ctx, client.SiteCreate{Name: "paris"})
		if dup := must(t, r, err, http.StatusConflict).ApplicationProblemJSON409; dup == nil || dup.Errors == nil || (*dup.Errors)[0].Field != "name" {
			t.Errorf("duplicate site: %+v", dup)
		}
		var listed []uuid.UUID
		var pageSizes []int
		params := &client.ListSitesParams{Limit: ptr[client.Limit](2)}
		for range 5 {
			r, err := op.ListSitesWithResponse(ctx, params)
			page := must(t, r, err, http.StatusOK).JSON200
			pageSizes = append(pageSizes, len(page.Items))
			for _, s := range page.Items {
				listed = append(listed, s.ID)
			}
			if page.NextCursor == nil {
				break
			}
			params.Cursor = page.NextCursor
		}
		if !slices.Equal(listed, siteIDs) || !slices.Equal(pageSizes, []int{2, 1}) {
			t.Errorf("sites listed %v in pages %v, want %v in 2,1", listed, pageSizes, siteIDs)
		}

		// Endpoints, a path between them and a policy preferring it.
		var endpointIDs []uuid.UUID
		for i, addr := range []string{"203.0.113.1", "2001:db8::2"} {
			r, err := op.CreateEndpointWithResponse(ctx, siteIDs[i], client.EndpointCreate{Name: "wan" + strconv.Itoa(i), Address: addr, WANKind: ptr(client.WANKindFiber)})
			e := must(t, r, err, http.StatusCreated).JSON201
			if e.SiteID != siteIDs[i] || e.Address != addr {
				t.Fatalf("created endpoint %+v", e)
			}
			endpointIDs = append(endpointIDs, e.ID)
		}
		rEps, err := op.ListSiteEndpointsWithResponse(ctx, siteIDs[0], nil)
		if eps := must(t, rEps, err, http.StatusOK).JSON200; len(eps.Items) != 1 || eps.Items[0].ID != endpointIDs[0] {
			t.Errorf("endpoints of paris: %+v", eps.Items)
		}
		rPath, err := op.CreatePathWithResponse(ctx, client.PathCreate{Name: "paris-berlin", LocalEndpointID: endpointIDs[0], RemoteEndpointID: endpointIDs[1]})
		path := must(t, rPath, err, http.StatusCreated).JSON201
		rPaths, err := op.ListPathsWithResponse(ctx, &client.ListPathsParams{SiteID: &siteIDs[1]})
		if paths := must(t, rPaths, err, http.StatusOK).JSON200; len(paths.Items) != 1 || paths.Items[0].ID != path.ID {
			t.Errorf("paths of berlin: %+v", paths.Items)
		}
		rPol, err := op.CreatePolicyWithResponse(ctx, client.PolicyCreate{
			Name: "voip", Priority: 10,
			Match:  &client.PolicyMatch{Protocol: ptr[int32](17), DstCIDR: ptr("10.20.0.0/16"), DstPorts: &[]client.PortRange{{From: 5060, To: 5061}}},
			Action: preferPathAction(t, path.ID),
		})
		policy := must(t, rPol, err, http.StatusCreated).JSON201
		preferred, err := policy.Action.AsPreferPathAction()
		if err != nil || !policy.Enabled || preferred.PathID == nil || *preferred.PathID != path.ID || (*policy.Match.DstPorts)[0].To != 5061 {
			t.Errorf("created policy %+v", policy)
		}

		// Updates: a conditional site update, a policy update; a viewer may not write.
		rSite, err := op.UpdateSiteWithResponse(ctx, siteIDs[0], &client.UpdateSiteParams{IfMatch: &etag}, client.SiteUpdate{Description: ptr("head office")})
		if site := must(t, rSite, err, http.StatusOK).JSON200; site.Version != 2 || site.Description != "head office" || site.Location != "PARIS" {
			t.Errorf("updated site %+v", site)
		}
		rSite, err = op.UpdateSiteWithResponse(ctx, siteIDs[0], &client.UpdateSiteParams{IfMatch: &etag}, client.SiteUpdate{Description: ptr("stale")})
		must(t, rSite, err, http.StatusConflict)
		rPol2, err := op.UpdatePolicyWithResponse(ctx, policy.ID, client.PolicyUpdate{Enabled: ptr(false)})
		if p := must(t, rPol2, err, http.StatusOK).JSON200; p.Enabled || p.Priority != 10 {
			t.Errorf("updated policy %+v", p)
		}
		viewer := a.newClient(a.viewer)
		rDenied, err := viewer.UpdatePolicyWithResponse(ctx, policy.ID, client.PolicyUpdate{Enabled: ptr(true)})
		must(t, rDenied, err, http.StatusForbidden)

		// Deletes.
		rDel, err := op.DeletePolicyWithResponse(ctx, policy.ID)
		must(t, rDel, err, http.StatusNoContent)
		rDelPath, err := op.DeletePathWithResponse(ctx, path.ID)
		must(t, rDelPath, err, http.StatusNoContent)
		rDelEp, err := op.DeleteEndpointWithResponse(ctx, endpointIDs[1])
		must(t, rDelEp, err, http.StatusNoContent)
		rGone, err := viewer.GetPathWithResponse(ctx, path.ID)
		must(t, rGone, err, http.StatusNotFound)

		// The audit log, by resource, by actor (paged), and by time.
		auditOf := func(p client.ListAuditEntriesParams) []client.AuditEntry {
			t.Helper()
			p.Limit = ptr[client.Limit](4)
			var all []client.AuditEntry
			for range 20 {
				r, err := viewer.ListAuditEntriesWithResponse(ctx, &p)
				page := must(t, r, err, http.StatusOK).JSON200
				all = append(all, page.Items...)
				if page.NextCursor == nil {
					return all
				}
				p.Cursor = page.NextCursor
			}
			t.Fatal("the audit log does not end")
			return nil
		}
		summary := func(entries []client.AuditEntry) []string {
			var out []string
			for _, e := range entries {
				out = append(out, e.Actor+" "+string(e.Action)+" "+string(e.ResourceKind))
			}
			return out
		}
		paris := auditOf(client.ListAuditEntriesParams{ResourceKind: ptr(client.AuditResourceKindSite), ResourceID: ptr(siteIDs[0].String())})
		if got := summary(paris); !slices.Equal(got, []string{"e2e-operator create site", "e2e-operator update site"}) {
			t.Errorf("audit of paris: %q", got)
		}
		byOperator := auditOf(client.ListAuditEntriesParams{Actor: ptr("e2e-operator")})
		want := []string{"create site", "create site", "create site", "create endpoint", "create endpoint", "create path",
			"create policy", "update site", "update policy", "delete policy", "delete path", "delete endpoint"}
		for i := range want {
			want[i] = "e2e-operator " + want[i]
		}
		if got := summary(byOperator); !slices.Equal(got, want) {
			t.Fatalf("audit by e2e-operator:\n got %q\nwant %q", got, want)
		}
		if got := summary(auditOf(client.ListAuditEntriesParams{Actor: ptr("admin-token")})); !slices.Equal(got, []string{"admin-token create token"}) {
			t.Errorf("audit by admin-token: %q", got)
		}
		// since is inclusive and until exclusive: from the site update up to the last delete.
		since, until := byOperator[7].Time, byOperator[11].Time
		var wantIDs []int64
		for _, e := range byOperator {
			if !e.Time.Before(since) && e.Time.Before(until) {
				wantIDs = append(wantIDs, e.ID)
			}
		}
		var gotIDs []int64
		for _, e := range auditOf(client.ListAuditEntriesParams{Actor: ptr("e2e-operator"), Since: ptr(since.Format(time.RFC3339Nano)), Until: ptr(until.Format(time.RFC3339Nano))}) {
			gotIDs = append(gotIDs, e.ID)
		}
		if len(wantIDs) == 0 || !slices.Equal(gotIDs, wantIDs) {
			t.Errorf("audit from %s until %s: %v, want %v", since, until, gotIDs, wantIDs)
		}
		future := time.Now().Add(time.Hour)
		if got := auditOf(client.ListAuditEntriesParams{Since: ptr(future.Format(time.RFC3339Nano))}); len(got) != 0 {
			t.Errorf("audit since an hour ahead: %q", summary(got))
		}

		// Revoking the operator's token locks the client out at once.
		rRevoke, err := admin.DeleteTokenWithResponse(ctx, tok.ID)
		must(t, rRevoke, err, http.StatusNoContent)
		rLocked, err := op.ListSitesWithResponse(ctx, nil)
		if p := must(t, rLocked, err, http.StatusUnauthorized).ApplicationProblemJSON401; p == nil || p.RequestID == "" {
			t.Errorf("401 problem %+v", p)
		}
	})
}

// panickingPipeline is a history pipeline whose state read panics.
type panickingPipeline struct{}

func (panickingPipeline) Stats() collector.PipelineStats { panic(errors.New("pipeline blew up")) }

// TestPanicAnswersProblemAndServerKeepsServing makes a handler's dependency panic: the request
// gets a 500 problem with its request id and no panic text (checked against the spec like every
// response), the panic is logged with that id, and the server goes on answering.
func TestPanicAnswersProblemAndServerKeepsServing(t *testing.T) {
	a := newTestAPI(t, storage.DialectSQLite, withConfig(func(c *Config) { c.Pipeline = panickingPipeline{} }))
	for i := range 3 {
		id := "panic-test-" + strconv.Itoa(i)
		req := a.newRequest(http.MethodGet, "/api/v1/stats/pipeline", a.viewer, nil)
		req.Header.Set(headerRequestID, id)
		p := a.send(req, true).problem(t, http.StatusInternalServerError)
		if p.RequestID != id || p.Type != problemTypeBase+"internal" || strings.Contains(p.Detail, "blew up") {
			t.Errorf("problem %+v, want internal with our request id and no panic text", p)
		}
		if logs := a.logs.String(); !strings.Contains(logs, "panic in handler") || !strings.Contains(logs, "request_id="+id) {
			t.Errorf("the panic is not logged with its request id:\n%s", logs)
		}
		// The same server still serves, reads and writes.
		decodeAs[map[string]any](t, a.do(http.MethodGet, "/healthz", "", nil), http.StatusOK)
		decodeAs[client.Site](t, a.do(http.MethodPost, "/api/v1/sites", a.operator, map[string]any{"name": a.name("after-panic")}), http.StatusCreated)
	}
}

// TestPanickingProbeFailsReadiness checks that a readiness probe, which runs on a goroutine of
// its own where the recovery middleware cannot catch it, fails its check when it panics
// instead of taking the process down.
func TestPanickingProbeFailsReadiness(t *testing.T) {
	a := newTestAPI(t, storage.DialectSQLite, withConfig(func(c *Config) {
		c.Checks = append(c.Checks, Check{Name: "influxdb", Probe: func(context.Context) error { panic("probe blew up") }})
	}))
	for range 2 {
		r := a.do(http.MethodGet, "/readyz", "", nil)
		body := decodeAs[readinessProblem](t, r, http.StatusServiceUnavailable)
		if body.Detail != "influxdb: unavailable" || body.Checks["influxdb"].Status != "fail" || body.Checks["database"].Status != "ok" {
			t.Errorf("readiness %+v, want influxdb failed and the database ok", body)
		}
		if strings.Contains(string(r.Body), "probe blew up") || r.Header.Get("Retry-After") == "" {
			t.Errorf("readiness 503 shows the cause or has no Retry-After: %s", r)
		}
	}
	if !strings.Contains(a.logs.String(), "panic in readiness probe") {
		t.Errorf("the probe's panic is not logged:\n%s", a.logs.String())
	}
}

// preferPathAction is the client's prefer_path action for a path.
func preferPathAction(t *testing.T, pathID int64) client.PolicyAction {
	t.Helper()
	var a client.PolicyAction
	if err := a.FromPreferPathAction(client.PreferPathAction{Type: client.PreferPathActionTypePreferPath, PathID: &pathID}); err != nil {
		t.Fatal(err)
	}
	return a
}
