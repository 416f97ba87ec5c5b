package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/api/apigen"
)

// TestIdleServiceReportsFlushHealth: with no traffic at all, /stats/pipeline says when the
// last flush cycle succeeded, and that time keeps moving: it reports flush health, not
// traffic (a Grafana "seconds since the last flush" panel must not alarm on a quiet night).
func TestIdleServiceReportsFlushHealth(t *testing.T) {
	s := startServe(t, "--flush-interval", "100ms")
	pipeline := func() apigen.PipelineStats {
		t.Helper()
		status, _, body := get(t, s.base+"/api/v1/stats/pipeline", hostileAdminToken)
		if status != http.StatusOK {
			t.Fatalf("GET /api/v1/stats/pipeline = %d %s", status, body)
		}
		var ps apigen.PipelineStats
		if err := json.Unmarshal([]byte(body), &ps); err != nil {
			t.Fatal(err)
		}
		return ps
	}
	var first time.Time
	eventually(t, 10*time.Second, "last_success_at set with no traffic", func() bool {
		if ps := pipeline(); ps.LastSuccessAt != nil {
			first = *ps.LastSuccessAt
			return true
		}
		return false
	})
	eventually(t, 10*time.Second, "last_success_at moving with no traffic", func() bool {
		ps := pipeline()
		return ps.LastSuccessAt != nil && ps.LastSuccessAt.After(first) && ps.PointsWritten == 0
	})
}
