package api

import (
	"bytes"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/api/events"
	"github.com/patronus-sdwan/patronus/storage"
)

// getPolicyRaw is GET /api/v1/policies/{id} as the raw body and decoded.
func (a *testAPI) getPolicyRaw(id int64) ([]byte, apigen.Policy) {
	a.t.Helper()
	r := a.do(http.MethodGet, "/api/v1/policies/"+strconv.FormatInt(id, 10), a.viewer, nil)
	return r.Body, decodeAs[apigen.Policy](a.t, r, http.StatusOK)
}

// requirePathCleared checks that the policy reads as prefer_path with path_id null (the key
// present, as the spec requires), and that its updated_at moved past before.
func (a *testAPI) requirePathCleared(id int64, before time.Time) apigen.Policy {
	a.t.Helper()
	raw, p := a.getPolicyRaw(id)
	if !bytes.Contains(raw, []byte(`"action":{"path_id":null,"type":"prefer_path"}`)) &&
		!bytes.Contains(raw, []byte(`"action":{"type":"prefer_path","path_id":null}`)) {
		a.t.Errorf("policy %d after its path went: %s, want action {\"type\":\"prefer_path\",\"path_id\":null}", id, raw)
	}
	if !p.UpdatedAt.After(before) {
		a.t.Errorf("policy %d updated_at = %v, not after %v", id, p.UpdatedAt, before)
	}
	return p
}

// clearedEvents returns the policy.updated events among evs, checking each names the cleared
// path and carries the change's audit id.
func clearedEvents(t *testing.T, evs []event) (policies, paths []int64) {
	t.Helper()
	for _, e := range evs {
		if e.Type != eventPolicyUpdated {
			continue
		}
		if e.Data["action"] != "update" || e.Data["audit_id"] == nil {
			t.Errorf("policy.updated of a deletion = %+v, want action update and an audit_id", e)
		}
		id, _ := e.Data["policy_id"].(float64)
		path, _ := e.Data["cleared_path_id"].(float64)
		policies = append(policies, int64(id))
		paths = append(paths, int64(path))
	}
	return policies, paths
}

func TestDeletionClearsPreferredPath(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		t.Run("PathDelete", func(t *testing.T) {
			fx := a.seed()
			a.rec.takeEvents()
			a.do(http.MethodDelete, "/api/v1/paths/"+strconv.FormatInt(fx.path.ID, 10), a.operator, nil).problemUnless(t, http.StatusNoContent)
			a.requirePathCleared(fx.policy.ID, fx.policy.UpdatedAt)
			evs := a.rec.takeEvents()
			if got := eventTypes(evs); !slices.Equal(got, []string{"policy.updated", "path.deleted"}) {
				t.Errorf("events = %v, want policy.updated then path.deleted", got)
			}
			if pols, paths := clearedEvents(t, evs); !slices.Equal(pols, []int64{fx.policy.ID}) || !slices.Equal(paths, []int64{fx.path.ID}) {
				t.Errorf("policy.updated for policies %v paths %v, want %d and %d", pols, paths, fx.policy.ID, fx.path.ID)
			}
		})
		t.Run("EndpointDelete", func(t *testing.T) {
			fx := a.seed()
			a.rec.takeEvents()
			a.do(http.MethodDelete, "/api/v1/endpoints/"+fx.endpoint2.ID, a.operator, nil).problemUnless(t, http.StatusNoContent)
			a.requirePathCleared(fx.policy.ID, fx.policy.UpdatedAt)
			if pols, paths := clearedEvents(t, a.rec.takeEvents()); !slices.Equal(pols, []int64{fx.policy.ID}) || !slices.Equal(paths, []int64{fx.path.ID}) {
				t.Errorf("policy.updated for policies %v paths %v, want %d and %d", pols, paths, fx.policy.ID, fx.path.ID)
			}
		})
		t.Run("SiteDelete", func(t *testing.T) {
			f := a.seedDeletion()
			kept, _ := a.getPolicyRaw(f.keptPolicy)
			_, before := a.getPolicyRaw(f.clearedPolicy)
			a.rec.takeEvents()
			del := decodeAs[apigen.SiteDeletionResult](t, a.deleteSite(f.target.ID, "", "", a.admin), http.StatusOK)
			a.requirePathCleared(f.clearedPolicy, before.UpdatedAt)
			if keptAfter, _ := a.getPolicyRaw(f.keptPolicy); !bytes.Equal(kept, keptAfter) {
				t.Errorf("a policy whose path stayed changed:\n before %s\n after  %s", kept, keptAfter)
			}
			evs := a.rec.takeEvents()
			if got := eventTypes(evs); len(got) != 5 || got[0] != "site.deleted" || got[1] != "policy.updated" {
				t.Errorf("events = %v, want site.deleted, policy.updated, then three path.deleted", got)
			}
			if pols, paths := clearedEvents(t, evs); !slices.Equal(pols, []int64{f.clearedPolicy}) || !slices.Equal(paths, f.targetPaths[:1]) {
				t.Errorf("policy.updated for policies %v paths %v, want %d and %d", pols, paths, f.clearedPolicy, f.targetPaths[0])
			}
			for _, e := range evs {
				if e.Data["audit_id"] != float64(*del.AuditID) {
					t.Errorf("event %+v does not carry the deletion's audit id %d", e, *del.AuditID)
				}
			}
		})
		t.Run("DryRunTouchesNothing", func(t *testing.T) {
			f := a.seedDeletion()
			before, _ := a.getPolicyRaw(f.clearedPolicy)
			a.rec.takeEvents()
			decodeAs[apigen.SiteDeletionResult](t, a.deleteSite(f.target.ID, "dry_run=true", "", a.admin), http.StatusOK)
			if after, _ := a.getPolicyRaw(f.clearedPolicy); !bytes.Equal(before, after) {
				t.Errorf("a dry run changed the policy:\n before %s\n after  %s", before, after)
			}
			if evs := a.rec.takeEvents(); len(evs) != 0 {
				t.Errorf("a dry run sent %v", eventTypes(evs))
			}
		})
	})
}

