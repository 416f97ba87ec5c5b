package api

import (
	"bytes"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// badInput is one request an inventory write must refuse, changing nothing.
type badInput struct {
	name        string
	path        string // "" for the target's path
	body        string
	contentType string // "" for application/json
	header      [2]string
	chunked     bool // send without Content-Length
	status      int
	field       string // the field the problem must name
}

// badInputTarget is an inventory write and the bad inputs it must refuse.
type badInputTarget struct {
	name, method string
	path         func(fx fixture) string
	token        func(a *testAPI) string
	cases        func(fx fixture) []badInput
}

// oversize is a body over the 1 MiB limit that is otherwise valid for every inventory write.
var oversize = `{"name":"big","description":"` + strings.Repeat("x", maxBodyBytes) + `"}`

// commonBadInputs are refused by every inventory write alike.
func commonBadInputs(valid string) []badInput {
	return []badInput{
		{name: "MalformedJSON", body: `{"name":`, status: 400, field: "body"},
		{name: "TrailingGarbage", body: valid + `}`, status: 400, field: "body"},
		{name: "NotAnObject", body: `["x"]`, status: 422, field: "body"},
		{name: "EmptyBody", body: ``, status: 400, field: "body"},
		{name: "UnknownField", body: valid[:len(valid)-1] + `,"colour":"red"}`, status: 422, field: "colour"},
		{name: "TextPlain", body: valid, contentType: "text/plain", status: 415, field: "Content-Type"},
		{name: "FormEncoded", body: "name=x", contentType: "application/x-www-form-urlencoded", status: 415, field: "Content-Type"},
		{name: "Oversize", body: oversize, status: 413, field: "body"},
		{name: "OversizeChunked", body: oversize, chunked: true, status: 413, field: "body"},
	}
}

var badInputTargets = []badInputTarget{
	{
		name: "createSite", method: http.MethodPost,
		path:  func(fixture) string { return "/api/v1/sites" },
		token: func(a *testAPI) string { return a.operator },
		cases: func(fx fixture) []badInput {
			return append(commonBadInputs(`{"name":"fresh"}`),
				badInput{name: "MissingName", body: `{"location":"Rome"}`, status: 422, field: "name"},
				badInput{name: "NameNotString", body: `{"name":42}`, status: 422, field: "name"},
				badInput{name: "NameNull", body: `{"name":null}`, status: 422, field: "name"},
				badInput{name: "NameEmpty", body: `{"name":""}`, status: 422, field: "name"},
				badInput{name: "NamePadded", body: `{"name":" x"}`, status: 422, field: "name"},
				badInput{name: "NameTooLong", body: `{"name":"` + strings.Repeat("n", 129) + `"}`, status: 422, field: "name"},
				badInput{name: "LocationTooLong", body: `{"name":"x","location":"` + strings.Repeat("l", 257) + `"}`, status: 422, field: "location"},
				badInput{name: "DescriptionNotString", body: `{"name":"x","description":["a"]}`, status: 422, field: "description"},
				badInput{name: "DuplicateName", body: `{"name":"` + fx.site.Name + `"}`, status: 409, field: "name"},
			)
		},
	},
	{
		name: "updateSite", method: http.MethodPatch,
		path:  func(fx fixture) string { return "/api/v1/sites/" + fx.site.ID },
		token: func(a *testAPI) string { return a.operator },
		cases: func(fx fixture) []badInput {
			return append(commonBadInputs(`{"location":"Lyon"}`),
				badInput{name: "NoFields", body: `{}`, status: 422, field: "body"},
				badInput{name: "NameNotString", body: `{"name":true}`, status: 422, field: "name"},
				badInput{name: "NameNull", body: `{"name":null}`, status: 422, field: "name"},
				badInput{name: "ReadOnlyVersion", body: `{"version":7}`, status: 422, field: "version"},
				badInput{name: "DuplicateName", body: `{"name":"` + fx.site2.Name + `"}`, status: 409, field: "name"},
				badInput{name: "IfMatchMalformed", body: `{"location":"Lyon"}`, header: [2]string{"If-Match", "W/1"}, status: 400, field: "If-Match"},
				badInput{name: "IfMatchStale", body: `{"location":"Lyon"}`, header: [2]string{"If-Match", `"99"`}, status: 409, field: "If-Match"},
				badInput{name: "BadUUID", path: "/api/v1/sites/not-a-uuid", body: `{"location":"Lyon"}`, status: 400, field: "site_id"},
				badInput{name: "UnknownSite", path: "/api/v1/sites/6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11", body: `{"location":"Lyon"}`, status: 404},
			)
		},
	},
	{
		name: "createEndpoint", method: http.MethodPost,
		path:  func(fx fixture) string { return "/api/v1/sites/" + fx.site.ID + "/endpoints" },
		token: func(a *testAPI) string { return a.operator },
		cases: func(fixture) []badInput {
			return append(commonBadInputs(`{"name":"wan9","address":"192.0.2.9"}`),
				badInput{name: "MissingAddress", body: `{"name":"wan9"}`, status: 422, field: "address"},
				badInput{name: "AddressNotIP", body: `{"name":"wan9","address":"999.1.1.1"}`, status: 422, field: "address"},
				badInput{name: "AddressIsCIDR", body: `{"name":"wan9","address":"192.0.2.0/24"}`, status: 422, field: "address"},
				badInput{name: "AddressHostname", body: `{"name":"wan9","address":"router.example"}`, status: 422, field: "address"},
				badInput{name: "AddressNotString", body: `{"name":"wan9","address":3232235777}`, status: 422, field: "address"},
				badInput{name: "WANKindUnknown", body: `{"name":"wan9","address":"192.0.2.9","wan_kind":"dialup"}`, status: 422, field: "wan_kind"},
				badInput{name: "InterfaceTooLong", body: `{"name":"wan9","address":"192.0.2.9","interface":"` + strings.Repeat("i", 65) + `"}`, status: 422, field: "interface"},
				badInput{name: "SiteIDInBody", body: `{"name":"wan9","address":"192.0.2.9","site_id":"6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11"}`, status: 422, field: "site_id"},
				badInput{name: "BadUUID", path: "/api/v1/sites/123/endpoints", body: `{"name":"wan9","address":"192.0.2.9"}`, status: 400, field: "site_id"},
				badInput{name: "UnknownSite", path: "/api/v1/sites/6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11/endpoints", body: `{"name":"wan9","address":"192.0.2.9"}`, status: 404},
			)
		},
	},
	{
		name: "updateEndpoint", method: http.MethodPatch,
		path:  func(fx fixture) string { return "/api/v1/endpoints/" + fx.endpoint.ID },
		token: func(a *testAPI) string { return a.operator },
		cases: func(fixture) []badInput {
			return append(commonBadInputs(`{"interface":"eth7"}`),
				badInput{name: "NoFields", body: `{}`, status: 422, field: "body"},
				badInput{name: "AddressNotIP", body: `{"address":"10.0.0.256"}`, status: 422, field: "address"},
				badInput{name: "AddressNull", body: `{"address":null}`, status: 422, field: "address"},
				badInput{name: "WANKindWrongType", body: `{"wan_kind":1}`, status: 422, field: "wan_kind"},
				badInput{name: "BadUUID", path: "/api/v1/endpoints/6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b1", body: `{"interface":"eth7"}`, status: 400, field: "endpoint_id"},
				badInput{name: "UnknownEndpoint", path: "/api/v1/endpoints/6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11", body: `{"interface":"eth7"}`, status: 404},
			)
		},
	},
	{
		name: "createPath", method: http.MethodPost,
		path:  func(fixture) string { return "/api/v1/paths" },
		token: func(a *testAPI) string { return a.operator },
		cases: func(fx fixture) []badInput {
			ends := `"local_endpoint_id":"` + fx.endpoint.ID + `","remote_endpoint_id":"` + fx.endpoint2.ID + `"`
			return append(commonBadInputs(`{"name":"p9",`+ends+`}`),
				badInput{name: "MissingRemote", body: `{"name":"p9","local_endpoint_id":"` + fx.endpoint.ID + `"}`, status: 422, field: "remote_endpoint_id"},
				badInput{name: "LocalNotUUID", body: `{"name":"p9","local_endpoint_id":"x","remote_endpoint_id":"` + fx.endpoint2.ID + `"}`, status: 422, field: "local_endpoint_id"},
				badInput{name: "LocalUnknown", body: `{"name":"p9","local_endpoint_id":"6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11","remote_endpoint_id":"` + fx.endpoint2.ID + `"}`, status: 422, field: "local_endpoint_id"},
				badInput{name: "SameEnds", body: `{"name":"p9","local_endpoint_id":"` + fx.endpoint.ID + `","remote_endpoint_id":"` + fx.endpoint.ID + `"}`, status: 422, field: "remote_endpoint_id"},
				badInput{name: "StatusUnknown", body: `{"name":"p9",` + ends + `,"status":"sideways"}`, status: 422, field: "status"},
				badInput{name: "ReadOnlyID", body: `{"name":"p9",` + ends + `,"id":5}`, status: 422, field: "id"},
			)
		},
	},
	{
		name: "updatePath", method: http.MethodPatch,
		path:  func(fx fixture) string { return "/api/v1/paths/" + strconv.FormatInt(fx.path.ID, 10) },
		token: func(a *testAPI) string { return a.operator },
		cases: func(fixture) []badInput {
			return append(commonBadInputs(`{"status":"down"}`),
				badInput{name: "NoFields", body: `{}`, status: 422, field: "body"},
				badInput{name: "StatusWrongType", body: `{"status":0}`, status: 422, field: "status"},
				badInput{name: "MoveEnd", body: `{"local_endpoint_id":"6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11"}`, status: 422, field: "local_endpoint_id"},
				badInput{name: "IDNotInteger", path: "/api/v1/paths/abc", body: `{"status":"down"}`, status: 400, field: "path_id"},
				badInput{name: "IDZero", path: "/api/v1/paths/0", body: `{"status":"down"}`, status: 400, field: "path_id"},
				badInput{name: "IDOverflow", path: "/api/v1/paths/99999999999999999999", body: `{"status":"down"}`, status: 400, field: "path_id"},
				badInput{name: "UnknownPath", path: "/api/v1/paths/999999", body: `{"status":"down"}`, status: 404},
			)
		},
	},
	{
		name: "createPolicy", method: http.MethodPost,
		path:  func(fixture) string { return "/api/v1/policies" },
		token: func(a *testAPI) string { return a.operator },
		cases: func(fx fixture) []badInput {
			pathID := strconv.FormatInt(fx.path.ID, 10)
			policy := func(match, action string) string {
				return `{"name":"p9","priority":1,"match":` + match + `,"action":` + action + `}`
			}
			prefer := `{"type":"prefer_path","path_id":` + pathID + `}`
			return append(commonBadInputs(policy(`{}`, prefer)),
				badInput{name: "MissingAction", body: `{"name":"p9","priority":1,"match":{}}`, status: 422, field: "action"},
				badInput{name: "PriorityNegative", body: `{"name":"p9","priority":-1,"match":{},"action":` + prefer + `}`, status: 422, field: "priority"},
				badInput{name: "PriorityTooHigh", body: `{"name":"p9","priority":1000001,"match":{},"action":` + prefer + `}`, status: 422, field: "priority"},
				badInput{name: "PriorityNotInteger", body: `{"name":"p9","priority":1.5,"match":{},"action":` + prefer + `}`, status: 422, field: "priority"},
				badInput{name: "PriorityString", body: `{"name":"p9","priority":"high","match":{},"action":` + prefer + `}`, status: 422, field: "priority"},
				badInput{name: "EnabledString", body: `{"name":"p9","priority":1,"enabled":"yes","match":{},"action":` + prefer + `}`, status: 422, field: "enabled"},
				badInput{name: "ProtocolTooHigh", body: policy(`{"protocol":256}`, prefer), status: 422, field: "match.protocol"},
				badInput{name: "PortTooHigh", body: policy(`{"dst_ports":[{"from":1,"to":2},{"from":80,"to":65536}]}`, prefer), status: 422, field: "match.dst_ports[1].to"},
				badInput{name: "PortNegative", body: policy(`{"src_ports":[{"from":-1,"to":2}]}`, prefer), status: 422, field: "match.src_ports[0].from"},
				badInput{name: "PortRangeReversed", body: policy(`{"dst_ports":[{"from":90,"to":80}]}`, prefer), status: 422, field: "match.dst_ports[0].to"},
				badInput{name: "PortRangeMissingTo", body: policy(`{"dst_ports":[{"from":90}]}`, prefer), status: 422, field: "match.dst_ports[0].to"},
				badInput{name: "TooManyPortRanges", body: policy(`{"src_ports":[`+strings.TrimSuffix(strings.Repeat(`{"from":1,"to":2},`, 65), ",")+`]}`, prefer), status: 422, field: "match.src_ports"},
				badInput{name: "CIDRPrefixTooLong", body: policy(`{"dst_cidr":"10.0.0.0/33"}`, prefer), status: 422, field: "match.dst_cidr"},
				badInput{name: "CIDRNotCIDR", body: policy(`{"src_cidr":"banana"}`, prefer), status: 422, field: "match.src_cidr"},
				badInput{name: "CIDRBareAddress", body: policy(`{"src_cidr":"10.1.2.3"}`, prefer), status: 422, field: "match.src_cidr"},
				badInput{name: "MatchUnknownField", body: policy(`{"dscp":46}`, prefer), status: 422, field: "match.dscp"},
				badInput{name: "ActionUnknown", body: policy(`{}`, `{"type":"teleport"}`), status: 422, field: "action.type"},
				badInput{name: "PreferPathWithoutPath", body: policy(`{}`, `{"type":"prefer_path"}`), status: 422, field: "action.path_id"},
				badInput{name: "PreferUnknownPath", body: policy(`{}`, `{"type":"prefer_path","path_id":999999}`), status: 422, field: "action.path_id"},
				badInput{name: "DropWithPath", body: policy(`{}`, `{"type":"drop","path_id":`+pathID+`}`), status: 422, field: "action.path_id"},
				badInput{name: "DuplicateName", body: `{"name":"` + fx.policy.Name + `","priority":1,"match":{},"action":` + prefer + `}`, status: 409, field: "name"},
			)
		},
	},
	{
		name: "updatePolicy", method: http.MethodPatch,
		path:  func(fx fixture) string { return "/api/v1/policies/" + strconv.FormatInt(fx.policy.ID, 10) },
		token: func(a *testAPI) string { return a.operator },
		cases: func(fixture) []badInput {
			return append(commonBadInputs(`{"priority":3}`),
				badInput{name: "NoFields", body: `{}`, status: 422, field: "body"},
				badInput{name: "PortTooHigh", body: `{"match":{"src_ports":[{"from":0,"to":70000}]}}`, status: 422, field: "match.src_ports[0].to"},
				badInput{name: "CIDRNotCIDR", body: `{"match":{"dst_cidr":"10.0.0.0/8/8"}}`, status: 422, field: "match.dst_cidr"},
				badInput{name: "ReadOnlyCounter", body: `{"packets_matched":0}`, status: 422, field: "packets_matched"},
				badInput{name: "IDNegative", path: "/api/v1/policies/-3", body: `{"priority":3}`, status: 400, field: "policy_id"},
				badInput{name: "UnknownPolicy", path: "/api/v1/policies/999999", body: `{"priority":3}`, status: 404},
			)
		},
	},
	{
		name: "createToken", method: http.MethodPost,
		path:  func(fixture) string { return "/api/v1/tokens" },
		token: func(a *testAPI) string { return a.admin },
		cases: func(fixture) []badInput {
			return append(commonBadInputs(`{"name":"ci","role":"viewer"}`),
				badInput{name: "MissingRole", body: `{"name":"ci"}`, status: 422, field: "role"},
				badInput{name: "RoleUnknown", body: `{"name":"ci","role":"root"}`, status: 422, field: "role"},
				badInput{name: "NameNotString", body: `{"name":1,"role":"viewer"}`, status: 422, field: "name"},
				badInput{name: "SecretGiven", body: `{"name":"ci","role":"viewer","token":"mine"}`, status: 422, field: "token"},
			)
		},
	},
}

// TestBadInputChangesNothing sends each inventory write a table of bad inputs: each gets its
// documented 4xx as a problem naming the field, and the stored data is the same afterwards.
func TestBadInputChangesNothing(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed()
		for _, target := range badInputTargets {
			for _, tc := range target.cases(fx) {
				t.Run(target.name+"/"+tc.name, func(t *testing.T) {
					defer func(parent *testing.T) { a.t = parent }(a.t)
					a.t = t
					path := tc.path
					if path == "" {
						path = target.path(fx)
					}
					req := a.newRequest(target.method, path, target.token(a), []byte(tc.body))
					if tc.contentType != "" {
						req.Header.Set("Content-Type", tc.contentType)
					}
					if tc.header[0] != "" {
						req.Header.Set(tc.header[0], tc.header[1])
					}
					if tc.chunked {
						req.ContentLength = -1
						req.Body = io.NopCloser(bytes.NewReader([]byte(tc.body)))
					}
					before := a.snapshot()
					p := a.send(req, false).problem(t, tc.status)
					if tc.field != "" && !slices.Contains(p.fields(), tc.field) {
						t.Errorf("problem names %q, want %q: %+v", p.fields(), tc.field, p)
					}
					checkPlainWords(t, p)
					if d := diffSnapshots(before, a.snapshot()); d != "" {
						t.Errorf("a refused request changed data:\n%s", d)
					}
				})
			}
		}
	})
}

