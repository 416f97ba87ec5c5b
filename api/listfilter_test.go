package api

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/patronus-sdwan/patronus/api/apigen"
)

// pageAll reads every page of the list at path (with its query) in pages of limit, following
// next_cursor with the same query, and returns each item's id and the page count.
func pageAll[L any](t *testing.T, a *testAPI, path, token string, limit int, ids func(L) ([]string, *string)) ([]string, int) {
	t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var all []string
	cursor := ""
	for pages := 1; pages <= 50; pages++ {
		q := path + sep + "limit=" + strconv.Itoa(limit)
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		got, next := ids(decodeAs[L](t, a.do(http.MethodGet, q, token, nil), http.StatusOK))
		all = append(all, got...)
		if next == nil {
			return all, pages
		}
		cursor = *next
	}
	t.Fatalf("%s: more than 50 pages", path)
	return nil, 0
}

func siteIDs(l apigen.SiteList) ([]string, *string) {
	var ids []string
	for _, s := range l.Items {
		ids = append(ids, s.Name)
	}
	return ids, l.NextCursor
}

// TestListSitesFilters: name is exact, q a case-insensitive substring of name, location and
// description in which % and _ are literal and quotes are data, and sort orders pages that
// page exactly.
func TestListSitesFilters(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		for _, s := range []map[string]any{
			{"name": "paris-1", "location": "Paris, FR"},
			{"name": "berlin", "location": "Berlin, DE", "description": "hub near PARISER Platz"},
			{"name": "lyon", "location": "Lyon, FR", "description": "100% uptime"},
			{"name": "a_b", "location": "Nice, FR"},
			{"name": "axb", "location": "Nice, FR"},
			{"name": "o'hare", "location": "Chicago, US"},
		} {
			decodeAs[apigen.Site](t, a.do(http.MethodPost, "/api/v1/sites", a.operator, s), http.StatusCreated)
		}
		names := func(query string) []string {
			t.Helper()
			got, _ := pageAll(t, a, "/api/v1/sites?"+query, a.viewer, 100, siteIDs)
			return got
		}
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"name=berlin", []string{"berlin"}},
			{"name=Berlin", nil},
			{"name=paris", nil},
			{"q=PARIS", []string{"paris-1", "berlin"}},
			{"q=fr&sort=-name", []string{"paris-1", "lyon", "axb", "a_b"}},
			{"q=" + url.QueryEscape("%"), []string{"lyon"}},
			{"q=_", []string{"a_b"}},
			{"q=a_b", []string{"a_b"}},
			{"q=" + url.QueryEscape("'"), []string{"o'hare"}},
			{"q=" + url.QueryEscape("' OR '1'='1"), nil},
			{"q=nowhere", nil},
			{"name=lyon&q=uptime", []string{"lyon"}},
			{"name=lyon&q=paris", nil},
			{"sort=name", []string{"a_b", "axb", "berlin", "lyon", "o'hare", "paris-1"}},
			{"sort=-created_at", []string{"o'hare", "axb", "a_b", "lyon", "berlin", "paris-1"}},
			{"sort=created_at", []string{"paris-1", "berlin", "lyon", "a_b", "axb", "o'hare"}},
		} {
			if got := names(tc.query); !slices.Equal(got, tc.want) {
				t.Errorf("?%s = %q, want %q", tc.query, got, tc.want)
			}
		}
		// Each order pages exactly: pages of 2 give the same list as one page.
		for _, sort := range []string{"name", "-name", "created_at", "-created_at"} {
			want := names("sort=" + sort)
			got, pages := pageAll(t, a, "/api/v1/sites?sort="+sort, a.viewer, 2, siteIDs)
			if !slices.Equal(got, want) || pages != 3 {
				t.Errorf("sort=%s in pages of 2: %q in %d pages, want %q in 3", sort, got, pages, want)
			}
		}
	})
}

