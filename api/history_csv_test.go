package api

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/patronus-sdwan/patronus/storage/history"
)

// TestStatsHistoryCSV: the all-policies history as CSV, by format=csv or Accept: text/csv, one
// row per series and window in the JSON order, led by the policy id (0 for other); compare
// is JSON only.
func TestStatsHistoryCSV(t *testing.T) {
	forEachHistoryBackend(t, func(t *testing.T, a historyAPI) {
		pol1, pol2 := a.seed().policy, a.seed().policy
		p1, p2 := pol1.ID, pol2.ID
		a.write(
			history.PolicyDelta{PolicyID: p1, Instance: "a", Time: at("11:10:00"), Packets: 10, Bytes: 1000, ActiveFlows: 1},
			history.PolicyDelta{PolicyID: p2, Instance: "a", Time: at("11:40:00"), Packets: 50, Bytes: 5000, ActiveFlows: 2},
		)
		rate := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
		id := func(n int64) string { return strconv.FormatInt(n, 10) }
		lead1, lead2 := id(p1)+","+pol1.Name, id(p2)+","+pol2.Name
		want := "policy_id,policy_name,time,packets,bytes,active_flows,pps,bps,peak_bps\n" +
			lead2 + ",2025-06-01T11:00:00Z,0,0,0,0,0,\n" +
			lead2 + ",2025-06-01T11:30:00Z,50,5000,2," + rate(50.0/1800) + "," + rate(5000*8.0/1800) + ",\n" +
			lead1 + ",2025-06-01T11:00:00Z,10,1000,1," + rate(10.0/1800) + "," + rate(1000*8.0/1800) + ",\n" +
			lead1 + ",2025-06-01T11:30:00Z,0,0,0,0,0,\n"
		query := queryOf("from", "-1h", "every", "30m")
		byFormat := a.do(http.MethodGet, "/api/v1/stats/history"+query+"&format=csv", a.viewer, nil)
		req := a.newRequest(http.MethodGet, "/api/v1/stats/history"+query, a.viewer, nil)
		req.Header.Set("Accept", "text/csv")
		byAccept := a.send(req, true)
		for name, r := range map[string]apiResponse{"format=csv": byFormat, "Accept: text/csv": byAccept} {
			if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") || r.Header.Get("X-History-Tier") != "raw" {
				t.Errorf("%s: %d %s, X-History-Tier %q", name, r.Status, r.Header.Get("Content-Type"), r.Header.Get("X-History-Tier"))
			}
			if string(r.Body) != want {
				t.Errorf("%s: body\n%s\nwant\n%s", name, r.Body, want)
			}
		}

		// top=1 with other: the top policy, then policy 0 holding the rest, without a name.
		r := a.do(http.MethodGet, "/api/v1/stats/history"+query+"&top=1&other=true&format=csv", a.viewer, nil)
		var lead []string
		for _, line := range strings.Split(strings.TrimSpace(string(r.Body)), "\n")[1:] {
			f := strings.SplitN(line, ",", 3)
			lead = append(lead, f[0]+","+f[1])
		}
		if !slices.Equal(lead, []string{lead2, lead2, "0,", "0,"}) {
			t.Errorf("top=1&other=true as CSV:\n%s\nwant two rows of %s, then two of 0 without a name", r.Body, lead2)
		}

		p := a.send(a.newRequest(http.MethodGet, "/api/v1/stats/history"+query+"&compare=previous&format=csv", a.viewer, nil), false).problem(t, http.StatusBadRequest)
		if !slices.Equal(p.fields(), []string{"compare"}) {
			t.Errorf("compare with CSV: %+v, want a 400 naming compare", p)
		}
		p = a.send(a.newRequest(http.MethodGet, "/api/v1/stats/history"+query+"&format=xml", a.viewer, nil), false).problem(t, http.StatusBadRequest)
		if !slices.Equal(p.fields(), []string{"format"}) || !strings.Contains(p.Errors[0].Message, "json, csv") {
			t.Errorf("format=xml: %+v, want a 400 naming format", p)
		}
	})
}
