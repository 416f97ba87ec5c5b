package history_test

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/history"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

func newInflux(t *testing.T, cfg history.InfluxConfig) *history.InfluxHistory {
	t.Helper()
	h, err := history.NewInfluxHistory(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func wantWriteError(t *testing.T, err error, status int, retryable bool, retryAfter time.Duration) {
	t.Helper()
	var werr *history.WriteError
	if !errors.As(err, &werr) {
		t.Fatalf("err = %v (%T), want a *history.WriteError", err, err)
	}
	if werr.Status != status || werr.Retryable != retryable || werr.RetryAfter != retryAfter {
		t.Fatalf("WriteError{Status: %d, Retryable: %v, RetryAfter: %s}, want {%d, %v, %s}; %v",
			werr.Status, werr.Retryable, werr.RetryAfter, status, retryable, retryAfter, err)
	}
}

// fakeWrite is an /api/v2/write that answers with what the test sets, for the answers a real
// server cannot give on demand. It records the requests' Content-Encoding and bodies.
type fakeWrite struct {
	mu        sync.Mutex
	respond   func(w http.ResponseWriter)
	encodings []string
	bodies    []string
}

func (f *fakeWrite) set(respond func(w http.ResponseWriter)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.respond = respond
}

func (f *fakeWrite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v2/write" {
		http.NotFound(w, r)
		return
	}
	body := r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	data, _ := io.ReadAll(body)
	f.mu.Lock()
	f.encodings = append(f.encodings, r.Header.Get("Content-Encoding"))
	f.bodies = append(f.bodies, string(data))
	respond := f.respond
	f.mu.Unlock()
	respond(w)
}

func TestInfluxWriteErrors(t *testing.T) {
	ctx := context.Background()
	batch := []history.PolicyDelta{delta(1, "edge-1", 0, 10, 1000, 2)}

	fake := &fakeWrite{}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	h := newInflux(t, history.InfluxConfig{URL: srv.URL, Org: "patronus", Bucket: "patronus/autogen"})
	status := func(code int, header ...string) func(w http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			for i := 0; i+1 < len(header); i += 2 {
				w.Header().Set(header[i], header[i+1])
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			fmt.Fprintf(w, `{"code":"x","message":"answered %d"}`, code)
		}
	}

	t.Run("TooManyRequestsWithRetryAfterSeconds", func(t *testing.T) {
		fake.set(status(http.StatusTooManyRequests, "Retry-After", "7"))
		wantWriteError(t, h.WriteDeltas(ctx, batch), 429, true, 7*time.Second)
	})
	t.Run("TooManyRequestsWithRetryAfterDate", func(t *testing.T) {
		at := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
		fake.set(status(http.StatusTooManyRequests, "Retry-After", at))
		err := h.WriteDeltas(ctx, batch)
		var werr *history.WriteError
		if !errors.As(err, &werr) || !werr.Retryable || werr.RetryAfter < 80*time.Second || werr.RetryAfter > 90*time.Second {
			t.Fatalf("err = %#v, want retryable after about 90s", err)
		}
	})
	t.Run("ServiceUnavailable", func(t *testing.T) {
		fake.set(status(http.StatusServiceUnavailable, "Retry-After", "2"))
		wantWriteError(t, h.WriteDeltas(ctx, batch), 503, true, 2*time.Second)
	})
	t.Run("InternalServerErrorWithoutRetryAfter", func(t *testing.T) {
		fake.set(status(http.StatusInternalServerError))
		wantWriteError(t, h.WriteDeltas(ctx, batch), 500, true, 0)
	})
	t.Run("BadRequestIsPermanent", func(t *testing.T) {
		fake.set(status(http.StatusBadRequest, "Retry-After", "5"))
		wantWriteError(t, h.WriteDeltas(ctx, batch), 400, false, 0)
	})
	t.Run("RequestEntityTooLargeIsPermanent", func(t *testing.T) {
		fake.set(status(http.StatusRequestEntityTooLarge))
		wantWriteError(t, h.WriteDeltas(ctx, batch), 413, false, 0)
	})
	t.Run("DroppedConnection", func(t *testing.T) {
		fake.set(func(w http.ResponseWriter) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				panic(err)
			}
			conn.Close()
		})
		wantWriteError(t, h.WriteDeltas(ctx, batch), 0, true, 0)
	})
	t.Run("NoAnswerBeforeDeadline", func(t *testing.T) {
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		fake.set(func(w http.ResponseWriter) { <-release })
		deadline, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		wantWriteError(t, h.WriteDeltas(deadline, batch), 0, true, 0)
	})
	t.Run("GzipLineProtocol", func(t *testing.T) {
		fake.mu.Lock()
		fake.encodings, fake.bodies = nil, nil
		fake.mu.Unlock()
		fake.set(func(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) })
		if err := h.WriteDeltas(ctx, batch); err != nil {
			t.Fatal(err)
		}
		fake.mu.Lock()
		defer fake.mu.Unlock()
		want := fmt.Sprintf("policy_traffic,instance=edge-1,policy_id=1 active_flows=2i,bytes=1000i,packets=10i %d\n", base.UnixNano())
		if len(fake.bodies) != 1 || fake.encodings[0] != "gzip" || fake.bodies[0] != want {
			t.Fatalf("requests %q with bodies %q, want one gzip request with %q", fake.encodings, fake.bodies, want)
		}
	})

	t.Run("RealServerDatabaseNotFoundIsPermanent", func(t *testing.T) {
		real := newInflux(t, history.InfluxConfig{URL: storagetest.InfluxURL(t), Token: influxToken, Org: "patronus", Bucket: "no_such_database/autogen"})
		wantWriteError(t, real.WriteDeltas(ctx, batch), 404, false, 0)
	})
	t.Run("RealServerRefusedIsRetryable", func(t *testing.T) {
		down := newInflux(t, history.InfluxConfig{URL: closedURL(t), Org: "patronus", Bucket: "patronus/autogen"})
		wantWriteError(t, down.WriteDeltas(ctx, batch), 0, true, 0)
	})
	t.Run("RealServerAcceptsGzip", func(t *testing.T) {
		real := openInflux(t, "")
		if err := real.WriteDeltas(ctx, batch); err != nil {
			t.Fatal(err)
		}
		wantPoints(t, queryPolicy(t, real, 1, 0, time.Minute, time.Minute), []history.HistoryPoint{point(0, 10, 1000, 2)})
	})
}

