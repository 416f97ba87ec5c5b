package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/patronus-sdwan/patronus/api"
	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

const adminToken = "loadgen-test-admin-token-0123456789abcdef"

// startServer serves the API on SQLite from an in-process test server, with two policies: one
// that classifies UDP to port 5060 and one that matches nothing the generator sends.
func startServer(t *testing.T) string {
	t.Helper()
	db := storagetest.Open(t, storage.DialectSQLite)
	store := storage.NewStore(db)
	udp := 17
	for _, p := range []storage.Policy{
		{Name: "voip", Priority: 1, Enabled: true, Protocol: &udp, DstPorts: []storage.PortRange{{From: 5060, To: 5060}}, ActionType: storage.ActionDrop},
		{Name: "elsewhere", Priority: 2, Enabled: true, DstCIDR: "192.0.2.0/24", ActionType: storage.ActionDrop},
	} {
		if err := store.Policies().Create(context.Background(), &p); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := api.New(api.Config{
		DB: db, AdminToken: adminToken, Logger: slog.New(slog.DiscardHandler),
		Collector: collector.New(collector.Config{Logger: slog.New(slog.DiscardHandler)}),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs.URL
}

// serverStats reads GET /api/v1/stats.
func serverStats(t *testing.T, base string) apigen.GlobalStats {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/stats", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st apigen.GlobalStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/stats: %s, %v", resp.Status, err)
	}
	return st
}

// scan finds re in out and returns its integer groups.
func scan(t *testing.T, out, re string) []int64 {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q in the summary:\n%s", re, out)
	}
	var ns []int64
	for _, s := range m[1:] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		ns = append(ns, n)
	}
	return ns
}

// TestSummaryMatchesServer runs the generator for a second against a real server and checks
// that the summary it prints adds up to what the server counted.
func TestSummaryMatchesServer(t *testing.T) {
	for _, gzip := range []bool{false, true} {
		t.Run(fmt.Sprintf("gzip=%v", gzip), func(t *testing.T) {
			base := startServer(t)
			var stdout, stderr bytes.Buffer
			args := []string{"--url", base, "--token", adminToken, "--batch", "500", "--concurrency", "2",
				"--duration", "500ms", "--flows", "2000", "--churn", "0.05", "--policies", "2", "--progress", "100ms",
				"--gzip=" + strconv.FormatBool(gzip)}
			if err := run(context.Background(), args, &stdout, &stderr); err != nil {
				t.Fatalf("run: %v\n%s%s", err, stdout.String(), stderr.String())
			}
			out := stdout.String()
			batches := scan(t, out, `batches:  (\d+) accepted, (\d+) errors`)
			reports := scan(t, out, `reports:  (\d+) accepted \((\d+) reports/s\), (\d+) classified, (\d+) unclassified`)
			traffic := scan(t, out, `traffic:  (\d+) packets, (\d+) bytes`)
			scan(t, out, `latency:  p50 \S+, p99 \S+, max \S+`)
			if batches[0] == 0 || batches[1] != 0 {
				t.Fatalf("batches %d accepted, %d errors; want some and none:\n%s", batches[0], batches[1], out)
			}
			if reports[0] != batches[0]*500 || reports[1] <= 0 || reports[2]+reports[3] != reports[0] {
				t.Errorf("reports %v for %d batches of 500", reports, batches[0])
			}
			st := serverStats(t, base)
			if st.Packets != traffic[0] || st.Bytes != traffic[1] || st.UnclassifiedReports != reports[3] {
				t.Errorf("the server counted %d packets, %d bytes, %d unclassified reports; the summary says %d, %d, %d",
					st.Packets, st.Bytes, st.UnclassifiedReports, traffic[0], traffic[1], reports[3])
			}
			// Given policy ids and the voip policy's port both classify; the rest does not.
			if reports[2] == 0 || reports[3] == 0 || st.ActiveFlows == 0 {
				t.Errorf("classified %d, unclassified %d, active flows %d: want all non-zero", reports[2], reports[3], st.ActiveFlows)
			}
			if !strings.Contains(stderr.String(), "reports/s") {
				t.Errorf("no progress line on stderr: %q", stderr.String())
			}
		})
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--token", "x", "--batch", "0"},
		{"--token", "x", "--batch", "10001"},
		{"--token", "x", "--concurrency", "0"},
		{"--token", "x", "--churn", "2"},
		{"--token", "x", "extra"},
		{"--token", ""},
	} {
		if err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("run %q: no error", args)
		}
	}
	t.Run("RefusedBatches", func(t *testing.T) {
		base := startServer(t)
		var stdout bytes.Buffer
		err := run(context.Background(), []string{"--url", base, "--token", "not-a-token", "--duration", "50ms", "--progress", "0"}, &stdout, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(stdout.String(), "0 accepted") {
			t.Errorf("with a bad token: %v\n%s", err, stdout.String())
		}
	})
	t.Run("StopsAtFirstRefusal", func(t *testing.T) {
		// A viewer token is refused with 403 on every batch: the run stops at once instead of
		// sending thousands (5,493 in 3 s before), and says what to do.
		for _, tc := range []struct {
			status int
			words  string
		}{{http.StatusForbidden, "operator or admin token"}, {http.StatusUnauthorized, "unknown or revoked"}} {
			var sent atomic.Int64
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				sent.Add(1)
				w.WriteHeader(tc.status)
			}))
			var stdout bytes.Buffer
			err := run(context.Background(), []string{"--url", hs.URL, "--token", "t", "--concurrency", "2", "--duration", "2s", "--progress", "0"}, &stdout, &bytes.Buffer{})
			hs.Close()
			if err == nil || !strings.Contains(err.Error(), "first refused batch") || !strings.Contains(err.Error(), tc.words) {
				t.Errorf("%d: error %v, want the first refusal named with %q", tc.status, err, tc.words)
			}
			if n := sent.Load(); n > 2 {
				t.Errorf("%d: %d batches sent, want at most one per worker", tc.status, n)
			}
		}
	})
}

// TestUnansweredBatches: batches the server took but never answered (it hung up, as a killed
// server does) are counted apart from refused ones, with their packets, because the server
// may have recorded them.
func TestUnansweredBatches(t *testing.T) {
	var n int
	var mu sync.Mutex
	hangUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		odd := n%2 == 1
		mu.Unlock()
		if odd {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		http.Error(w, "refused", http.StatusForbidden)
	}))
	defer hangUp.Close()
	var stdout, stderr bytes.Buffer
	args := []string{"--url", hangUp.URL, "--token", adminToken, "--batch", "10", "--concurrency", "1", "--duration", "200ms"}
	_ = run(context.Background(), args, &stdout, &stderr) // no batch accepted: an error
	out := stdout.String()
	errs := scan(t, out, `batches:  0 accepted, (\d+) errors`)
	unanswered := scan(t, out, `unanswered: (\d+) batches, (\d+) packets`)
	if errs[0] < 2 || unanswered[0] == 0 || unanswered[0] >= errs[0] || unanswered[1] == 0 {
		t.Fatalf("errors %v, unanswered %v:\n%s", errs, unanswered, out)
	}
}
