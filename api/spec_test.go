package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/api/client"
)

// loadSpec parses and validates openapi.yaml, examples included.
func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	data, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatalf("read openapi.yaml: %v", err)
	}
	spec, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	if err := spec.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("validate openapi.yaml: %v", err)
	}
	return spec
}

// specOperation is one operation of the spec with where it lives.
type specOperation struct {
	method, path string
	op           *openapi3.Operation
}

func specOperations(spec *openapi3.T) []specOperation {
	var ops []specOperation
	for _, path := range spec.Paths.InMatchingOrder() {
		for method, op := range spec.Paths.Value(path).Operations() {
			ops = append(ops, specOperation{method: method, path: path, op: op})
		}
	}
	return ops
}

// isPublic reports whether the operation opts out of the global bearer requirement.
func isPublic(op *openapi3.Operation) bool {
	return op.Security != nil && len(*op.Security) == 0
}

func TestSpecIsValid(t *testing.T) {
	spec := loadSpec(t)
	if len(spec.Security) != 1 || spec.Security[0]["bearerAuth"] == nil {
		t.Errorf("global security = %v, want bearerAuth", spec.Security)
	}
	if len(specOperations(spec)) == 0 {
		t.Fatal("the spec has no operations")
	}
}

func TestSpecOperationsAreComplete(t *testing.T) {
	spec := loadSpec(t)
	seenIDs := map[string]string{}
	roles := []string{"viewer", "operator", "admin"}
	for _, o := range specOperations(spec) {
		name := o.method + " " + o.path
		t.Run(name, func(t *testing.T) {
			op := o.op
			if op.OperationID == "" {
				t.Fatal("no operationId")
			}
			if first := op.OperationID[:1]; first != strings.ToLower(first) {
				t.Errorf("operationId %q is not lowerCamel", op.OperationID)
			}
			if prev, dup := seenIDs[op.OperationID]; dup {
				t.Errorf("operationId %q also used by %s", op.OperationID, prev)
			}
			seenIDs[op.OperationID] = name
			if op.Summary == "" {
				t.Error("no summary")
			}
			if len(op.Tags) == 0 {
				t.Error("no tags")
			}
			role, hasRole := op.Extensions["x-required-role"].(string)
			switch {
			case isPublic(op) && hasRole:
				t.Errorf("public operation also has x-required-role %q", role)
			case !isPublic(op) && !slices.Contains(roles, role):
				t.Errorf("x-required-role = %q, want one of %v (or security: [])", role, roles)
			case !isPublic(op) && !strings.Contains(strings.Join(strings.Fields(op.Description), " "), "Minimum role "+role+"."):
				t.Errorf("description does not state %q", "Minimum role "+role)
			}
			checkResponses(t, op, role)
			if op.RequestBody != nil {
				body := op.RequestBody.Value
				mt := body.Content.Get("application/json")
				if mt == nil || len(body.Content) != 1 {
					t.Fatalf("request body content = %v, want only application/json", body.Content)
				}
				if mt.Example == nil && len(mt.Examples) == 0 {
					t.Error("request body has no example")
				}
				if ap := mt.Schema.Value.AdditionalProperties.Has; ap == nil || *ap {
					t.Error("request body schema does not set additionalProperties: false")
				}
				for _, code := range []int{http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity} {
					if op.Responses.Status(code) == nil {
						t.Errorf("has a body but no %d response", code)
					}
				}
			}
		})
	}
}

