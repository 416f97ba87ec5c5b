package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/history"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// influxQuery runs an InfluxQL query on db and returns the rows of its first series.
func influxQuery(t *testing.T, serverURL, db, q string) [][]any {
	t.Helper()
	resp, err := http.Get(serverURL + "/query?" + url.Values{"db": {db}, "q": {q}, "epoch": {"s"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("query %q: HTTP %d %s %v", q, resp.StatusCode, body, err)
	}
	var out struct {
		Results []struct {
			Series []struct {
				Values [][]any `json:"values"`
			} `json:"series"`
			Error string `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal(body, &out); err != nil || len(out.Results) != 1 || out.Results[0].Error != "" {
		t.Fatalf("query %q: %s %v", q, body, err)
	}
	if len(out.Results[0].Series) == 0 {
		return nil
	}
	return out.Results[0].Series[0].Values
}

// TestPathMetricsInfluxPoint: a PUT of metrics on a server whose history is InfluxDB writes one
// path_metrics point at measured_at, tagged with the path's name.
func TestPathMetricsInfluxPoint(t *testing.T) {
	serverURL, bucket := storagetest.InfluxDatabase(t)
	db, _, _ := strings.Cut(bucket, "/")
	// InfluxDB 1.8 answers CREATE DATABASE before running it: run it again and read the answer.
	influxQuery(t, serverURL, db, "CREATE DATABASE "+db)
	h, err := history.NewInfluxHistory(history.InfluxConfig{URL: serverURL, Token: "patronus:patronus", Org: "patronus", Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	a := newTestAPI(t, storage.DialectSQLite, withConfig(func(cfg *Config) { cfg.History = h }))
	fx := a.seed()
	put := a.putMetrics(fx.path.ID, metricsBody(20, 0.5))

	rows := influxQuery(t, serverURL, db,
		fmt.Sprintf(`SELECT latency_ms, packet_loss_pct, score, path_name FROM path_metrics WHERE path_id = '%d'`, fx.path.ID))
	measured := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC).Unix()
	want := []any{float64(measured), 20.0, 0.5, float64(put.Score), fx.path.Name}
	if len(rows) != 1 || fmt.Sprint(rows[0]) != fmt.Sprint(want) {
		t.Fatalf("path_metrics points = %v, want one %v", rows, want)
	}
}
