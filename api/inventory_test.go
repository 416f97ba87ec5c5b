package api

import (
	"bytes"
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"testing"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/storage"
)

// auditOf lists the audit entries about one resource, oldest first.
func (a *testAPI) auditOf(kind, id string) []apigen.AuditEntry {
	a.t.Helper()
	q := url.Values{"resource_kind": {kind}, "resource_id": {id}, "limit": {"1000"}}
	return decodeAs[apigen.AuditList](a.t, a.do(http.MethodGet, "/api/v1/audit?"+q.Encode(), a.viewer, nil), http.StatusOK).Items
}

// eventTypes lists the types of events.
func eventTypes(events []event) []string {
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
	}
	return types
}

func TestSiteLifecycle(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		r := a.do(http.MethodPost, "/api/v1/sites", a.operator, map[string]any{"name": "branch-paris", "location": "Paris, FR"})
		site := decodeAs[apigen.Site](t, r, http.StatusCreated)
		if site.Name != "branch-paris" || site.Location != "Paris, FR" || site.Description != "" || site.Version != 1 {
			t.Fatalf("created %+v", site)
		}
		if got := r.Header.Get("ETag"); got != `"1"` {
			t.Errorf("ETag = %q, want \"1\"", got)
		}
		events := a.rec.takeEvents()
		if len(events) != 1 || events[0].Type != "site.created" || events[0].Data["site_id"] != site.ID.String() {
			t.Fatalf("events = %+v, want one site.created for %s", events, site.ID)
		}
		path := "/api/v1/sites/" + site.ID.String()

		r = a.do(http.MethodGet, path, a.viewer, nil)
		if got := decodeAs[apigen.Site](t, r, http.StatusOK); got != site || r.Header.Get("ETag") != `"1"` {
			t.Errorf("get = %+v ETag %s, want %+v \"1\"", got, r.Header.Get("ETag"), site)
		}

		// A partial update changes only the fields present.
		r = a.do(http.MethodPatch, path, a.operator, map[string]any{"description": "second floor"})
		updated := decodeAs[apigen.Site](t, r, http.StatusOK)
		if updated.Name != "branch-paris" || updated.Location != "Paris, FR" || updated.Description != "second floor" || updated.Version != 2 {
			t.Errorf("after PATCH description: %+v", updated)
		}
		if r.Header.Get("ETag") != `"2"` {
			t.Errorf("ETag after update = %q", r.Header.Get("ETag"))
		}

		// If-Match: a stale version is refused and changes nothing; the current one and * apply.
		before := a.snapshot()
		req := a.newRequest(http.MethodPatch, path, a.operator, map[string]any{"name": "stale"})
		req.Header.Set("If-Match", `"1"`)
		p := a.send(req, true).problem(t, http.StatusConflict)
		if !slices.Equal(p.fields(), []string{"If-Match"}) {
			t.Errorf("stale If-Match names %v", p.fields())
		}
		if d := diffSnapshots(before, a.snapshot()); d != "" {
			t.Errorf("a stale If-Match changed data:\n%s", d)
		}
		for i, match := range []string{`"2"`, "*"} {
			req := a.newRequest(http.MethodPatch, path, a.operator, map[string]any{"name": "branch-paris-" + strconv.Itoa(i)})
			req.Header.Set("If-Match", match)
			got := decodeAs[apigen.Site](t, a.send(req, true), http.StatusOK)
			if got.Version != int64(3+i) {
				t.Errorf("If-Match %s: version %d, want %d", match, got.Version, 3+i)
			}
		}
		if types := eventTypes(a.rec.takeEvents()); !slices.Equal(types, []string{"site.updated", "site.updated", "site.updated"}) {
			t.Errorf("events = %v, want three site.updated", types)
		}

		entries := a.auditOf("site", site.ID.String())
		var actions []string
		for _, e := range entries {
			actions = append(actions, string(e.Action))
			if e.Actor != "test-operator" {
				t.Errorf("audit actor = %q, want test-operator", e.Actor)
			}
		}
		if !slices.Equal(actions, []string{"create", "update", "update", "update"}) {
			t.Fatalf("audit actions = %v", actions)
		}
		first := entries[1].Details
		if !slices.Equal(toStrings(first["changed"]), []string{"description", "version"}) {
			t.Errorf("changed = %v, want [description version]", first["changed"])
		}
		if b, _ := first["before"].(map[string]any); b["description"] != "" {
			t.Errorf("before = %v", first["before"])
		}
		if af, _ := first["after"].(map[string]any); af["description"] != "second floor" {
			t.Errorf("after = %v", first["after"])
		}
	})
}

