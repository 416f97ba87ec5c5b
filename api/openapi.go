package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	patronus "github.com/patronus-sdwan/patronus"
)

// operation is one operation of openapi.yaml as the router sees it.
type operation struct {
	method   string
	specPath string // /api/v1/sites/{site_id}
	ginPath  string // /api/v1/sites/:site_id
	role     string // x-required-role; "" for public operations
	op       *openapi3.Operation
	item     *openapi3.PathItem
	// route is what the validation middleware checks requests against: the operation
	// without security requirements, which the auth middleware enforces.
	route *routers.Route
	// query holds the names of the query parameters the operation takes; any other is a 400.
	query map[string]bool
}

// contract is the loaded spec and its operations by method and gin path.
type contract struct {
	spec *openapi3.T
	ops  map[string]*operation // "GET /api/v1/sites/:site_id"
}

// loadContract parses openapi.yaml and indexes its operations. The role each route needs comes
// from the spec's x-required-role, so the spec and the enforcement cannot drift apart.
func loadContract() (*contract, error) {
	registerFormats.Do(defineFormats)
	loader := openapi3.NewLoader()
	spec, err := loader.LoadFromData(patronus.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("load openapi.yaml: %w", err)
	}
	if err := spec.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("validate openapi.yaml: %w", err)
	}
	// Requests are matched by gin, not by server URL.
	spec.Servers = nil
	ct := &contract{spec: spec, ops: map[string]*operation{}}
	for specPath, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			role := ""
			if raw, ok := op.Extensions["x-required-role"]; ok {
				role, _ = raw.(string)
			}
			o := &operation{method: method, specPath: specPath, ginPath: ginPath(specPath), role: role, op: op, item: item,
				query: map[string]bool{}}
			for _, p := range append(append(openapi3.Parameters{}, item.Parameters...), op.Parameters...) {
				if p.Value != nil && p.Value.In == openapi3.ParameterInQuery {
					o.query[p.Value.Name] = true
				}
			}
			// kin-openapi checks security requirements by reading the whole body into memory
			// for its AuthenticationFunc, even a no-op one: a second copy of every body, which
			// was 14% of the CPU time of a 10,000-report ingest.
			unsecured := *op
			unsecured.Security = &openapi3.SecurityRequirements{}
			o.route = &routers.Route{Spec: spec, Path: specPath, PathItem: item, Method: method, Operation: &unsecured}
			ct.ops[method+" "+o.ginPath] = o
		}
	}
	return ct, nil
}

var registerFormats sync.Once

// defineFormats teaches kin-openapi the string formats the spec uses beyond its built-ins; it
// skips unknown formats silently, which would let a bad id or address through to a handler.
func defineFormats() {
	openapi3.DefineStringFormatValidator("uuid", openapi3.NewCallbackValidator(func(s string) error {
		if _, err := uuid.Parse(s); err != nil || len(s) != 36 {
			return errors.New("not a UUID")
		}
		return nil
	}))
	// The standard ipv4 and ipv6 formats, checked strictly: no zone, no IPv4 under ipv6 unless
	// written as an IPv6 address (::ffff:192.0.2.1), no leading zeros.
	openapi3.DefineStringFormatValidator("ipv4", openapi3.NewCallbackValidator(func(s string) error {
		if a, err := netip.ParseAddr(s); err != nil || !a.Is4() {
			return errors.New("not an IPv4 address")
		}
		return nil
	}))
	openapi3.DefineStringFormatValidator("ipv6", openapi3.NewCallbackValidator(func(s string) error {
		if a, err := netip.ParseAddr(s); err != nil || !a.Is6() || a.Zone() != "" {
			return errors.New("not an IPv6 address without zone")
		}
		return nil
	}))
}

// ginPath turns /a/{b}/c into /a/:b/c.
func ginPath(specPath string) string {
	parts := strings.Split(specPath, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			parts[i] = ":" + p[1:len(p)-1]
		}
	}
	return strings.Join(parts, "/")
}

func (ct *contract) lookup(method, fullPath string) *operation {
	return ct.ops[method+" "+fullPath]
}

// roleOf returns the role a route needs and whether the spec knows the route.
func (ct *contract) roleOf(method, fullPath string) (string, bool) {
	o := ct.lookup(method, fullPath)
	if o == nil {
		return "", false
	}
	return o.role, true
}

// bodyValidatedByHandler lists operations whose body is too large for schema validation; their
// handlers decode and validate it themselves with the same rules, and must refuse the request
// when the middleware found bad parameters (deferredInputError).
var bodyValidatedByHandler = map[string]bool{"ingestTraffic": true}