// closedURL returns the URL of a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestNewInfluxHistoryValidates(t *testing.T) {
	for name, cfg := range map[string]history.InfluxConfig{
		"NoURL":        {Org: "o", Bucket: "b"},
		"NoBucket":     {URL: "http://127.0.0.1:1", Org: "o"},
		"NoOrg":        {URL: "http://127.0.0.1:1", Bucket: "b"}, // 1.8 answers 404 to writes without one
		"BadWindowing": {URL: "http://127.0.0.1:1", Org: "o", Bucket: "b", Windowing: "both"},
	} {
		if _, err := history.NewInfluxHistory(cfg); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestInfluxPing(t *testing.T) {
	ctx := context.Background()
	t.Run("Up", func(t *testing.T) {
		if err := openInflux(t, "").Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Down", func(t *testing.T) {
		h := newInflux(t, history.InfluxConfig{URL: closedURL(t), Org: "patronus", Bucket: "patronus/autogen"})
		if err := h.Ping(ctx); err == nil {
			t.Fatal("ping of a closed port succeeded")
		}
	})
	t.Run("MissingBucket", func(t *testing.T) {
		// /ping answers whatever the bucket; the query behind it does not.
		h := newInflux(t, history.InfluxConfig{URL: storagetest.InfluxURL(t), Token: influxToken, Org: "patronus", Bucket: "no_such_database/autogen"})
		if err := h.Ping(ctx); err == nil || !strings.Contains(err.Error(), "no_such_database") {
			t.Fatalf("ping = %v, want a query error naming the bucket", err)
		}
	})
}

// TestInfluxAutoWindowing checks the default plan on the real server: 1.8 (built from source,
// its /ping says version "unknown") has no /ready, so the store reads with InfluxQL, with the same results as the
// suite's forced plans.
func TestInfluxAutoWindowing(t *testing.T) {
	h := openInflux(t, history.InfluxWindowingAuto)
	if got := h.ReadPath(); got != "unknown" {
		t.Errorf("ReadPath before Detect = %q, want unknown", got)
	}
	if got := h.Detect(context.Background()); got != "influxql" {
		t.Fatalf("Detect = %q, want influxql", got)
	}
	write(t, h, delta(1, "a", 0, 1, 10, 3), delta(1, "b", 30*time.Second, 2, 20, 4), delta(1, "a", 3*time.Minute, 4, 40, 1))
	wantPoints(t, queryPolicy(t, h, 1, 0, 3*time.Minute, time.Minute), []history.HistoryPoint{
		point(0, 3, 30, 7), point(time.Minute, 0, 0, 0), point(2*time.Minute, 0, 0, 0),
	})
}

// TestInfluxDetectVersion reads the version header of servers that cannot run here: a 2.x
// server gets Flux with aggregateWindow, a release 1.x InfluxQL; one that does not say and
// has a /ready (this fake has one) is 2.x.
func TestInfluxDetectVersion(t *testing.T) {
	for version, want := range map[string]string{"v2.7.1": "flux-aggregatewindow", "2.0.0": "flux-aggregatewindow", "1.11.8": "influxql", "unknown": "flux-aggregatewindow"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/ready" && version == "unknown" {
				_, _ = w.Write([]byte(`{"status":"ready"}`))
				return
			}
			if r.URL.Path != "/ping" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("X-Influxdb-Version", version)
			w.WriteHeader(http.StatusNoContent)
		}))
		h := newInflux(t, history.InfluxConfig{URL: srv.URL, Org: "o", Bucket: "b"})
		if got := h.Detect(context.Background()); got != want {
			t.Errorf("version %q: Detect = %q, want %q", version, got, want)
		}
		srv.Close()
	}
	h := newInflux(t, history.InfluxConfig{URL: closedURL(t), Org: "o", Bucket: "b"})
	if got := h.Detect(context.Background()); got != "unknown" {
		t.Errorf("unreachable server: Detect = %q, want unknown", got)
	}
}