func toStrings(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func TestListsPageThroughEverything(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		var want []string
		for range 5 {
			s := decodeAs[apigen.Site](t, a.do(http.MethodPost, "/api/v1/sites", a.operator, map[string]any{"name": a.name("s")}), http.StatusCreated)
			want = append(want, s.ID.String())
		}
		var got []string
		var sizes []int
		cursor := ""
		for range 10 {
			q := "?limit=2"
			if cursor != "" {
				q += "&cursor=" + url.QueryEscape(cursor)
			}
			page := decodeAs[apigen.SiteList](t, a.do(http.MethodGet, "/api/v1/sites"+q, a.viewer, nil), http.StatusOK)
			sizes = append(sizes, len(page.Items))
			for _, s := range page.Items {
				got = append(got, s.ID.String())
			}
			if page.NextCursor == nil {
				break
			}
			cursor = *page.NextCursor
		}
		if !slices.Equal(got, want) || !slices.Equal(sizes, []int{2, 2, 1}) {
			t.Errorf("paged %v in pages of %v, want %v in 2,2,1", got, sizes, want)
		}
		all := decodeAs[apigen.SiteList](t, a.do(http.MethodGet, "/api/v1/sites", a.viewer, nil), http.StatusOK)
		if len(all.Items) != 5 || all.NextCursor != nil {
			t.Errorf("default page: %d items, next %v", len(all.Items), all.NextCursor)
		}
	})
}

func TestEndpointsAndPaths(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed()
		other := a.seed()
		sitePath := "/api/v1/sites/" + fx.site.ID

		e := decodeAs[apigen.Endpoint](t, a.do(http.MethodPost, sitePath+"/endpoints", a.operator,
			map[string]any{"name": "paris-lte", "address": "198.51.100.7"}), http.StatusCreated)
		if e.SiteID.String() != fx.site.ID || e.Interface != "" || e.WANKind != apigen.WANKindOther {
			t.Errorf("created endpoint %+v, want defaults interface \"\" and wan_kind other", e)
		}
		list := decodeAs[apigen.EndpointList](t, a.do(http.MethodGet, sitePath+"/endpoints", a.viewer, nil), http.StatusOK)
		if len(list.Items) != 2 || list.Items[0].ID.String() != fx.endpoint.ID || list.Items[1].ID != e.ID {
			t.Errorf("site endpoints = %+v", list.Items)
		}

		upd := decodeAs[apigen.Endpoint](t, a.do(http.MethodPatch, "/api/v1/endpoints/"+e.ID.String(), a.operator,
			map[string]any{"wan_kind": "lte"}), http.StatusOK)
		if upd.WANKind != apigen.WANKindLTE || upd.Address != "198.51.100.7" || upd.Name != "paris-lte" {
			t.Errorf("after PATCH wan_kind: %+v", upd)
		}

		p := decodeAs[apigen.Path](t, a.do(http.MethodPost, "/api/v1/paths", a.operator, map[string]any{
			"name": "paris-lte-berlin", "local_endpoint_id": e.ID, "remote_endpoint_id": fx.endpoint2.ID,
		}), http.StatusCreated)
		if p.Status != apigen.PathStatusUp {
			t.Errorf("path status %q, want the default up", p.Status)
		}

		// site_id keeps the paths with either end at the site.
		bySite := func(siteID string) []int64 {
			l := decodeAs[apigen.PathList](t, a.do(http.MethodGet, "/api/v1/paths?site_id="+siteID, a.viewer, nil), http.StatusOK)
			var ids []int64
			for _, x := range l.Items {
				ids = append(ids, x.ID)
			}
			return ids
		}
		if got := bySite(fx.site.ID); !slices.Equal(got, []int64{fx.path.ID, p.ID}) {
			t.Errorf("paths of site = %v, want %v", got, []int64{fx.path.ID, p.ID})
		}
		if got := bySite(fx.site2.ID); !slices.Equal(got, []int64{fx.path.ID, p.ID}) {
			t.Errorf("paths of remote site = %v", got)
		}
		if got := bySite(other.site.ID); !slices.Equal(got, []int64{other.path.ID}) {
			t.Errorf("paths of the other site = %v", got)
		}
		a.do(http.MethodGet, "/api/v1/paths?site_id=6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11", a.viewer, nil).problem(t, http.StatusNotFound)

		// A status change drops what the caches hold about the path.
		a.rec.takeInvalidated()
		got := decodeAs[apigen.Path](t, a.do(http.MethodPatch, "/api/v1/paths/"+strconv.FormatInt(p.ID, 10), a.operator,
			map[string]any{"status": "degraded"}), http.StatusOK)
		if got.Status != apigen.PathStatusDegraded || got.Name != "paris-lte-berlin" {
			t.Errorf("after PATCH status: %+v", got)
		}
		if inv := a.rec.takeInvalidated(); !slices.Equal(inv, []int64{p.ID}) {
			t.Errorf("invalidated %v, want [%d]", inv, p.ID)
		}
	})
}

