package api

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/collector"
)

// requireConflict checks a 409 whose detail and named field say who holds the value: every
// one of names appears in the detail, and the field's message names the holder's id.
func requireConflict(t *testing.T, r apiResponse, field, holderID string, names ...string) {
	t.Helper()
	p := r.problem(t, http.StatusConflict)
	if !slices.Equal(p.fields(), []string{field}) {
		t.Errorf("409 names fields %v, want [%s]: %s", p.fields(), field, r)
	}
	for _, want := range append([]string{holderID}, names...) {
		if !strings.Contains(p.Detail, want) {
			t.Errorf("409 detail %q does not name %q", p.Detail, want)
		}
	}
	if len(p.Errors) == 1 && !strings.Contains(p.Errors[0].Message, holderID) {
		t.Errorf("409 field message %q does not name %s", p.Errors[0].Message, holderID)
	}
}

func TestInventoryConflicts(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed()
		sitePath := "/api/v1/sites/" + fx.site2.ID + "/endpoints"

		t.Run("EndpointAddress", func(t *testing.T) {
			first := decodeAs[apigen.Endpoint](t, a.do(http.MethodPost, sitePath, a.operator,
				map[string]any{"name": "v6-wan", "address": "2001:DB8:0:0::abc"}), http.StatusCreated)
			if first.Address != "2001:db8::abc" {
				t.Errorf("address answered as %q, want the canonical 2001:db8::abc", first.Address)
			}
			before := a.snapshot()
			// Another spelling of the same address, on another site: a 409 naming the holder.
			r := a.do(http.MethodPost, "/api/v1/sites/"+fx.site.ID+"/endpoints", a.operator,
				map[string]any{"name": "again", "address": "2001:db8::ABC"})
			requireConflict(t, r, "address", first.ID.String(), "v6-wan", "2001:db8::abc")
			// Moving an endpoint onto it is refused the same way, and so is the seed's address.
			r = a.do(http.MethodPatch, "/api/v1/endpoints/"+fx.endpoint.ID, a.operator, map[string]any{"address": "2001:0db8::0abc"})
			requireConflict(t, r, "address", first.ID.String(), "v6-wan")
			r = a.do(http.MethodPatch, "/api/v1/endpoints/"+first.ID.String(), a.operator, map[string]any{"address": fx.endpoint.Address})
			requireConflict(t, r, "address", fx.endpoint.ID, fx.endpoint.Name, fx.endpoint.Address)
			if diff := diffSnapshots(before, a.snapshot()); diff != "" {
				t.Errorf("refused writes changed state:\n%s", diff)
			}
			// Keeping one's own address, in another spelling, is no clash.
			upd := decodeAs[apigen.Endpoint](t, a.do(http.MethodPatch, "/api/v1/endpoints/"+first.ID.String(), a.operator,
				map[string]any{"address": "2001:db8:0::ABC", "name": "v6-wan-renamed"}), http.StatusOK)
			if upd.Address != "2001:db8::abc" || upd.Name != "v6-wan-renamed" {
				t.Errorf("after a PATCH keeping the address: %+v", upd)
			}
		})

		t.Run("PathEnds", func(t *testing.T) {
			before := a.snapshot()
			r := a.do(http.MethodPost, "/api/v1/paths", a.operator, map[string]any{
				"name": "twin", "local_endpoint_id": fx.endpoint.ID, "remote_endpoint_id": fx.endpoint2.ID,
			})
			requireConflict(t, r, "remote_endpoint_id", strconv.FormatInt(fx.path.ID, 10), fx.path.Name, fx.endpoint.ID, fx.endpoint2.ID)
			if diff := diffSnapshots(before, a.snapshot()); diff != "" {
				t.Errorf("a refused path changed state:\n%s", diff)
			}
			// The other direction is another path.
			back := decodeAs[apigen.Path](t, a.do(http.MethodPost, "/api/v1/paths", a.operator, map[string]any{
				"name": "back", "local_endpoint_id": fx.endpoint2.ID, "remote_endpoint_id": fx.endpoint.ID,
			}), http.StatusCreated)
			r = a.do(http.MethodPost, "/api/v1/paths", a.operator, map[string]any{
				"name": "back-again", "local_endpoint_id": fx.endpoint2.ID, "remote_endpoint_id": fx.endpoint.ID,
			})
			requireConflict(t, r, "remote_endpoint_id", strconv.FormatInt(back.ID, 10), "back")
		})

		t.Run("TokenName", func(t *testing.T) {
			first := decodeAs[apigen.TokenCreated](t, a.do(http.MethodPost, "/api/v1/tokens", a.admin,
				map[string]any{"name": "grafana", "role": "viewer"}), http.StatusCreated)
			before := a.snapshot()
			r := a.do(http.MethodPost, "/api/v1/tokens", a.admin, map[string]any{"name": "grafana", "role": "admin"})
			requireConflict(t, r, "name", strconv.FormatInt(first.ID, 10), "grafana")
			if diff := diffSnapshots(before, a.snapshot()); diff != "" {
				t.Errorf("a refused token changed state:\n%s", diff)
			}
			// Once it is revoked, its name is free.
			a.do(http.MethodDelete, "/api/v1/tokens/"+strconv.FormatInt(first.ID, 10), a.admin, nil).problemUnless(t, http.StatusNoContent)
			decodeAs[apigen.TokenCreated](t, a.do(http.MethodPost, "/api/v1/tokens", a.admin,
				map[string]any{"name": "grafana", "role": "viewer"}), http.StatusCreated)
		})

		t.Run("SiteName", func(t *testing.T) {
			before := a.snapshot()
			r := a.do(http.MethodPost, "/api/v1/sites", a.operator, map[string]any{"name": fx.site.Name})
			requireConflict(t, r, "name", fx.site.ID, fx.site.Name)
			r = a.do(http.MethodPatch, "/api/v1/sites/"+fx.site2.ID, a.operator, map[string]any{"name": fx.site.Name})
			requireConflict(t, r, "name", fx.site.ID, fx.site.Name)
			if diff := diffSnapshots(before, a.snapshot()); diff != "" {
				t.Errorf("a refused site write changed state:\n%s", diff)
			}
		})

		t.Run("PolicyName", func(t *testing.T) {
			before := a.snapshot()
			holder := strconv.FormatInt(fx.policy.ID, 10)
			r := a.do(http.MethodPost, "/api/v1/policies", a.operator, map[string]any{
				"name": fx.policy.Name, "priority": 3, "match": map[string]any{}, "action": map[string]any{"type": "drop"}})
			requireConflict(t, r, "name", holder, fx.policy.Name)
			if diff := diffSnapshots(before, a.snapshot()); diff != "" {
				t.Errorf("a refused policy create changed state:\n%s", diff)
			}
			other := decodeAs[apigen.Policy](t, a.do(http.MethodPost, "/api/v1/policies", a.operator, map[string]any{
				"name": a.name("other"), "priority": 4, "match": map[string]any{}, "action": map[string]any{"type": "drop"}}), http.StatusCreated)
			before = a.snapshot()
			r = a.do(http.MethodPatch, "/api/v1/policies/"+strconv.FormatInt(other.ID, 10), a.operator, map[string]any{"name": fx.policy.Name})
			requireConflict(t, r, "name", holder, fx.policy.Name)
			if diff := diffSnapshots(before, a.snapshot()); diff != "" {
				t.Errorf("a refused policy write changed state:\n%s", diff)
			}
		})
	})
}