// TestInfluxQuotesBucket writes through a bucket name full of Flux syntax: the query must
// look for that database (and fail to find it), not run the text as Flux.
func TestInfluxQuotesBucket(t *testing.T) {
	ctx := context.Background()
	for _, bucket := range []string{
		`x") |> drop(columns: ["_value"]) //`,
		`x${"y"}`,
		`x\") |> yield() //`,
		"x\n|> yield()",
		`x$\"`,
		`x"; DROP DATABASE "patronus`,
		`x'..policy_traffic --`,
		`x\"."autogen"."policy_traffic" WHERE 1=1 --`,
	} {
		for _, windowing := range []string{history.InfluxWindowingInfluxQL, history.InfluxWindowingServer} {
			h := newInflux(t, history.InfluxConfig{URL: storagetest.InfluxURL(t), Token: influxToken, Org: "patronus", Bucket: bucket, Windowing: windowing})
			_, err := h.QueryPolicy(ctx, 1, base, base.Add(time.Minute), time.Minute)
			if err == nil || !strings.Contains(err.Error(), "database") || !strings.Contains(err.Error(), "not found") && !strings.Contains(err.Error(), "no database") {
				t.Errorf("%s, bucket %q: err = %v, want the server's database not found", windowing, bucket, err)
			}
		}
	}
}

func TestInfluxWritePathMetrics(t *testing.T) {
	ctx := context.Background()
	serverURL, bucket := influxDatabase(t)
	h := newInflux(t, history.InfluxConfig{URL: serverURL, Token: influxToken, Org: "patronus", Bucket: bucket})
	m := storage.PathMetrics{PathID: 42, LatencyMs: 12.5, JitterMs: 1.25, PacketLossPct: 0.5, BandwidthMbps: 940, MTU: 1420, Score: 87, MeasuredAt: base}
	if err := h.WritePathMetrics(ctx, m, "paris-berlin"); err != nil {
		t.Fatal(err)
	}
	client := influxdb2.NewClient(serverURL, influxToken)
	defer client.Close()
	res, err := client.QueryAPI("patronus").Query(ctx, fmt.Sprintf(`from(bucket: %q)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == "path_metrics" and r.path_id == "42")`,
		bucket, base.Format(time.RFC3339), base.Add(time.Second).Format(time.RFC3339)))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	got := map[string]any{}
	for res.Next() {
		if !res.Record().Time().Equal(base) {
			t.Errorf("point at %v, want %v", res.Record().Time(), base)
		}
		got[res.Record().Field()] = res.Record().Value()
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"latency_ms": 12.5, "jitter_ms": 1.25, "packet_loss_pct": 0.5, "bandwidth_mbps": 940.0, "mtu": int64(1420), "score": int64(87)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("fields %v, want %v", got, want)
	}
}