// validationMiddleware checks parameters and bodies against the spec before the handler runs;
// a violation is a 400 (parameters, malformed JSON) or 422 (body schema) naming each field.
func (ct *contract) validationMiddleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		o := ct.lookup(c.Request.Method, c.FullPath())
		if o == nil {
			c.Next()
			return
		}
		// Every bad parameter and every bad body field is named in one answer: the checks
		// below all run, and their errors are merged.
		var errs []error
		if err := checkQueryNames(c, o); err != nil {
			errs = append(errs, err)
		}
		body, bodyErr := checkJSONBody(c, o)
		if bodyErr != nil {
			errs = append(errs, bodyErr)
		}
		if fields := controlCharParams(c.Request.URL.Query()); len(fields) > 0 {
			errs = append(errs, fieldErrors(errBadRequest, fields))
		}
		params := make(map[string]string, len(c.Params))
		for _, p := range c.Params {
			params[p.Key] = p.Value
		}
		input := &openapi3filter.RequestValidationInput{
			Request:    c.Request,
			PathParams: params,
			Route:      o.route,
			Options: &openapi3filter.Options{
				MultiError:         true,
				AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
				// A body checkJSONBody refused is named once, by it.
				ExcludeRequestBody: bodyValidatedByHandler[o.op.OperationID] || bodyErr != nil,
			},
		}
		if err := openapi3filter.ValidateRequest(c.Request.Context(), input); err != nil {
			errs = append(errs, requestValidationError(err))
		}
		if control := controlCharFields(body); len(control) > 0 {
			errs = append(errs, fieldErrors(errValidation, control))
		}
		if len(errs) > 0 {
			err := mergeInputErrors(errs)
			var ae *apiError
			if bodyValidatedByHandler[o.op.OperationID] && errors.As(err, &ae) && ae.kind == errBadRequest {
				// The handler validates the body: it names these parameters with the body's
				// fields, and refuses the request (deferredInputError).
				c.Set(ctxParamErrors, err)
				c.Next()
				return
			}
			writeError(c, err)
			return
		}
		c.Next()
	}
}

// checkQueryNames refuses query parameters the operation does not take, as unknown body fields
// are refused: a misspelt ?limti=1 would otherwise be ignored without a word.
func checkQueryNames(c *gin.Context, o *operation) error {
	var fields []FieldError
	for name := range c.Request.URL.Query() {
		if !o.query[name] {
			fields = append(fields, FieldError{Field: name, Message: unknownQueryMessage(o)})
		}
	}
	if len(fields) == 0 {
		return nil
	}
	slices.SortFunc(fields, func(a, b FieldError) int { return strings.Compare(a.Field, b.Field) })
	return fieldErrors(errBadRequest, fields)
}

// unknownQueryMessage says which query parameters the operation takes.
func unknownQueryMessage(o *operation) string {
	if len(o.query) == 0 {
		return "unknown query parameter; this operation takes none"
	}
	names := slices.Sorted(maps.Keys(o.query))
	return "unknown query parameter; this operation takes " + strings.Join(names, ", ")
}

// checkJSONBody refuses a required JSON body that is not exactly one JSON value (empty, cut
// short, or followed by more data) with a 400 naming the body. kin-openapi decodes only the
// first value and, when it fills in defaults, hands the handler a re-encoded body, so trailing
// data would otherwise pass unnoticed. The body is read under the size limit, put back, and
// returned (nil when the operation has no JSON body to check).
func checkJSONBody(c *gin.Context, o *operation) ([]byte, error) {
	rb := o.op.RequestBody
	if rb == nil || rb.Value == nil || !rb.Value.Required || bodyValidatedByHandler[o.op.OperationID] {
		return nil, nil
	}
	if mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type")); err != nil || mt != "application/json" {
		return nil, nil // the validator answers 415
	}
	body, err := readBody(c)
	if err != nil {
		return nil, err
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	if !json.Valid(body) {
		msg := "not a single JSON value"
		if len(bytes.TrimSpace(body)) == 0 {
			msg = "empty"
		}
		return nil, fieldErrors(errBadRequest, []FieldError{{Field: "body", Message: "malformed JSON: " + msg}})
	}
	return body, nil
}