// machineWords matches what a message for people must not contain: regular expressions
// (anchors, classes, repetitions, groups, or the words) and Go type names (int64, []T, map[K]V,
// pkg.Type, struct).
var machineWords = regexp.MustCompile(`\^|\$\)|\$"|\$$|\\[dwsS.]|\[[^\]]*-[^\]]*\]|\{[0-9]+,[0-9]*\}|\(\?|regular expression|` +
	`\b(u?int(8|16|32|64)?|float(32|64)|complex(64|128)|uintptr|rune|struct|interface \{)\b|\[\][A-Za-z*]|map\[|\b[a-z][a-z0-9]*\.[A-Z][A-Za-z0-9]*\b`)

// checkPlainWords fails the test when the problem's detail or a field message is not written
// for people: a regular expression or a Go type name in it.
func checkPlainWords(t testing.TB, p Problem) {
	t.Helper()
	texts := []string{p.Detail}
	for _, e := range p.Errors {
		texts = append(texts, e.Message)
	}
	for _, text := range texts {
		if m := machineWords.FindString(text); m != "" {
			t.Errorf("message %q is not in words (it has %q)", text, m)
		}
	}
}

func TestPlainWordsCatchesMachineText(t *testing.T) {
	for _, text := range []string{
		`string doesn't match the regular expression "^(now|-[1-9][0-9]{0,8}[smhdw])$"`,
		"must be of type int64", "cannot unmarshal string into []apigen.PortRange", "json: cannot unmarshal into Go struct field",
		"value of type map[string]interface {}", "a storage.Site",
	} {
		rec := &errorRecorder{TB: t}
		checkPlainWords(rec, Problem{Errors: []FieldError{{Field: "x", Message: text}}})
		if len(rec.errs) == 0 {
			t.Errorf("%q passed as words", text)
		}
	}
	for _, text := range []string{"must be between 0 and 65535", "must be an integer between 1 and 1000",
		"must be an RFC 3339 time with a zone, like 2026-12-01T18:00:00Z", "must be one of drop, prefer_path",
		"site 6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11 not found", `a site named "branch-paris" already exists`} {
		rec := &errorRecorder{TB: t}
		checkPlainWords(rec, Problem{Detail: text})
		if len(rec.errs) != 0 {
			t.Errorf("%q refused: %v", text, rec.errs)
		}
	}
}