func TestDeletingAnEndpointRemovesItsPaths(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed()
		ctx := context.Background()
		// A second path from the other side, and one that does not touch the endpoint.
		back := storage.Path{Name: "back", LocalEndpointID: fx.endpoint2.ID, RemoteEndpointID: fx.endpoint.ID}
		if err := a.store.Paths().Create(ctx, &back); err != nil {
			t.Fatal(err)
		}
		other := a.seed()
		a.rec.takeEvents()

		a.do(http.MethodDelete, "/api/v1/endpoints/"+fx.endpoint.ID, a.operator, nil)
		for _, id := range []int64{fx.path.ID, back.ID} {
			a.do(http.MethodGet, "/api/v1/paths/"+strconv.FormatInt(id, 10), a.viewer, nil).problem(t, http.StatusNotFound)
		}
		a.do(http.MethodGet, "/api/v1/endpoints/"+fx.endpoint.ID, a.viewer, nil).problem(t, http.StatusNotFound)
		decodeAs[apigen.Path](t, a.do(http.MethodGet, "/api/v1/paths/"+strconv.FormatInt(other.path.ID, 10), a.viewer, nil), http.StatusOK)

		pol := decodeAs[apigen.Policy](t, a.do(http.MethodGet, "/api/v1/policies/"+strconv.FormatInt(fx.policy.ID, 10), a.viewer, nil), http.StatusOK)
		if typ, pathID := policyActionFields(pol.Action); typ != storage.ActionPreferPath || pathID != nil {
			t.Errorf("policy action after its path went: %+v, want prefer_path without path_id", pol.Action)
		}
		wantPaths := []int64{fx.path.ID, back.ID}
		if inv := a.rec.takeInvalidated(); !slices.Equal(inv, wantPaths) {
			t.Errorf("invalidated %v, want %v", inv, wantPaths)
		}
		var deleted []int64
		evs := a.rec.takeEvents()
		if len(evs) == 0 || evs[0].Type != "policy.updated" || evs[0].Data["policy_id"] != float64(fx.policy.ID) {
			t.Fatalf("events = %+v, want policy.updated of %d first", evs, fx.policy.ID)
		}
		for _, e := range evs[1:] {
			if e.Type != "path.deleted" || e.Data["audit_id"] == nil {
				t.Errorf("event %+v, want path.deleted with audit_id", e)
			}
			id, _ := e.Data["path_id"].(float64)
			deleted = append(deleted, int64(id))
		}
		if !slices.Equal(deleted, wantPaths) {
			t.Errorf("path.deleted for %v, want %v", deleted, wantPaths)
		}
		entries := a.auditOf("endpoint", fx.endpoint.ID)
		if len(entries) != 1 || entries[0].Action != apigen.AuditActionDelete {
			t.Fatalf("audit = %+v, want one delete", entries)
		}
		d := entries[0].Details
		if got := toInt64s(d["paths_deleted"]); !slices.Equal(got, wantPaths) {
			t.Errorf("paths_deleted = %v", d["paths_deleted"])
		}
		if got := toInt64s(d["policies_updated"]); !slices.Equal(got, []int64{fx.policy.ID}) {
			t.Errorf("policies_updated = %v", d["policies_updated"])
		}
	})
}

func toInt64s(v any) []int64 {
	list, _ := v.([]any)
	var out []int64
	for _, x := range list {
		f, _ := x.(float64)
		out = append(out, int64(f))
	}
	return out
}

func TestDeletingAPath(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed()
		a.rec.takeEvents()
		id := strconv.FormatInt(fx.path.ID, 10)
		a.do(http.MethodDelete, "/api/v1/paths/"+id, a.operator, nil)
		a.do(http.MethodDelete, "/api/v1/paths/"+id, a.operator, nil).problem(t, http.StatusNotFound)
		events := a.rec.takeEvents()
		if len(events) != 2 || events[0].Type != "policy.updated" || events[0].Data["policy_id"] != float64(fx.policy.ID) ||
			events[1].Type != "path.deleted" || events[1].Data["path_id"] != float64(fx.path.ID) {
			t.Errorf("events = %+v, want policy.updated of the policy preferring it, then path.deleted", events)
		}
		if inv := a.rec.takeInvalidated(); !slices.Equal(inv, []int64{fx.path.ID}) {
			t.Errorf("invalidated %v", inv)
		}
		entries := a.auditOf("path", id)
		if len(entries) != 1 || entries[0].Action != apigen.AuditActionDelete ||
			entries[0].Details["before"].(map[string]any)["name"] != fx.path.Name {
			t.Errorf("audit = %+v", entries)
		}
	})
}

