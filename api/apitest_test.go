package api

// The shared test harness. Every API test drives a real Server over HTTP on a loopback port
// through it; every response it sees is checked against openapi.yaml (status, headers and body),
// and every request a test means to be valid is checked too, so the suite as a whole is the
// contract test.
//
//	forEachDialect(t, func(t *testing.T, a *testAPI) {
//		fx := a.seed()
//		r := a.do(http.GET, "/api/v1/sites/"+fx.site.ID, a.viewer, nil)
//		site := decodeAs[apigen.Site](t, r, http.StatusOK)
//	})

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	patronus "github.com/patronus-sdwan/patronus"
	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// testAdminToken is the configured PATRONUS_ADMIN_TOKEN of every test server.
const testAdminToken = "test-admin-token-0123456789abcdef0123456789"

// testSpec is openapi.yaml loaded once for validating requests and responses in tests.
var testSpec = sync.OnceValues(func() (*openapi3.T, error) {
	registerFormats.Do(defineFormats) // the uuid, ipv4 and ipv6 formats, as the server checks them
	doc, err := openapi3.NewLoader().LoadFromData(patronus.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("load openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("validate openapi.yaml: %w", err)
	}
	doc.Servers = nil // match requests to any host: the test servers listen on random ports
	return doc, nil
})

// testSpecRouter finds the spec operation of a request.
var testSpecRouter = sync.OnceValues(func() (routers.Router, error) {
	doc, err := testSpec()
	if err != nil {
		return nil, err
	}
	return legacy.NewRouter(doc)
})

// specRoute returns the spec operation of req and its path parameters, or fails the test.
func specRoute(t testing.TB, req *http.Request) (*routers.Route, map[string]string) {
	t.Helper()
	router, err := testSpecRouter()
	if err != nil {
		t.Fatal(err)
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s is not an operation of openapi.yaml: %v", req.Method, req.URL.Path, err)
	}
	return route, params
}

// recorder stands in for the event sink and the cache invalidator.
type recorder struct {
	mu          sync.Mutex
	events      []event
	invalidated []int64
}

// event is one published event, its data as a client would decode it.
type event struct {
	Type string
	Data map[string]any
}

func (r *recorder) publish(eventType string, data any) {
	raw, err := json.Marshal(data)
	var m map[string]any
	if err == nil {
		err = json.Unmarshal(raw, &m)
	}
	if err != nil {
		m = map[string]any{"unencodable": err.Error()}
	}
	r.mu.Lock()
	r.events = append(r.events, event{Type: eventType, Data: m})
	r.mu.Unlock()
}

// InvalidatePaths implements PathInvalidator.
func (r *recorder) InvalidatePaths(ids []int64) {
	r.mu.Lock()
	r.invalidated = append(r.invalidated, ids...)
	r.mu.Unlock()
}

// takeEvents returns the events published since the last call.
func (r *recorder) takeEvents() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

// takeInvalidated returns the path ids invalidated since the last call.
func (r *recorder) takeInvalidated() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := r.invalidated
	r.invalidated = nil
	return ids
}

// syncBuffer collects the server's log lines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testAPI is a Server on a fresh database, listening on a loopback port, with a bearer token
// for each role.
type testAPI struct {
	t         *testing.T
	dialect   string
	db        *storage.DB
	store     *storage.Store
	srv       *Server
	baseURL   string
	client    *http.Client
	collector *collector.Collector
	rec       *recorder
	logs      *syncBuffer
	// Secrets of stored tokens named test-viewer, test-operator and test-admin.
	viewer, operator, admin string
	seq                     atomic.Int64
}

// apiOption adjusts a test server before it starts serving.
type apiOption struct {
	config func(*Config)
	server func(*Server)
}

// withConfig changes the server's configuration.
func withConfig(f func(*Config)) apiOption { return apiOption{config: f} }

// newTestAPI starts a Server on a fresh, migrated database of the dialect. The server has a
// real collector, records events and invalidations, logs into a buffer, and accepts
// testAdminToken; everything stops when the test ends.
func newTestAPI(t *testing.T, dialect string, opts ...apiOption) *testAPI {
	t.Helper()
	return newTestAPIOn(t, storagetest.Open(t, dialect), opts...)
}

