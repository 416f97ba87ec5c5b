package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/patronus-sdwan/patronus/storage"
)

// contractOperation is one operation of openapi.yaml as the tests drive it.
type contractOperation struct {
	id, method, path string
	role             string // x-required-role; "" when public
	op               *openapi3.Operation
	params           openapi3.Parameters // the path item's and the operation's
}

// contractOperations lists every operation of openapi.yaml, in a stable order.
func contractOperations(t *testing.T) []contractOperation {
	t.Helper()
	spec, err := testSpec()
	if err != nil {
		t.Fatal(err)
	}
	var ops []contractOperation
	for _, path := range spec.Paths.InMatchingOrder() {
		item := spec.Paths.Value(path)
		for method, op := range item.Operations() {
			role, _ := op.Extensions["x-required-role"].(string)
			params := append(slices.Clone(item.Parameters), op.Parameters...)
			ops = append(ops, contractOperation{id: op.OperationID, method: method, path: path, role: role, op: op, params: params})
		}
	}
	slices.SortFunc(ops, func(a, b contractOperation) int { return strings.Compare(a.id, b.id) })
	return ops
}

// streams reports whether the operation answers a Server-Sent Events stream, which a test
// must not read to its end.
func (o contractOperation) streams() bool {
	ok := o.op.Responses.Status(http.StatusOK)
	return ok != nil && ok.Value.Content.Get("text/event-stream") != nil
}

// fixtureIDs maps the names of id fields and parameters to the fixture's ids, so that a request
// built from the spec's examples names resources that exist.
func fixtureIDs(fx fixture) map[string]any {
	return map[string]any{
		"site_id": fx.site.ID, "src_site_id": fx.site.ID, "dst_site_id": fx.site2.ID,
		"endpoint_id": fx.endpoint.ID, "local_endpoint_id": fx.endpoint2.ID, "remote_endpoint_id": fx.endpoint.ID, // the fixture's path runs the other way: one path per direction
		"path_id": fx.path.ID, "policy_id": fx.policy.ID, "token_id": fx.token.ID,
		"ids": []any{fx.site.ID},
	}
}

// requestFor builds a request for the operation that the spec accepts and that the operation's
// role can carry out on the fixture: path and required query parameters from the fixture or
// the spec's examples, the body from the spec's example with the fixture's ids and fresh names.
// It sends no token.
func (a *testAPI) requestFor(o contractOperation, fx fixture) *http.Request {
	a.t.Helper()
	ids := fixtureIDs(fx)
	path := o.path
	query := url.Values{}
	for _, ref := range o.params {
		p := ref.Value
		if !p.Required && p.In != openapi3.ParameterInPath {
			continue
		}
		value := fmt.Sprint(exampleOf(a.t, o, p))
		if id, ok := ids[p.Name]; ok {
			value = fmt.Sprint(id)
		}
		switch p.In {
		case openapi3.ParameterInPath:
			path = strings.ReplaceAll(path, "{"+p.Name+"}", url.PathEscape(value))
		case openapi3.ParameterInQuery:
			query.Set(p.Name, value)
		default:
			a.t.Fatalf("%s: required %s parameter %s: the matrix does not know how to send it", o.id, p.In, p.Name)
		}
	}
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	var body any
	if o.op.RequestBody != nil {
		mt := o.op.RequestBody.Value.Content.Get("application/json")
		body = a.withFixture(mt.Example, ids)
	}
	return a.newRequest(o.method, path, "", body)
}

// exampleOf returns the example of a parameter: its own, its schema's or its schema's first enum
// value.
func exampleOf(t *testing.T, o contractOperation, p *openapi3.Parameter) any {
	t.Helper()
	switch {
	case p.Example != nil:
		return p.Example
	case p.Schema != nil && p.Schema.Value.Example != nil:
		return p.Schema.Value.Example
	case p.Schema != nil && len(p.Schema.Value.Enum) > 0:
		return p.Schema.Value.Enum[0]
	}
	t.Fatalf("%s: parameter %s has no example to send", o.id, p.Name)
	return nil
}

// withFixture copies a JSON example, replacing ids by the fixture's and names by fresh ones.
func (a *testAPI) withFixture(v any, ids map[string]any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			switch id, ok := ids[k]; {
			case ok:
				out[k] = id
			case k == "name":
				out[k] = a.name("matrix")
			default:
				out[k] = a.withFixture(x, ids)
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = a.withFixture(x, ids)
		}
		return out
	}
	return v
}

// roleOutcome lists, per operation, the statuses other than 2xx that a caller with the right
// role may get from requestFor's request, and why.
var roleOutcome = map[string][]int{
	"getPathMetrics":              {http.StatusNotFound},           // the fixture's path has no metrics yet
	"getStatsHistory":             {http.StatusServiceUnavailable}, // the test server has no history store
	"getPolicyStatsHistory":       {http.StatusServiceUnavailable}, // the test server has no history store
	"getPathStatsHistory":         {http.StatusServiceUnavailable}, // the test server has no history store
	"getUnclassifiedStatsHistory": {http.StatusServiceUnavailable},
}

// rolesBelow lists the roles ranked under role, as the spec orders them (not as the server's
// table does, which is under test).
func rolesBelow(role string) []string {
	ordered := []string{storage.RoleViewer, storage.RoleOperator, storage.RoleAdmin}
	return ordered[:max(slices.Index(ordered, role), 0)]
}

