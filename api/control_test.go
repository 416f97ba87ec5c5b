package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
)

// TestControlCharactersAreRefusedNamingTheField: a NUL (a 500 on PostgreSQL before) or
// another control character in any text field is a 422 naming each such field, on both
// databases, and changes nothing; in a query parameter it is a 400 naming the parameter.
func TestControlCharactersAreRefusedNamingTheField(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		before := a.snapshot()
		cases := []struct {
			name, method, path string
			body               string
			fields             []string
		}{
			{"NUL in a site name", http.MethodPost, "/api/v1/sites", `{"name":"paris\u0000"}`, []string{"name"}},
			{"NUL and a tab", http.MethodPost, "/api/v1/sites", `{"name":"a\u0000b","location":"x\ty"}`, []string{"location", "name"}},
			{"escape and DEL", http.MethodPost, "/api/v1/sites", "{\"name\":\"ok\",\"description\":\"bell\\u0007 del\x7f\"}", []string{"description"}},
			{"C1 in a policy name", http.MethodPost, "/api/v1/policies", "{\"name\":\"p\u0085\",\"priority\":1,\"action\":{\"type\":\"drop\"}}", []string{"name"}},
			{"NUL in a token name", http.MethodPost, "/api/v1/tokens", `{"name":"ops\u0000","role":"viewer"}`, []string{"name"}},
			{"with a schema error too", http.MethodPost, "/api/v1/sites", `{"name":"x\u0000","bogus":1}`, []string{"bogus", "name"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := a.send(a.newRequest(tc.method, tc.path, a.admin, tc.body), false)
				p := r.problem(t, http.StatusUnprocessableEntity)
				got := p.fields()
				slices.Sort(got)
				if !slices.Equal(got, tc.fields) {
					t.Fatalf("fields %v, want %v: %s", got, tc.fields, r)
				}
			})
		}
		r := a.send(a.newRequest(http.MethodGet, "/api/v1/sites?cursor=%00", a.viewer, nil), false)
		if p := r.problem(t, http.StatusBadRequest); !slices.Contains(p.fields(), "cursor") {
			t.Fatalf("NUL in a query parameter: %s", r)
		}
		// Ordinary text with non-ASCII letters still passes.
		if r := a.do(http.MethodPost, "/api/v1/sites", a.operator, map[string]any{"name": a.name("zürich-é")}); r.Status != http.StatusCreated {
			t.Fatalf("a plain name: %s", r)
		}
		after := a.snapshot()
		for _, table := range []string{"sites", "changes"} { // the plain name's site and its change record
			delete(after, table)
			delete(before, table)
		}
		if d := diffSnapshots(before, after); d != "" {
			t.Fatalf("refused requests changed the database:\n%s", d)
		}
	})
}

// FuzzControlCharFields: any body is handled without a panic, and a valid JSON body whose
// strings hold a control character always has at least one field named.
func FuzzControlCharFields(f *testing.F) {
	for _, s := range []string{`{"name":"a\u0000"}`, `{"a":["x","\n"]}`, "{\"n\":\"\u0085\"}", `[]`, `"\u007f"`, `{"a":{"b":[{"c":"ok"}]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fields := controlCharFields(body)
		var v any
		if json.Unmarshal(body, &v) != nil {
			return
		}
		if hasControl(v) && len(fields) == 0 {
			t.Fatalf("no field named for %q", body)
		}
		if !hasControl(v) && len(fields) > 0 {
			t.Fatalf("fields %v named for %q", fields, body)
		}
	})
}

func hasControl(v any) bool {
	switch x := v.(type) {
	case string:
		_, _, ok := firstControl(x)
		return ok
	case []any:
		return slices.ContainsFunc(x, hasControl)
	case map[string]any:
		for _, e := range x {
			if hasControl(e) {
				return true
			}
		}
	}
	return false
}