func TestPolicyCountersAndClassifier(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed()
		a.rec.takeEvents()
		body := map[string]any{
			"name": "voip", "priority": 5,
			"match":  map[string]any{"protocol": 17, "dst_cidr": "10.30.0.0/16", "dst_ports": []any{map[string]any{"from": 5060, "to": 5061}}},
			"action": map[string]any{"type": "prefer_path", "path_id": fx.path.ID},
		}
		p := decodeAs[apigen.Policy](t, a.do(http.MethodPost, "/api/v1/policies", a.operator, body), http.StatusCreated)
		if !p.Enabled || p.PacketsMatched != 0 || p.LastSeen != nil || p.Match.SrcCIDR != nil || *p.Match.DstCIDR != "10.30.0.0/16" {
			t.Fatalf("created %+v", p)
		}
		flow := collector.FlowKey{SrcIP: netip.MustParseAddr("10.1.0.5"), DstIP: netip.MustParseAddr("10.30.3.4"), SrcPort: 40000, DstPort: 5060, Protocol: 17}
		if id, ok := a.collector.Classify(flow); !ok || id != p.ID {
			t.Fatalf("classify = %d %v, want the new policy %d at once", id, ok, p.ID)
		}
		a.collector.Record(p.ID, flow, 3, 300)
		path := "/api/v1/policies/" + strconv.FormatInt(p.ID, 10)
		got := decodeAs[apigen.Policy](t, a.do(http.MethodGet, path, a.viewer, nil), http.StatusOK)
		if got.PacketsMatched != 3 || got.BytesMatched != 300 || got.ActiveFlows != 1 || got.LastSeen == nil {
			t.Errorf("live fields = %d packets %d bytes %d flows last %v, want 3 300 1 and a time",
				got.PacketsMatched, got.BytesMatched, got.ActiveFlows, got.LastSeen)
		}

		// Disabling keeps the counters and takes the policy out of classification.
		upd := decodeAs[apigen.Policy](t, a.do(http.MethodPatch, path, a.operator, map[string]any{"enabled": false}), http.StatusOK)
		if upd.Enabled || upd.PacketsMatched != 3 || upd.Priority != 5 || upd.Match.Protocol == nil {
			t.Errorf("after disabling: %+v", upd)
		}
		if id, ok := a.collector.Classify(flow); ok && id == p.ID {
			t.Error("a disabled policy still classifies")
		}
		// match replaces the whole object.
		upd = decodeAs[apigen.Policy](t, a.do(http.MethodPatch, path, a.operator, map[string]any{"match": map[string]any{"src_cidr": "192.0.2.0/24"}}), http.StatusOK)
		if upd.Match.Protocol != nil || upd.Match.DstCIDR != nil || upd.Match.DstPorts != nil || *upd.Match.SrcCIDR != "192.0.2.0/24" {
			t.Errorf("match after replacing: %+v", upd.Match)
		}
		upd = decodeAs[apigen.Policy](t, a.do(http.MethodPatch, path, a.operator, map[string]any{"action": map[string]any{"type": "drop"}}), http.StatusOK)
		if typ, pathID := policyActionFields(upd.Action); typ != storage.ActionDrop || pathID != nil {
			t.Errorf("action after PATCH drop: %+v", upd.Action)
		}

		list := decodeAs[apigen.PolicyList](t, a.do(http.MethodGet, "/api/v1/policies", a.viewer, nil), http.StatusOK)
		if len(list.Items) != 2 || list.Items[1].ID != p.ID || list.Items[1].PacketsMatched != 3 {
			t.Errorf("list = %+v", list.Items)
		}

		a.do(http.MethodDelete, path, a.operator, nil)
		if _, ok := a.collector.PolicyStats(p.ID); ok {
			t.Error("the collector still knows the deleted policy")
		}
		var actions []any
		for _, e := range a.rec.takeEvents() {
			if e.Type != "policy.updated" || e.Data["policy_id"] != float64(p.ID) {
				t.Errorf("event %+v", e)
			}
			actions = append(actions, e.Data["action"])
		}
		if !slices.Equal(actions, []any{"create", "update", "update", "update", "delete"}) {
			t.Errorf("policy.updated actions = %v", actions)
		}
		entries := a.auditOf("policy", strconv.FormatInt(p.ID, 10))
		if len(entries) != 5 || !slices.Equal(toStrings(entries[1].Details["changed"]), []string{"enabled"}) {
			t.Errorf("audit = %+v", entries)
		}
	})
}