// requestValidationError turns kin-openapi's errors into one API error naming the fields.
func requestValidationError(err error) error {
	var fields []FieldError
	kind := errValidation
	var walk func(error)
	walk = func(err error) {
		// A MultiError of RequestErrors, each of which may wrap a MultiError of SchemaErrors:
		// look at the outer layer by type, not with errors.As, which would dig past it.
		if multi, ok := err.(openapi3.MultiError); ok {
			for _, e := range multi {
				walk(e)
			}
			return
		}
		var reqErr *openapi3filter.RequestError
		if !errors.As(err, &reqErr) {
			fields = append(fields, FieldError{Field: "", Message: err.Error()})
			return
		}
		switch {
		case reqErr.Parameter != nil && reqErr.Parameter.In == openapi3.ParameterInHeader && reqErr.Parameter.Name == "Content-Encoding":
			// The spec lists the codings a body may use; another is unsupported, not malformed.
			kind = errUnsupportedMedia
			fields = append(fields, FieldError{Field: reqErr.Parameter.Name, Message: paramMessage(reqErr)})
		case reqErr.Parameter != nil:
			kind = errBadRequest
			fields = append(fields, FieldError{Field: reqErr.Parameter.Name, Message: paramMessage(reqErr)})
		case reqErr.RequestBody != nil:
			var tooLarge *http.MaxBytesError
			var syntax *json.SyntaxError
			var parseErr *openapi3filter.ParseError
			switch {
			case errors.As(reqErr.Err, &tooLarge):
				kind = errTooLarge
				fields = append(fields, FieldError{Field: "body", Message: fmt.Sprintf("over the limit of %d bytes", tooLarge.Limit)})
			case strings.Contains(reqErr.Reason, "header Content-Type has unexpected value"),
				strings.Contains(reqErr.Reason, "unsupported content type"):
				kind = errUnsupportedMedia
				fields = append(fields, FieldError{Field: "Content-Type", Message: "must be application/json"})
			case errors.As(reqErr.Err, &syntax), errors.As(reqErr.Err, &parseErr):
				kind = errBadRequest
				fields = append(fields, FieldError{Field: "body", Message: "malformed JSON: " + rootCause(reqErr.Err)})
			default:
				walkSchema(reqErr.Err, reqErr.Reason, &fields)
			}
		default:
			fields = append(fields, FieldError{Field: "", Message: reqErr.Error()})
		}
	}
	walk(err)
	return fieldErrors(kind, fields)
}

// propertyReason matches kin-openapi's reasons for unknown and missing properties.
var propertyReason = regexp.MustCompile(`^property "([^"]+)" is (unsupported|missing)$`)

// walkSchema collects the schema errors under err with their field paths.
func walkSchema(err error, reason string, fields *[]FieldError) {
	var multi openapi3.MultiError
	if errors.As(err, &multi) {
		for _, e := range multi {
			walkSchema(e, reason, fields)
		}
		return
	}
	var se *openapi3.SchemaError
	if errors.As(err, &se) {
		ptr := se.JSONPointer()
		msg := schemaMessage(se)
		// A discriminated union names its tag: action.type, not action.
		if se.Schema != nil && se.SchemaField == "discriminator" && se.Schema.Discriminator != nil {
			d := se.Schema.Discriminator
			if len(ptr) == 0 || ptr[len(ptr)-1] != d.PropertyName {
				ptr = append(append([]string{}, ptr...), d.PropertyName)
			}
			msg = "must be one of " + strings.Join(slices.Sorted(maps.Keys(d.Mapping)), ", ")
		}
		// Unknown and missing properties are reported on their parent object; name the property.
		if m := propertyReason.FindStringSubmatch(se.Reason); m != nil {
			if len(ptr) == 0 || ptr[len(ptr)-1] != m[1] {
				ptr = append(append([]string{}, ptr...), m[1])
			}
			msg = map[string]string{"unsupported": "unknown field", "missing": "is required"}[m[2]]
		}
		*fields = append(*fields, FieldError{Field: fieldPathOf(ptr), Message: msg})
		return
	}
	if err == nil {
		*fields = append(*fields, FieldError{Field: "body", Message: reason})
		return
	}
	*fields = append(*fields, FieldError{Field: "body", Message: rootCause(err)})
}

// fieldPathOf renders a JSON pointer as match.src_ports[0].from.
func fieldPathOf(ptr []string) string {
	var b strings.Builder
	for _, p := range ptr {
		if _, err := strconv.Atoi(p); err == nil {
			b.WriteString("[" + p + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	if b.Len() == 0 {
		return "body"
	}
	return b.String()
}

func rootCause(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

// ctxParamErrors holds the parameter errors the validation middleware left for a handler that
// validates its own body.
const ctxParamErrors = "patronus.param_errors"

// deferredInputError is the answer of a handler that validates its own body: the parameter
// errors the middleware found merged with bodyErr (nil when the body is fine), or nil when
// neither is bad.
func deferredInputError(c *gin.Context, bodyErr error) error {
	var errs []error
	if v, ok := c.Get(ctxParamErrors); ok {
		errs = append(errs, v.(error))
	}
	if bodyErr != nil {
		errs = append(errs, bodyErr)
	}
	if len(errs) == 0 {
		return nil
	}
	return mergeInputErrors(errs)
}