// checkResponses asserts the responses an operation must document: a success, 500 everywhere,
// 401 when it needs a token, 403 when it needs more than viewer, 400 when it takes parameters or
// a body, 404 when its path names a resource, and problem+json with X-Request-ID on every error.
func checkResponses(t *testing.T, op *openapi3.Operation, role string) {
	t.Helper()
	var success bool
	for code, ref := range op.Responses.Map() {
		resp := ref.Value
		if resp.Headers["X-Request-ID"] == nil {
			t.Errorf("response %s has no X-Request-ID header", code)
		}
		if strings.HasPrefix(code, "2") {
			success = true
			continue
		}
		mt := resp.Content.Get("application/problem+json")
		if mt == nil || len(resp.Content) != 1 {
			t.Errorf("response %s is not only application/problem+json", code)
			continue
		}
		// Readiness adds its checks to the problem (ReadinessProblem is allOf Problem).
		if mt.Schema.Ref != "#/components/schemas/Problem" && !(op.OperationID == "getReadiness" && mt.Schema.Ref == "#/components/schemas/ReadinessProblem") {
			t.Errorf("response %s schema = %q, want Problem", code, mt.Schema.Ref)
		}
		if mt.Example == nil && len(mt.Examples) == 0 {
			t.Errorf("response %s has no example", code)
		}
	}
	if !success {
		t.Error("no 2xx response")
	}
	want := []int{http.StatusInternalServerError}
	if !isPublic(op) {
		want = append(want, http.StatusUnauthorized)
		if op.Responses.Status(http.StatusUnauthorized).Value.Headers["WWW-Authenticate"] == nil {
			t.Error("401 has no WWW-Authenticate header")
		}
	}
	if role == "operator" || role == "admin" {
		want = append(want, http.StatusForbidden)
	} else if op.Responses.Status(http.StatusForbidden) != nil {
		t.Error("403 documented on an operation every token may call")
	}
	for _, p := range op.Parameters {
		if p.Value.In == openapi3.ParameterInPath && p.Value.Name != "name" {
			want = append(want, http.StatusNotFound)
		}
	}
	// Every operation refuses an unknown query parameter.
	want = append(want, http.StatusBadRequest)
	for _, code := range want {
		if op.Responses.Status(code) == nil {
			t.Errorf("no %d response", code)
		}
	}
}

func TestSpecPathParametersAreTyped(t *testing.T) {
	spec := loadSpec(t)
	want := map[string][2]string{ // name -> type, format
		"site_id":     {"string", "uuid"},
		"endpoint_id": {"string", "uuid"},
		"path_id":     {"integer", "int64"},
		"policy_id":   {"integer", "int64"},
		"token_id":    {"integer", "int64"},
	}
	for _, path := range spec.Paths.InMatchingOrder() {
		item := spec.Paths.Value(path)
		params := slices.Clone(item.Parameters)
		for _, op := range item.Operations() {
			params = append(params, op.Parameters...)
		}
		for _, p := range params {
			tf, ok := want[p.Value.Name]
			if !ok || p.Value.In == openapi3.ParameterInHeader {
				continue
			}
			s := p.Value.Schema.Value
			if !s.Type.Is(tf[0]) || s.Format != tf[1] {
				t.Errorf("%s: %s is %v/%s, want %s/%s", path, p.Value.Name, s.Type, s.Format, tf[0], tf[1])
			}
			if tf[0] == "integer" && (s.Min == nil || *s.Min != 1) {
				t.Errorf("%s: %s has no minimum 1", path, p.Value.Name)
			}
		}
	}
}

// ---- generated server and client ----

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// colonServer answers the site operations that share the /api/v1/sites prefix with the
// batchDelete route; every other operation is left unimplemented (a call would panic).
type colonServer struct {
	apigen.ServerInterface
	called []string
}

func (s *colonServer) ListSites(c *gin.Context, _ apigen.ListSitesParams) {
	s.called = append(s.called, "ListSites "+c.FullPath())
	c.JSON(http.StatusOK, apigen.SiteList{Items: []apigen.Site{}})
}

func (s *colonServer) CreateSite(c *gin.Context) {
	s.called = append(s.called, "CreateSite "+c.FullPath())
	c.Status(http.StatusCreated)
}

func (s *colonServer) GetSite(c *gin.Context, id apigen.SiteID) {
	s.called = append(s.called, "GetSite "+c.FullPath()+" "+id.String())
	c.Status(http.StatusOK)
}

func (s *colonServer) BatchDeleteSites(c *gin.Context) {
	s.called = append(s.called, "BatchDeleteSites "+c.FullPath())
	var body apigen.SiteBatchDelete
	if err := c.ShouldBindJSON(&body); err != nil {
		c.Status(http.StatusBadRequest)
		return
	}
	c.JSON(http.StatusOK, apigen.SiteBatchDeletionResult{
		Success: true, Message: "dry run", DryRun: body.DryRun != nil && *body.DryRun,
		Sites: []apigen.SiteDeletionResult{}, PoliciesUpdated: []int64{},
	})
}