func TestPreferPathWithoutPath(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed()
		// Written with path_id null: accepted, read back the same way.
		body := map[string]any{"name": a.name("nopath"), "priority": 3, "action": map[string]any{"type": "prefer_path", "path_id": nil}}
		created := decodeAs[apigen.Policy](t, a.do(http.MethodPost, "/api/v1/policies", a.operator, body), http.StatusCreated)
		if typ, pathID := policyActionFields(created.Action); typ != storage.ActionPreferPath || pathID != nil {
			t.Errorf("created action %+v, want prefer_path with path_id null", created.Action)
		}
		a.requirePathCleared(created.ID, created.CreatedAt.Add(-time.Second))

		// The routing decision for it falls back to the default choice.
		d := a.decision(fx, &created.ID)
		if d.SelectedPathID != fx.path.ID || !strings.Contains(d.Reason, "prefers no path") {
			t.Errorf("decision for a policy without a path = %+v, want path %d by default, saying it prefers none", d, fx.path.ID)
		}

		// A policy whose path was deleted can be written back exactly as it reads.
		second := a.secondPath(fx)
		p := storage.Policy{Name: a.name("pref"), Priority: 4, Enabled: true, ActionType: storage.ActionPreferPath, PathID: &second.ID}
		if err := a.store.Policies().Create(t.Context(), &p); err != nil {
			t.Fatal(err)
		}
		a.do(http.MethodDelete, "/api/v1/paths/"+strconv.FormatInt(second.ID, 10), a.operator, nil).problemUnless(t, http.StatusNoContent)
		got := a.requirePathCleared(p.ID, p.UpdatedAt)
		path := "/api/v1/policies/" + strconv.FormatInt(p.ID, 10)
		upd := decodeAs[apigen.Policy](t, a.do(http.MethodPatch, path, a.operator, map[string]any{"action": got.Action}), http.StatusOK)
		if typ, pathID := policyActionFields(upd.Action); typ != storage.ActionPreferPath || pathID != nil {
			t.Errorf("action written back as read: %+v", upd.Action)
		}
		// And pointed at a path again.
		upd = decodeAs[apigen.Policy](t, a.do(http.MethodPatch, path, a.operator,
			map[string]any{"action": map[string]any{"type": "prefer_path", "path_id": fx.path.ID}}), http.StatusOK)
		if _, pathID := policyActionFields(upd.Action); pathID == nil || *pathID != fx.path.ID {
			t.Errorf("action after naming a path again: %+v", upd.Action)
		}
		// An absent path_id is still refused: the spec requires the key.
		r := a.send(a.newRequest(http.MethodPatch, path, a.operator, map[string]any{"action": map[string]any{"type": "prefer_path"}}), false)
		if p := r.problem(t, http.StatusUnprocessableEntity); !slices.Contains(p.fields(), "action.path_id") {
			t.Errorf("prefer_path without path_id: problem names %v, want action.path_id", p.fields())
		}
	})
}

// TestDeletionEventOnStream checks that the policy.updated of a path deletion reaches SSE
// subscribers, with the deletion's seq as id, on both databases.
func TestDeletionEventOnStream(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed()
		stream := a.openStream("")
		a.do(http.MethodDelete, "/api/v1/paths/"+strconv.FormatInt(fx.path.ID, 10), a.operator, nil).problemUnless(t, http.StatusNoContent)
		entries := a.auditOf("path", strconv.FormatInt(fx.path.ID, 10))
		if len(entries) != 1 {
			t.Fatalf("audit of the path = %+v, want its deletion", entries)
		}
		seq := uint64(entries[0].ID)
		ev := stream.next()
		if ev.Type != "policy.updated" || ev.ID != seq || ev.IDLine || ev.Data.Data["policy_id"] != float64(fx.policy.ID) ||
			ev.Data.Data["cleared_path_id"] != float64(fx.path.ID) {
			t.Errorf("first event = %+v, want policy.updated of policy %d clearing path %d, id %d without an id line",
				ev, fx.policy.ID, fx.path.ID, seq)
		}
		if ev = stream.next(); ev.Type != "path.deleted" || ev.ID != seq || !ev.IDLine {
			t.Errorf("second event = %+v, want path.deleted with id line %d", ev, seq)
		}
	}, withConfig(func(c *Config) {
		c.Publish = nil // events go to the broker
		c.Events = events.NewBroker(64)
	}))
}