// TestListCursorKeepsItsFilters: a cursor is valid with the filters and sort that returned it
// only; with others, or none, it is a 400 naming cursor, as is a plain cursor under a sort.
func TestListCursorKeepsItsFilters(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		for _, n := range []string{"fr-1", "fr-2", "fr-3", "de-1"} {
			a.do(http.MethodPost, "/api/v1/sites", a.operator, map[string]any{"name": n, "location": "x"})
		}
		first := decodeAs[apigen.SiteList](t, a.do(http.MethodGet, "/api/v1/sites?q=fr&sort=-name&limit=1", a.viewer, nil), http.StatusOK)
		plain := decodeAs[apigen.SiteList](t, a.do(http.MethodGet, "/api/v1/sites?limit=1", a.viewer, nil), http.StatusOK)
		if first.NextCursor == nil || plain.NextCursor == nil {
			t.Fatalf("no next cursor: %+v / %+v", first, plain)
		}
		c := url.QueryEscape(*first.NextCursor)
		// The same filters and sort, in another order of parameters and another limit: valid.
		next := decodeAs[apigen.SiteList](t, a.do(http.MethodGet, "/api/v1/sites?limit=5&sort=-name&q=fr&cursor="+c, a.viewer, nil), http.StatusOK)
		if got, _ := siteIDs(next); !slices.Equal(got, []string{"fr-2", "fr-1"}) {
			t.Errorf("second page = %q, want fr-2, fr-1", got)
		}
		for _, query := range []string{
			"q=fr&cursor=" + c, "sort=-name&cursor=" + c, "q=de&sort=-name&cursor=" + c, "cursor=" + c,
			"q=fr&sort=name&cursor=" + c, "sort=name&cursor=" + url.QueryEscape(*plain.NextCursor),
		} {
			p := a.do(http.MethodGet, "/api/v1/sites?"+query, a.viewer, nil).problem(t, http.StatusBadRequest)
			if !slices.Equal(p.fields(), []string{"cursor"}) || !strings.Contains(p.Errors[0].Message, "other filters or another sort") {
				t.Errorf("?%s: %+v, want a 400 naming cursor and why", query, p)
			}
			checkPlainWords(t, p)
		}
	})
}

// TestListFilterBadValues: a bad filter or sort value is a 400 naming the parameter and what it
// accepts, in words; every bad parameter of the request is named at once.
func TestListFilterBadValues(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		for _, tc := range []struct {
			path, token string
			fields      []string
			words       string
		}{
			{"/api/v1/policies?enabled=maybe", a.viewer, []string{"enabled"}, "true or false"},
			{"/api/v1/policies?sort=bogus", a.viewer, []string{"sort"}, "must be one of priority, -priority, name, -name, created_at, -created_at"},
			{"/api/v1/sites?sort=priority", a.viewer, []string{"sort"}, "must be one of name, -name, created_at, -created_at"},
			{"/api/v1/paths?status=sideways", a.viewer, []string{"status"}, "must be one of up, degraded, down"},
			{"/api/v1/paths?local_site_id=paris", a.viewer, []string{"local_site_id"}, "a UUID"},
			{"/api/v1/tokens?role=root", a.admin, []string{"role"}, "must be one of viewer, operator, admin"},
			{"/api/v1/sites?q=", a.viewer, []string{"q"}, "between 1 and 128 characters"},
			{"/api/v1/sites?name=" + strings.Repeat("n", 129), a.viewer, []string{"name"}, "between 1 and 128 characters"},
			{"/api/v1/audit?sort=seq", a.viewer, []string{"sort"}, "must be one of time, -time"},
			{"/api/v1/policies?enabled=maybe&sort=bogus&limit=0", a.viewer, []string{"enabled", "limit", "sort"}, ""},
			{"/api/v1/audit?cursor=bm9wZQ&since=2026-13-45T00:00:00Z", a.viewer, []string{"cursor", "since"}, ""},
		} {
			p := a.send(a.newRequest(http.MethodGet, tc.path, tc.token, nil), false).problem(t, http.StatusBadRequest)
			got := p.fields()
			slices.Sort(got)
			if !slices.Equal(got, tc.fields) {
				t.Errorf("%s names %q, want %q", tc.path, got, tc.fields)
			}
			if tc.words != "" && !strings.Contains(p.Errors[0].Message, tc.words) {
				t.Errorf("%s: %q, want it to say %q", tc.path, p.Errors[0].Message, tc.words)
			}
			checkPlainWords(t, p)
		}
	})
}