// newTestAPIOn is newTestAPI on a database opened already (a replica of another test server).
func newTestAPIOn(t *testing.T, db *storage.DB, opts ...apiOption) *testAPI {
	t.Helper()
	dialect := db.Dialect
	a := &testAPI{
		t: t, dialect: dialect, db: db, store: storage.NewStore(db), rec: &recorder{}, logs: &syncBuffer{},
		collector: collector.New(collector.Config{Logger: slog.New(slog.DiscardHandler)}),
	}
	cfg := Config{
		DB: db, AdminToken: testAdminToken, Version: "test",
		Logger:    slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Collector: a.collector, Publish: a.rec.publish, Invalidator: a.rec,
		// The suites send many requests without a token on purpose; authguard_test.go tests
		// the limit.
		Auth: AuthLimits{FailuresPerMinute: 1_000_000},
	}
	for _, o := range opts {
		if o.config != nil {
			o.config(&cfg)
		}
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	t.Cleanup(srv.Close)
	a.srv = srv
	for _, o := range opts {
		if o.server != nil {
			o.server(srv)
		}
	}
	ctx := context.Background()
	for _, tok := range []struct {
		secret *string
		role   string
	}{{&a.viewer, storage.RoleViewer}, {&a.operator, storage.RoleOperator}, {&a.admin, storage.RoleAdmin}} {
		// Replicas share a database, and live token names are unique: the first server's tokens
		// are test-<role>, the next ones' test-<role>-2 and so on.
		_, secret, err := a.store.Tokens().Create(ctx, "test-"+tok.role, tok.role)
		for n := 2; errors.Is(err, storage.ErrConflict) && n < 100; n++ {
			_, secret, err = a.store.Tokens().Create(ctx, fmt.Sprintf("test-%s-%d", tok.role, n), tok.role)
		}
		if err != nil {
			t.Fatalf("create %s token: %v", tok.role, err)
		}
		*tok.secret = secret
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	transport := &http.Transport{MaxIdleConnsPerHost: 4}
	a.baseURL = "http://" + ln.Addr().String()
	a.client = &http.Client{Transport: transport, Timeout: 30 * time.Second}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		transport.CloseIdleConnections()
		if err := hs.Shutdown(ctx); err != nil {
			t.Errorf("shut the test server down: %v", err)
		}
		if err := <-served; err != http.ErrServerClosed {
			t.Errorf("serve: %v", err)
		}
	})
	return a
}

// forEachDialect runs fn as a subtest on every inventory backend, each with its own server.
func forEachDialect(t *testing.T, fn func(t *testing.T, a *testAPI), opts ...apiOption) {
	t.Helper()
	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			fn(t, newTestAPI(t, dialect, opts...))
		})
	}
}

// name returns a name no other call on this server returns.
func (a *testAPI) name(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, a.seq.Add(1))
}

// address returns an IPv4 address no other call on this server returns: endpoint addresses
// are unique.
func (a *testAPI) address() string {
	n := a.seq.Add(1)
	return fmt.Sprintf("203.%d.%d.%d", 1+n>>16&255, n>>8&255, n&255)
}

// address6 is address for IPv6.
func (a *testAPI) address6() string {
	return fmt.Sprintf("2001:db8::%x", a.seq.Add(1))
}

// apiResponse is a response read whole.
type apiResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r apiResponse) String() string {
	body := string(r.Body)
	if len(body) > 600 {
		body = body[:600] + "..."
	}
	return fmt.Sprintf("%d %s", r.Status, body)
}

// decodeAs checks the status and decodes the JSON body.
func decodeAs[T any](t testing.TB, r apiResponse, status int) T {
	t.Helper()
	var v T
	if r.Status != status {
		t.Fatalf("status = %s, want %d", r, status)
	}
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, r, err)
	}
	return v
}

// problem checks that r is a problem+json of the status that carries the response's request
// id, and returns it.
func (r apiResponse) problem(t testing.TB, status int) Problem {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %s, want %d", r, status)
	}
	if ct := r.Header.Get("Content-Type"); ct != problemContentType {
		t.Fatalf("Content-Type = %q, want %s", ct, problemContentType)
	}
	var p Problem
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("decode problem from %s: %v", r, err)
	}
	if p.Status != status || p.RequestID == "" || p.RequestID != r.Header.Get(headerRequestID) {
		t.Fatalf("problem status %d request_id %q, header X-Request-ID %q; want %d and equal ids",
			p.Status, p.RequestID, r.Header.Get(headerRequestID), status)
	}
	return p
}