// TestSamePriorityClassifiesByLowerID checks that policies may share a priority and that
// traffic both match goes to the lower id, however they were created or changed since.
func TestSamePriorityClassifiesByLowerID(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed()
		create := func(name string, priority int) apigen.Policy {
			return decodeAs[apigen.Policy](t, a.do(http.MethodPost, "/api/v1/policies", a.operator, map[string]any{
				"name": name, "priority": priority,
				"match":  map[string]any{"protocol": 6, "dst_cidr": "10.40.0.0/16"},
				"action": map[string]any{"type": "prefer_path", "path_id": fx.path.ID},
			}), http.StatusCreated)
		}
		first, second := create(a.name("tie-a"), 7), create(a.name("tie-b"), 7)
		if first.ID >= second.ID {
			t.Fatalf("ids %d, %d: want the first created lower", first.ID, second.ID)
		}
		flow := flowOf("10.1.0.1", "10.40.1.1", 40000, 443, 6)
		send := func() {
			t.Helper()
			a.ingest([]collector.Report{{Flow: flow, Packets: 1, Bytes: 100}}).problemUnless(t, http.StatusOK)
		}
		requireCounts := func(when string, lower, higher int64) {
			t.Helper()
			if got := a.policyStatsOf(first.ID).PacketsMatched; got != lower {
				t.Errorf("%s: lower id %d counted %d packets, want %d", when, first.ID, got, lower)
			}
			if got := a.policyStatsOf(second.ID).PacketsMatched; got != higher {
				t.Errorf("%s: higher id %d counted %d packets, want %d", when, second.ID, got, higher)
			}
		}
		send()
		requireCounts("both at priority 7", 1, 0)

		// Changing the lower one last (or the higher one) changes nothing.
		a.do(http.MethodPatch, "/api/v1/policies/"+strconv.FormatInt(second.ID, 10), a.operator, map[string]any{"name": a.name("tie-b2")}).problemUnless(t, http.StatusOK)
		a.do(http.MethodPatch, "/api/v1/policies/"+strconv.FormatInt(first.ID, 10), a.operator, map[string]any{"priority": 7, "name": a.name("tie-a2")}).problemUnless(t, http.StatusOK)
		send()
		requireCounts("after updating both", 2, 0)

		// A lower priority still beats a lower id.
		a.do(http.MethodPatch, "/api/v1/policies/"+strconv.FormatInt(second.ID, 10), a.operator, map[string]any{"priority": 6}).problemUnless(t, http.StatusOK)
		send()
		requireCounts("higher id at priority 6", 2, 1)
	})
}