// TestListEndpointsPathsFilters covers the endpoint and path filters: q over the endpoint's
// address and interface, wan_kind, and paths by site at either end, leaving, reaching, and
// by status.
func TestListEndpointsPathsFilters(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed()
		sitePath := "/api/v1/sites/" + fx.site.ID + "/endpoints"
		lte := decodeAs[apigen.Endpoint](t, a.do(http.MethodPost, sitePath, a.operator,
			map[string]any{"name": "a-lte", "address": "198.51.100.7", "interface": "WWAN0", "wan_kind": "lte"}), http.StatusCreated)
		endpointNames := func(query string) []string {
			t.Helper()
			l := decodeAs[apigen.EndpointList](t, a.do(http.MethodGet, sitePath+"?"+query, a.viewer, nil), http.StatusOK)
			var n []string
			for _, e := range l.Items {
				n = append(n, e.Name)
			}
			return n
		}
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"q=198.51", []string{"a-lte"}},
			{"q=wwan", []string{"a-lte"}},
			{"q=" + url.QueryEscape(fx.endpoint.Address), []string{fx.endpoint.Name}},
			{"wan_kind=fiber", []string{fx.endpoint.Name}},
			{"wan_kind=mpls", nil},
			{"name=a-lte", []string{"a-lte"}},
			{"sort=name", []string{"a-lte", fx.endpoint.Name}},
			{"sort=-created_at", []string{"a-lte", fx.endpoint.Name}},
		} {
			if got := endpointNames(tc.query); !slices.Equal(got, tc.want) {
				t.Errorf("endpoints ?%s = %q, want %q", tc.query, got, tc.want)
			}
		}

		// The endpoints of every site, or of one.
		everyName := func(query string) []string {
			t.Helper()
			l := decodeAs[apigen.EndpointList](t, a.do(http.MethodGet, "/api/v1/endpoints?"+query, a.viewer, nil), http.StatusOK)
			var n []string
			for _, e := range l.Items {
				n = append(n, e.Name)
			}
			return n
		}
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"sort=created_at", []string{fx.endpoint.Name, fx.endpoint2.Name, "a-lte"}},
			{"site_id=" + fx.site2.ID, []string{fx.endpoint2.Name}},
			{"q=2001:DB8", []string{fx.endpoint2.Name}},
			{"wan_kind=lte&site_id=" + fx.site.ID, []string{"a-lte"}},
			{"wan_kind=lte&site_id=" + fx.site2.ID, nil},
		} {
			if got := everyName(tc.query); !slices.Equal(got, tc.want) {
				t.Errorf("/endpoints?%s = %q, want %q", tc.query, got, tc.want)
			}
		}
		if got, pages := pageAll(t, a, "/api/v1/endpoints?sort=-name", a.viewer, 1, func(l apigen.EndpointList) ([]string, *string) {
			var n []string
			for _, e := range l.Items {
				n = append(n, e.Name)
			}
			return n, l.NextCursor
		}); len(got) != 3 || pages != 3 || !slices.IsSortedFunc(got, func(x, y string) int { return strings.Compare(y, x) }) {
			t.Errorf("/endpoints?sort=-name in pages of 1: %q in %d pages", got, pages)
		}
		a.do(http.MethodGet, "/api/v1/endpoints?site_id=6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11", a.viewer, nil).problem(t, http.StatusNotFound)

		// fx.path runs site -> site2; back runs site2 -> site (lte), and is down.
		back := decodeAs[apigen.Path](t, a.do(http.MethodPost, "/api/v1/paths", a.operator, map[string]any{
			"name": "berlin-paris", "local_endpoint_id": fx.endpoint2.ID, "remote_endpoint_id": lte.ID, "status": "down",
		}), http.StatusCreated)
		pathIDs := func(query string) []int64 {
			t.Helper()
			l := decodeAs[apigen.PathList](t, a.do(http.MethodGet, "/api/v1/paths?"+query, a.viewer, nil), http.StatusOK)
			var ids []int64
			for _, p := range l.Items {
				ids = append(ids, p.ID)
			}
			return ids
		}
		both := []int64{fx.path.ID, back.ID}
		for _, tc := range []struct {
			query string
			want  []int64
		}{
			{"site_id=" + fx.site.ID, both},
			{"local_site_id=" + fx.site.ID, []int64{fx.path.ID}},
			{"remote_site_id=" + fx.site.ID, []int64{back.ID}},
			{"local_site_id=" + fx.site2.ID + "&remote_site_id=" + fx.site.ID, []int64{back.ID}},
			{"local_site_id=" + fx.site.ID + "&remote_site_id=" + fx.site.ID, nil},
			{"status=down", []int64{back.ID}},
			{"status=up&site_id=" + fx.site.ID, []int64{fx.path.ID}},
			{"q=BERLIN-p", []int64{back.ID}},
			{"name=" + fx.path.Name, []int64{fx.path.ID}},
			{"site_id=" + fx.site.ID + "&sort=-created_at", []int64{back.ID, fx.path.ID}},
		} {
			if got := pathIDs(tc.query); !slices.Equal(got, tc.want) {
				t.Errorf("paths ?%s = %v, want %v", tc.query, got, tc.want)
			}
		}
		for _, param := range []string{"site_id", "local_site_id", "remote_site_id"} {
			a.do(http.MethodGet, "/api/v1/paths?"+param+"=6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11", a.viewer, nil).problem(t, http.StatusNotFound)
		}
	})
}