// TestColonPathRoutes checks that the generated gin registration of /api/v1/sites:batchDelete
// (oapi-codegen escapes the colon as `\:`) is a literal route beside /api/v1/sites/:site_id.
func TestColonPathRoutes(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	srv := &colonServer{}
	apigen.RegisterHandlers(r, srv)
	id := uuid.New()
	cases := []struct{ method, path, want string }{
		{http.MethodPost, "/api/v1/sites:batchDelete", "BatchDeleteSites /api/v1/sites:batchDelete"},
		{http.MethodPost, "/api/v1/sites%3AbatchDelete", "BatchDeleteSites /api/v1/sites:batchDelete"},
		{http.MethodGet, "/api/v1/sites", "ListSites /api/v1/sites"},
		{http.MethodPost, "/api/v1/sites", "CreateSite /api/v1/sites"},
		{http.MethodGet, "/api/v1/sites/" + id.String(), "GetSite /api/v1/sites/:site_id " + id.String()},
		{http.MethodPost, "/api/v1/sites:batchCreate", ""},
		{http.MethodGet, "/api/v1/sites:batchDelete", ""},
	}
	for _, tc := range cases {
		srv.called = nil
		rec := serve(r, httptest.NewRequest(tc.method, tc.path, strings.NewReader(`{"ids":["`+id.String()+`"]}`)))
		var got string
		if len(srv.called) == 1 {
			got = srv.called[0]
		}
		if got != tc.want || (tc.want == "" && rec.Code < 400) {
			t.Errorf("%s %s reached %q (status %d), want %q", tc.method, tc.path, srv.called, rec.Code, tc.want)
		}
	}
}

// specPathParam matches a {parameter} of a spec path.
var specPathParam = regexp.MustCompile(`\{([^}/]+)\}`)

// specPathAsGinRoute turns /a/{b}/c into /a/:b/c, the form gin reports its routes in.
func specPathAsGinRoute(specPath string) string {
	return specPathParam.ReplaceAllString(specPath, ":$1")
}

// TestGeneratedRoutesMatchSpec checks that the generated registration has exactly one gin route
// per spec operation, the colon path included.
func TestGeneratedRoutesMatchSpec(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	apigen.RegisterHandlers(r, &colonServer{})
	serve(r, httptest.NewRequest(http.MethodGet, "/", nil)) // gin unescapes `\:` on first use
	var routes []string
	for _, rt := range r.Routes() {
		routes = append(routes, rt.Method+" "+rt.Path)
	}
	var want []string
	for _, o := range specOperations(loadSpec(t)) {
		want = append(want, o.method+" "+specPathAsGinRoute(o.path))
	}
	slices.Sort(routes)
	slices.Sort(want)
	if !slices.Equal(routes, want) {
		t.Errorf("gin routes:\n%s\nspec operations:\n%s", strings.Join(routes, "\n"), strings.Join(want, "\n"))
	}
}

// TestClientCallsColonPath drives the generated client against the generated server routes.
func TestClientCallsColonPath(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	srv := &colonServer{}
	apigen.RegisterHandlers(r, srv)
	ts := httptest.NewServer(r)
	t.Cleanup(ts.Close)
	c, err := client.NewClientWithResponses(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	dryRun := true
	resp, err := c.BatchDeleteSitesWithResponse(context.Background(),
		client.SiteBatchDelete{IDs: []uuid.UUID{uuid.New()}, DryRun: &dryRun})
	if err != nil {
		t.Fatalf("batch delete: %v", err)
	}
	if resp.StatusCode() != http.StatusOK || resp.JSON200 == nil || !resp.JSON200.DryRun {
		t.Fatalf("batch delete = %d %s, want 200 with dry_run true", resp.StatusCode(), resp.Body)
	}
	if !slices.Equal(srv.called, []string{"BatchDeleteSites /api/v1/sites:batchDelete"}) {
		t.Errorf("server saw %q", srv.called)
	}
}

// ---- documentation page ----

func init() {
	// The documentation page's media types, which kin-openapi does not decode by default.
	for _, ct := range []string{"text/html", "text/css", "text/javascript", "application/javascript"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
	}
	openapi3filter.RegisterBodyDecoder("image/png", openapi3filter.FileBodyDecoder)
	// The spec is a YAML text (format: binary), not a YAML value to check as an object.
	openapi3filter.RegisterBodyDecoder("application/yaml", openapi3filter.FileBodyDecoder)
}

// specRouter finds the spec operation of a request, for validating responses against the spec.
func specRouter(t *testing.T) routers.Router {
	t.Helper()
	spec := loadSpec(t)
	spec.Servers = nil
	router, err := legacy.NewRouter(spec)
	if err != nil {
		t.Fatalf("spec router: %v", err)
	}
	return router
}

// validateResponse fails the test when rec is not a response the spec allows for req.
func validateResponse(t *testing.T, router routers.Router, req *http.Request, rec *httptest.ResponseRecorder) {
	t.Helper()
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s: not in the spec: %v", req.Method, req.URL.Path, err)
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 rec.Code,
		Header:                 rec.Header(),
		Body:                   io.NopCloser(bytes.NewReader(rec.Body.Bytes())),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		t.Errorf("%s %s -> %d: response breaks the spec: %v", req.Method, req.URL.Path, rec.Code, err)
	}
}