// fields lists the fields a problem names.
func (p Problem) fields() []string {
	var names []string
	for _, f := range p.Errors {
		names = append(names, f.Field)
	}
	return names
}

// newRequest builds a request to the test server. token is a bearer secret ("" sends none);
// body is nil (none), a string or []byte (sent as is) or a value sent as JSON.
func (a *testAPI) newRequest(method, path, token string, body any) *http.Request {
	a.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			a.t.Fatalf("encode body: %v", err)
		}
	}
	var rd io.Reader
	if raw != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, a.baseURL+path, rd)
	if err != nil {
		a.t.Fatalf("new request: %v", err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// do sends a request the spec must accept and returns the response, which must match the spec.
func (a *testAPI) do(method, path, token string, body any) apiResponse {
	a.t.Helper()
	return a.send(a.newRequest(method, path, token, body), true)
}

// send sends req. validRequest says whether the spec must accept the request; the response
// must match the spec either way.
func (a *testAPI) send(req *http.Request, validRequest bool) apiResponse {
	a.t.Helper()
	reqBody := requestBody(a.t, req)
	if validRequest {
		checkRequest(a.t, req, reqBody)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	out := apiResponse{Status: resp.StatusCode, Header: resp.Header, Body: body}
	checkResponse(a.t, req, out)
	return out
}

// requestBody returns the bytes req will send, leaving req able to send them.
func requestBody(t testing.TB, req *http.Request) []byte {
	t.Helper()
	if req.GetBody == nil {
		if req.Body != nil && req.Body != http.NoBody {
			t.Fatalf("%s %s: the body cannot be replayed for validation", req.Method, req.URL.Path)
		}
		return nil
	}
	rd, err := req.GetBody()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkRequest fails the test when the spec would reject the request: a test bug, or a spec
// that refuses what a client must be able to send.
func checkRequest(t testing.TB, req *http.Request, body []byte) {
	t.Helper()
	clone := req.Clone(context.Background())
	clone.Body = io.NopCloser(bytes.NewReader(body))
	clone.GetBody = nil
	route, params := specRoute(t, clone)
	err := openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: clone, PathParams: params, Route: route,
		Options: &openapi3filter.Options{
			MultiError: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, SkipSettingDefaults: true,
		},
	})
	if err != nil {
		t.Errorf("%s %s: the spec rejects a request the test means to be valid: %v", req.Method, req.URL.Path, err)
	}
}

// checkResponse fails the test when the response is not one the spec documents for the
// request: an undocumented status, a missing or malformed header, a body off its schema. Every
// response must carry X-Request-ID, every error must be a problem with the same request id,
// and a 204 has no body.
func checkResponse(t testing.TB, req *http.Request, r apiResponse) {
	t.Helper()
	what := fmt.Sprintf("%s %s -> %d", req.Method, req.URL.RequestURI(), r.Status)
	if r.Header.Get(headerRequestID) == "" {
		t.Errorf("%s: no X-Request-ID", what)
	}
	route, params := specRoute(t, req)
	err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 r.Status,
		Header:                 r.Header,
		Body:                   io.NopCloser(bytes.NewReader(r.Body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
	if err != nil {
		t.Errorf("%s: the response breaks the spec: %v\nbody: %s", what, err, r)
	}
	if r.Status == http.StatusNoContent && len(r.Body) > 0 {
		t.Errorf("%s: a 204 with a body: %s", what, r.Body)
	}
	// The spec makes every error a problem but readiness's 503, which answers its own body.
	if r.Status >= 400 && r.Header.Get("Content-Type") == problemContentType {
		var p Problem
		if err := json.Unmarshal(r.Body, &p); err != nil || p.RequestID != r.Header.Get(headerRequestID) {
			t.Errorf("%s: problem request_id %q (err %v), header %q", what, p.RequestID, err, r.Header.Get(headerRequestID))
		}
	}
}

// fixture is one of each resource, stored directly: site holds endpoint, site2 holds
// endpoint2, path joins them and policy prefers path. token is a viewer token of its own.
type fixture struct {
	site, site2         storage.Site
	endpoint, endpoint2 storage.Endpoint
	path                storage.Path
	policy              storage.Policy
	token               storage.APIToken
}

// seed stores a fresh fixture with names no other fixture uses.
func (a *testAPI) seed() fixture {
	a.t.Helper()
	ctx := context.Background()
	var fx fixture
	fx.site = storage.Site{Name: a.name("site"), Location: "Paris, FR"}
	fx.site2 = storage.Site{Name: a.name("site"), Location: "Berlin, DE"}
	for _, s := range []*storage.Site{&fx.site, &fx.site2} {
		if err := a.store.Sites().Create(ctx, s); err != nil {
			a.t.Fatalf("seed site: %v", err)
		}
	}
	fx.endpoint = storage.Endpoint{SiteID: fx.site.ID, Name: a.name("wan"), Interface: "eth0", Address: a.address(), WANKind: "fiber"}
	fx.endpoint2 = storage.Endpoint{SiteID: fx.site2.ID, Name: a.name("wan"), Interface: "eth1", Address: a.address6(), WANKind: "mpls"}
	for _, e := range []*storage.Endpoint{&fx.endpoint, &fx.endpoint2} {
		if err := a.store.Endpoints().Create(ctx, e); err != nil {
			a.t.Fatalf("seed endpoint: %v", err)
		}
	}
	fx.path = storage.Path{Name: a.name("path"), LocalEndpointID: fx.endpoint.ID, RemoteEndpointID: fx.endpoint2.ID, Status: storage.PathUp}
	if err := a.store.Paths().Create(ctx, &fx.path); err != nil {
		a.t.Fatalf("seed path: %v", err)
	}
	proto := 17
	fx.policy = storage.Policy{
		Name: a.name("policy"), Priority: 10, Enabled: true, Protocol: &proto, DstCIDR: "10.20.0.0/16",
		DstPorts: []storage.PortRange{{From: 5060, To: 5061}}, ActionType: storage.ActionPreferPath, PathID: &fx.path.ID,
	}
	if err := a.store.Policies().Create(ctx, &fx.policy); err != nil {
		a.t.Fatalf("seed policy: %v", err)
	}
	tok, _, err := a.store.Tokens().Create(ctx, a.name("token"), storage.RoleViewer)
	if err != nil {
		a.t.Fatalf("seed token: %v", err)
	}
	fx.token = tok
	if err := a.srv.ReloadPolicies(ctx); err != nil {
		a.t.Fatalf("reload policies: %v", err)
	}
	return fx
}

// snapshotTables are the tables a failed request must leave as they were.
var snapshotTables = []string{"sites", "endpoints", "paths", "path_metrics", "policies", "changes", "api_tokens"}

// snapshot renders every row of the snapshot tables.
func (a *testAPI) snapshot() map[string][]string {
	a.t.Helper()
	snap := map[string][]string{}
	for _, table := range snapshotTables {
		rows, err := a.db.SQL().Query("SELECT * FROM " + table + " ORDER BY 1")
		if err != nil {
			a.t.Fatalf("snapshot %s: %v", table, err)
		}
		cols, err := rows.Columns()
		if err != nil {
			a.t.Fatal(err)
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		lines := []string{}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				a.t.Fatal(err)
			}
			var b strings.Builder
			for i, v := range vals {
				if table == "api_tokens" && cols[i] == "last_used_at" {
					continue // any authenticated request moves it, refused or not
				}
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				fmt.Fprintf(&b, "%s=%v ", cols[i], v)
			}
			lines = append(lines, b.String())
		}
		if err := rows.Err(); err != nil {
			a.t.Fatal(err)
		}
		rows.Close()
		snap[table] = lines
	}
	return snap
}

// diffSnapshots describes how two snapshots differ; "" when they do not.
func diffSnapshots(before, after map[string][]string) string {
	var b strings.Builder
	for _, table := range snapshotTables {
		if !slices.Equal(before[table], after[table]) {
			fmt.Fprintf(&b, "%s: %d rows before, %d after\n  before: %q\n  after:  %q\n",
				table, len(before[table]), len(after[table]), before[table], after[table])
		}
	}
	return b.String()
}