// TestListPoliciesTokensAuditFilters covers enabled and sort=priority (paged, ties by id),
// token name, role and q (revoked tokens stay out), and audit q and sort=-time.
func TestListPoliciesTokensAuditFilters(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		var ids []string
		for i, p := range []struct {
			prio    int
			enabled bool
		}{{30, true}, {10, false}, {20, true}, {10, true}, {5, false}} {
			created := decodeAs[apigen.Policy](t, a.do(http.MethodPost, "/api/v1/policies", a.operator, map[string]any{
				"name": "pol-" + strconv.Itoa(i), "priority": p.prio, "enabled": p.enabled, "match": map[string]any{}, "action": map[string]any{"type": "drop"},
			}), http.StatusCreated)
			ids = append(ids, strconv.FormatInt(created.ID, 10))
		}
		policyIDs := func(l apigen.PolicyList) ([]string, *string) {
			var out []string
			for _, p := range l.Items {
				out = append(out, strconv.FormatInt(p.ID, 10))
			}
			return out, l.NextCursor
		}
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"sort=priority", []string{ids[4], ids[1], ids[3], ids[2], ids[0]}},
			{"sort=-priority", []string{ids[0], ids[2], ids[3], ids[1], ids[4]}},
			{"enabled=true&sort=priority", []string{ids[3], ids[2], ids[0]}},
			{"enabled=false", []string{ids[1], ids[4]}},
			{"q=POL-3", []string{ids[3]}},
			{"name=pol-2&enabled=true", []string{ids[2]}},
			{"name=pol-2&enabled=false", nil},
		} {
			if got, _ := pageAll(t, a, "/api/v1/policies?"+tc.query, a.viewer, 2, policyIDs); !slices.Equal(got, tc.want) {
				t.Errorf("policies ?%s in pages of 2 = %v, want %v", tc.query, got, tc.want)
			}
		}

		for _, n := range []string{"ci-deploy", "ci-read", "grafana"} {
			a.do(http.MethodPost, "/api/v1/tokens", a.admin, map[string]any{"name": n, "role": "viewer"})
		}
		gone := decodeAs[apigen.TokenCreated](t, a.do(http.MethodPost, "/api/v1/tokens", a.admin, map[string]any{"name": "ci-old", "role": "viewer"}), http.StatusCreated)
		a.do(http.MethodDelete, "/api/v1/tokens/"+strconv.FormatInt(gone.ID, 10), a.admin, nil)
		tokenNames := func(l apigen.TokenList) ([]string, *string) {
			var out []string
			for _, tok := range l.Items {
				out = append(out, tok.Name)
			}
			return out, l.NextCursor
		}
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"q=CI-&sort=-name", []string{"ci-read", "ci-deploy"}},
			{"name=grafana", []string{"grafana"}},
			{"name=ci-old", nil},
			{"role=admin", []string{"test-admin"}},
			{"role=viewer&sort=name", []string{"ci-deploy", "ci-read", "grafana", "test-viewer"}},
		} {
			if got, _ := pageAll(t, a, "/api/v1/tokens?"+tc.query, a.admin, 1, tokenNames); !slices.Equal(got, tc.want) {
				t.Errorf("tokens ?%s in pages of 1 = %q, want %q", tc.query, got, tc.want)
			}
		}

		auditIDs := func(l apigen.AuditList) ([]string, *string) {
			var out []string
			for _, e := range l.Items {
				out = append(out, strconv.FormatInt(e.ID, 10))
			}
			return out, l.NextCursor
		}
		oldest, _ := pageAll(t, a, "/api/v1/audit?resource_kind=policy", a.viewer, 100, auditIDs)
		newest, pages := pageAll(t, a, "/api/v1/audit?resource_kind=policy&sort=-time", a.viewer, 2, auditIDs)
		slices.Reverse(oldest)
		if len(oldest) != 5 || !slices.Equal(newest, oldest) || pages != 3 {
			t.Errorf("audit newest first = %v in %d pages, want %v in 3", newest, pages, oldest)
		}
		if got, _ := pageAll(t, a, "/api/v1/audit?resource_kind=token&q=DELETE", a.viewer, 10, auditIDs); len(got) != 1 {
			t.Errorf("audit resource_kind=token&q=DELETE = %v, want the one revocation", got)
		}
	})
}