// docsRouter mounts DocsHandler the way the server does, behind the request-id middleware.
func docsRouter() *gin.Engine {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.Use(requestIDMiddleware(slog.New(slog.DiscardHandler)))
	docs := DocsHandler("/openapi.yaml")
	r.GET("/docs", docs)
	r.GET("/docs/:asset", docs)
	return r
}

// pageRefs matches the src and href attributes of an HTML page.
var pageRefs = regexp.MustCompile(`(?:src|href)="([^"]*)"`)

func TestDocsPageRendersTheSpecOffline(t *testing.T) {
	r, router := docsRouter(), specRouter(t)
	req := httptest.NewRequest(http.MethodGet, "/docs", nil)
	rec := serve(r, req)
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs = %d %q, want 200 text/html", rec.Code, rec.Header().Get("Content-Type"))
	}
	validateResponse(t, router, req, rec)
	page := rec.Body.String()
	if !strings.Contains(page, `"swaggerJsonUrl":"/openapi.yaml"`) {
		t.Error("the page does not load /openapi.yaml")
	}
	refs := pageRefs.FindAllStringSubmatch(page, -1)
	if len(refs) < 3 {
		t.Fatalf("the page references %d assets, want the Swagger UI script, preset and stylesheet", len(refs))
	}
	var scripts int
	for _, ref := range refs {
		asset, ok := strings.CutPrefix(ref[1], "/docs/")
		if !ok {
			t.Errorf("the page references %q, which is not served by /docs/ (offline use)", ref[1])
			continue
		}
		req := httptest.NewRequest(http.MethodGet, ref[1], nil)
		rec := serve(r, req)
		if rec.Code != http.StatusOK || rec.Body.Len() == 0 {
			t.Errorf("GET %s = %d with %d bytes, want 200 with content", ref[1], rec.Code, rec.Body.Len())
			continue
		}
		validateResponse(t, router, req, rec)
		if strings.HasSuffix(asset, ".js") {
			scripts++
		}
	}
	if scripts < 2 {
		t.Errorf("the page loads %d local scripts, want the Swagger UI bundle and preset", scripts)
	}
}

func TestDocsAssetIsServedLocally(t *testing.T) {
	r := docsRouter()
	plain := serve(r, httptest.NewRequest(http.MethodGet, "/docs/swagger-ui-bundle.js", nil))
	ct := plain.Header().Get("Content-Type")
	if plain.Code != http.StatusOK || !strings.Contains(ct, "javascript") {
		t.Fatalf("GET bundle = %d %q, want 200 and a JavaScript media type", plain.Code, ct)
	}
	if !strings.Contains(plain.Body.String(), "SwaggerUIBundle") || plain.Body.Len() < 500_000 {
		t.Fatalf("the bundle (%d bytes) is not Swagger UI", plain.Body.Len())
	}

	req := httptest.NewRequest(http.MethodGet, "/docs/swagger-ui-bundle.js", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	zipped := serve(r, req)
	if zipped.Header().Get("Content-Encoding") != "gzip" || zipped.Body.Len() >= plain.Body.Len() {
		t.Fatalf("with Accept-Encoding gzip: encoding %q, %d bytes; want gzip smaller than %d",
			zipped.Header().Get("Content-Encoding"), zipped.Body.Len(), plain.Body.Len())
	}
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatalf("gzip body: %v", err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(unzipped, plain.Body.Bytes()) {
		t.Fatalf("the gzip body does not decompress to the plain one (err %v)", err)
	}
}

func TestDocsUnknownAssetIsNotFoundProblem(t *testing.T) {
	r, router := docsRouter(), specRouter(t)
	for _, asset := range []string{"nope.js", "..", "embed.go"} {
		req := httptest.NewRequest(http.MethodGet, "/docs/"+asset, nil)
		req.Header.Set("X-Request-ID", "docs-test-1")
		rec := serve(r, req)
		var p Problem
		if rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != problemContentType {
			t.Errorf("GET /docs/%s = %d %q, want 404 problem+json", asset, rec.Code, rec.Header().Get("Content-Type"))
			continue
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.RequestID != "docs-test-1" {
			t.Errorf("GET /docs/%s: problem %+v (err %v), want request_id docs-test-1", asset, p, err)
		}
		if asset != ".." {
			validateResponse(t, router, req, rec)
		}
	}
}
