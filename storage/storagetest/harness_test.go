package storagetest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// TestInfluxRoundTrip proves the harness: one point written through influxdb-client-go/v2 to
// the real InfluxDB comes back from a Flux query.
func TestInfluxRoundTrip(t *testing.T) {
	serverURL, bucket := storagetest.InfluxDatabase(t)
	client := influxdb2.NewClient(serverURL, "patronus:patronus")
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	at := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	point := influxdb2.NewPoint("harness", map[string]string{"policy_id": "7"}, map[string]any{"packets": int64(42)}, at)
	if err := client.WriteAPIBlocking("patronus", bucket).WritePoint(ctx, point); err != nil {
		t.Fatalf("write: %v", err)
	}
	flux := fmt.Sprintf(`from(bucket: %q)
  |> range(start: -1h)
  |> filter(fn: (r) => r._measurement == "harness" and r._field == "packets")`, bucket)
	res, err := client.QueryAPI("patronus").Query(ctx, flux)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	defer res.Close()
	var rows int
	for res.Next() {
		rec := res.Record()
		rows++
		if rec.Value() != int64(42) || rec.ValueByKey("policy_id") != "7" || !rec.Time().Equal(at) {
			t.Errorf("read back %v policy=%v at %v", rec.Value(), rec.ValueByKey("policy_id"), rec.Time())
		}
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Fatalf("read %d rows, want 1", rows)
	}
}