func TestPolicyCountersWithoutCollectorAreZero(t *testing.T) {
	a := newTestAPI(t, storage.DialectSQLite, withConfig(func(c *Config) { c.Collector = nil }))
	fx := a.seed()
	got := decodeAs[apigen.Policy](t, a.do(http.MethodGet, "/api/v1/policies/"+strconv.FormatInt(fx.policy.ID, 10), a.viewer, nil), http.StatusOK)
	if got.PacketsMatched != 0 || got.BytesMatched != 0 || got.ActiveFlows != 0 || got.LastSeen != nil {
		t.Errorf("live fields without a collector: %+v", got)
	}
}

func TestTokens(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		r := a.do(http.MethodPost, "/api/v1/tokens", a.admin, map[string]any{"name": "grafana", "role": "viewer"})
		created := decodeAs[apigen.TokenCreated](t, r, http.StatusCreated)
		if created.Name != "grafana" || created.Role != apigen.RoleViewer || len(created.Token) < 32 {
			t.Fatalf("created %+v", created)
		}
		// The new secret works at once, with its role.
		decodeAs[apigen.SiteList](t, a.do(http.MethodGet, "/api/v1/sites", created.Token, nil), http.StatusOK)
		a.do(http.MethodPost, "/api/v1/sites", created.Token, map[string]any{"name": "x"}).problem(t, http.StatusForbidden)

		var revoked []int64
		for i := range 4 {
			tok := decodeAs[apigen.TokenCreated](t, a.do(http.MethodPost, "/api/v1/tokens", a.admin, map[string]any{"name": a.name("t"), "role": "operator"}), http.StatusCreated)
			if i%2 == 0 {
				revoked = append(revoked, tok.ID)
			}
		}
		for _, id := range revoked {
			a.do(http.MethodDelete, "/api/v1/tokens/"+strconv.FormatInt(id, 10), a.admin, nil)
		}
		// Pages of active tokens only, however the revoked ones fall between them.
		var listed []int64
		cursor := ""
		for range 10 {
			q := "?limit=2"
			if cursor != "" {
				q += "&cursor=" + url.QueryEscape(cursor)
			}
			r := a.do(http.MethodGet, "/api/v1/tokens"+q, a.admin, nil)
			for _, secret := range []string{created.Token, a.viewer, storage.HashToken(created.Token)} {
				if bytes.Contains(r.Body, []byte(secret)) {
					t.Fatal("a token list shows a secret or hash")
				}
			}
			page := decodeAs[apigen.TokenList](t, r, http.StatusOK)
			if len(page.Items) > 2 {
				t.Errorf("page of %d, limit 2", len(page.Items))
			}
			for _, tok := range page.Items {
				listed = append(listed, tok.ID)
			}
			if page.NextCursor == nil {
				break
			}
			cursor = *page.NextCursor
		}
		if len(listed) != 3+1+2 { // the harness's three, grafana, two of four
			t.Errorf("listed %v", listed)
		}
		for _, id := range revoked {
			if slices.Contains(listed, id) {
				t.Errorf("revoked token %d is listed", id)
			}
		}

		// Revocation takes effect at once, even for a token the authenticator has cached.
		a.do(http.MethodDelete, "/api/v1/tokens/"+strconv.FormatInt(created.ID, 10), a.admin, nil)
		p := a.do(http.MethodGet, "/api/v1/sites", created.Token, nil).problem(t, http.StatusUnauthorized)
		if p.Type != problemTypeBase+"unauthenticated" {
			t.Errorf("problem type %q", p.Type)
		}
		a.do(http.MethodDelete, "/api/v1/tokens/"+strconv.FormatInt(created.ID, 10), a.admin, nil).problem(t, http.StatusNotFound)

		entries := a.auditOf("token", strconv.FormatInt(created.ID, 10))
		if len(entries) != 2 || entries[0].Action != apigen.AuditActionCreate || entries[1].Action != apigen.AuditActionDelete ||
			entries[1].Details["revoked"] != true || entries[0].Actor != "test-admin" {
			t.Errorf("token audit = %+v", entries)
		}
		raw := a.do(http.MethodGet, "/api/v1/audit?resource_kind=token&limit=1000", a.viewer, nil)
		if bytes.Contains(raw.Body, []byte(created.Token)) || bytes.Contains(raw.Body, []byte(storage.HashToken(created.Token))) {
			t.Error("the audit log holds a secret or its hash")
		}
	})
}