// TestRoleMatrix drives every operation of the spec with no token, bad tokens, each role below
// its x-required-role and the required role: 401 problems (with the bearer challenge), then 403
// problems, none of which changes anything, then success. Public operations answer without a
// token.
func TestRoleMatrix(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		ctx := context.Background()
		revokedTok, revoked, err := a.store.Tokens().Create(ctx, "test-revoked", storage.RoleAdmin)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.store.Tokens().Revoke(ctx, revokedTok.ID); err != nil {
			t.Fatal(err)
		}
		secrets := map[string]string{storage.RoleViewer: a.viewer, storage.RoleOperator: a.operator, storage.RoleAdmin: a.admin}
		for _, o := range contractOperations(t) {
			t.Run(o.id, func(t *testing.T) {
				defer func(parent *testing.T) { a.t = parent }(a.t)
				a.t = t
				fx := a.seed()
				if o.role == "" {
					r := a.send(a.requestFor(o, fx), true)
					if r.Status >= 300 {
						t.Errorf("public %s %s without a token = %s, want 2xx", o.method, o.path, r)
					}
					return
				}
				before := a.snapshot()
				denied := []struct {
					name, authorization, challenge string
				}{
					{"NoToken", "", `Bearer realm="patronus"`},
					{"UnknownToken", "Bearer " + strings.Repeat("x", 43), `error="invalid_token"`},
					{"RevokedToken", "Bearer " + revoked, `error="invalid_token"`},
					{"NotBearer", "Basic " + a.admin, `Bearer realm="patronus"`},
					{"EmptyBearer", "Bearer ", `Bearer realm="patronus"`},
				}
				for _, d := range denied {
					req := a.requestFor(o, fx)
					if d.authorization != "" {
						req.Header.Set("Authorization", d.authorization)
					}
					r := a.send(req, true)
					p := r.problem(t, http.StatusUnauthorized)
					if p.Type != problemTypeBase+"unauthenticated" {
						t.Errorf("%s: problem type %q", d.name, p.Type)
					}
					if got := r.Header.Get("WWW-Authenticate"); !strings.Contains(got, d.challenge) {
						t.Errorf("%s: WWW-Authenticate %q, want it to contain %q", d.name, got, d.challenge)
					}
				}
				for _, role := range rolesBelow(o.role) {
					p := a.send(withToken(a.requestFor(o, fx), secrets[role]), true).problem(t, http.StatusForbidden)
					if p.Type != problemTypeBase+"forbidden" || !strings.Contains(p.Detail, o.role) {
						t.Errorf("%s token: problem %+v, want forbidden naming role %s", role, p, o.role)
					}
				}
				if d := diffSnapshots(before, a.snapshot()); d != "" {
					t.Errorf("refused requests changed data:\n%s", d)
				}

				req := withToken(a.requestFor(o, fx), secrets[o.role])
				if o.streams() {
					checkStreamOpens(t, a, req)
					return
				}
				r := a.send(req, true)
				switch {
				case r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden:
					t.Errorf("%s token: %s, want the operation carried out", o.role, r)
				case r.Status >= 300 && !slices.Contains(roleOutcome[o.id], r.Status):
					t.Errorf("%s token: %s, want 2xx (or one of %v)", o.role, r, roleOutcome[o.id])
				}
				// The configured admin token may do everything.
				if r := a.send(withToken(a.requestFor(o, fx), testAdminToken), true); r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden {
					t.Errorf("PATRONUS_ADMIN_TOKEN: %s", r)
				}
			})
		}
	})
}

// withToken sets req's bearer token.
func withToken(req *http.Request, secret string) *http.Request {
	req.Header.Set("Authorization", "Bearer "+secret)
	return req
}

// checkStreamOpens sends a request for an event stream and checks only that the stream opens
// and hangs up.
func checkStreamOpens(t *testing.T, a *testAPI, req *http.Request) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := a.client.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Errorf("stream: %d %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// fakeClock is a clock a test moves by hand.
type fakeClock struct{ now atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.now.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

// Now returns the clock's time.
func (c *fakeClock) Now() time.Time { return time.Unix(0, c.now.Load()).UTC() }

// Advance moves the clock forward.
func (c *fakeClock) Advance(d time.Duration) { c.now.Add(int64(d)) }

// TestRevocation checks that a revoked token gets 401: at once when revoked through the API,
// even while the authenticator has it cached, and within the cache's lifetime when revoked in
// the database behind the service's back (as `patronus token revoke` does).
func TestRevocation(t *testing.T) {
	clock := newFakeClock()
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		ctx := context.Background()
		tokens := map[string]string{}
		ids := map[string]int64{}
		for _, name := range []string{"api", "database"} {
			tok, secret, err := a.store.Tokens().Create(ctx, "revoke-"+name, storage.RoleOperator)
			if err != nil {
				t.Fatal(err)
			}
			tokens[name], ids[name] = secret, tok.ID
			// Cached by a first use.
			a.do(http.MethodGet, "/api/v1/sites", secret, nil)
		}

		a.do(http.MethodDelete, "/api/v1/tokens/"+strconv.FormatInt(ids["api"], 10), a.admin, nil)
		a.do(http.MethodGet, "/api/v1/sites", tokens["api"], nil).problem(t, http.StatusUnauthorized)

		if _, err := a.store.Tokens().Revoke(ctx, ids["database"]); err != nil {
			t.Fatal(err)
		}
		clock.Advance(authCacheTTL)
		p := a.do(http.MethodGet, "/api/v1/sites", tokens["database"], nil).problem(t, http.StatusUnauthorized)
		if p.Type != problemTypeBase+"unauthenticated" {
			t.Errorf("problem type %q", p.Type)
		}
		// The other tokens are looked up again and still work.
		a.do(http.MethodGet, "/api/v1/sites", a.viewer, nil)
	}, apiOption{server: func(s *Server) { s.auth.now = clock.Now }})
}
