package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
	"github.com/peterbourgon/ff/v3"
)

func TestConfigFlagsWinOverEnvironment(t *testing.T) {
	t.Setenv("PATRONUS_FLUSH_INTERVAL", "20s")
	t.Setenv("PATRONUS_LISTEN", "127.0.0.1:9999")
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var c config
	registerFlags(fs, &c)
	if err := ff.Parse(fs, []string{"--listen", "127.0.0.1:7777"}, envOptions()...); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:7777" || c.FlushInterval != 20*time.Second {
		t.Fatalf("listen=%s flush=%s", c.Listen, c.FlushInterval)
	}
	if c.FlowIdleTimeout != 5*time.Minute || c.MetricsCacheTTL != time.Minute || c.RoutingCacheTTL != 30*time.Second {
		t.Fatalf("defaults: %+v", c)
	}
}

// TestByteSizeSettingsTakeUnits: the byte-size settings read plain numbers and sizes with
// units, by flag and by environment, binary and decimal.
func TestByteSizeSettingsTakeUnits(t *testing.T) {
	for _, tc := range []struct {
		args          []string
		env           string
		ingest, spool int64
	}{
		{nil, "", 32 << 20, 1 << 30},
		{[]string{"--max-ingest-bytes", "64MiB"}, "2GiB", 64 << 20, 2 << 30},
		{[]string{"--max-ingest-bytes", "5000000"}, "1.5 GB", 5_000_000, 1_500_000_000},
		{[]string{"--max-ingest-bytes=8 MB"}, "1048576", 8_000_000, 1 << 20},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		var c config
		registerFlags(fs, &c)
		if tc.env != "" {
			t.Setenv("PATRONUS_SPOOL_MAX_BYTES", tc.env)
		}
		if err := ff.Parse(fs, tc.args, envOptions()...); err != nil {
			t.Fatalf("%v, PATRONUS_SPOOL_MAX_BYTES=%q: %v", tc.args, tc.env, err)
		}
		if c.Ingest.MaxBytes != tc.ingest || c.SpoolMaxBytes != tc.spool {
			t.Errorf("%v, PATRONUS_SPOOL_MAX_BYTES=%q: ingest %d spool %d, want %d %d", tc.args, tc.env, c.Ingest.MaxBytes, c.SpoolMaxBytes, tc.ingest, tc.spool)
		}
	}
}

func TestHistoryRetentionSettings(t *testing.T) {
	parse := func(t *testing.T, args ...string) config {
		t.Helper()
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		var c config
		registerFlags(fs, &c)
		if err := ff.Parse(fs, args, envOptions()...); err != nil {
			t.Fatal(err)
		}
		return c
	}
	day := 24 * time.Hour
	if c := parse(t); c.rawRetention() != 7*day || c.History1mRetention != 30*day || c.History1hRetention != 400*day {
		t.Fatalf("defaults: raw %s, 1m %s, 1h %s; want 7, 30 and 400 days", c.rawRetention(), c.History1mRetention, c.History1hRetention)
	}
	t.Setenv("PATRONUS_HISTORY_RAW_RETENTION", "48h")
	t.Setenv("PATRONUS_HISTORY_1M_RETENTION", "240h")
	t.Setenv("PATRONUS_HISTORY_1H_RETENTION", "2400h")
	c := parse(t)
	tiers := c.historyTiers()
	if tiers.RawRetention != 48*time.Hour || tiers.Retention1m != 240*time.Hour || tiers.Retention1h != 2400*time.Hour || tiers.Interval != c.FlushInterval {
		t.Fatalf("tiers from the environment: %+v", tiers)
	}
	// The former name still works and wins.
	t.Setenv("PATRONUS_HISTORY_RETENTION", "1h")
	if c := parse(t); c.rawRetention() != time.Hour {
		t.Fatalf("PATRONUS_HISTORY_RETENTION=1h gives raw retention %s", c.rawRetention())
	}
}

func TestBadSettingsStopStartUpNamingTheSetting(t *testing.T) {
	cases := map[string][]string{
		"PATRONUS_FLUSH_INTERVAL":        {"PATRONUS_FLUSH_INTERVAL=soon"},
		"PATRONUS_LOG_FORMAT":            {"PATRONUS_LOG_FORMAT=xml"},
		"PATRONUS_DATABASE_URL":          {"PATRONUS_DATABASE_URL=mysql://db/x"},
		"PATRONUS_INFLUX_URL":            {"PATRONUS_INFLUX_URL=ftp://x"},
		"PATRONUS_LISTEN":                {"PATRONUS_LISTEN=nope"},
		"PATRONUS_FLOW_IDLE_TIMEOUT":     {"PATRONUS_FLOW_IDLE_TIMEOUT=0s"},
		"PATRONUS_EVENT_BUFFER":          {"PATRONUS_EVENT_BUFFER=0"},
		"PATRONUS_HISTORY_RAW_RETENTION": {"PATRONUS_HISTORY_RAW_RETENTION=0s"},
		"PATRONUS_HISTORY_1M_RETENTION":  {"PATRONUS_HISTORY_1M_RETENTION=-1h"},
		"PATRONUS_HISTORY_1H_RETENTION":  {"PATRONUS_HISTORY_1H_RETENTION=0s"},
		"PATRONUS_HISTORY_RETENTION":     {"PATRONUS_HISTORY_RETENTION=-1h"},
	}
	for setting, env := range cases {
		t.Run(setting, func(t *testing.T) {
			t.Chdir(t.TempDir())
			for _, kv := range env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			err := run(context.Background(), nil, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("start-up succeeded")
			}
			msg := oneLine(err)
			if !strings.Contains(strings.ToUpper(strings.ReplaceAll(msg, "-", "_")), setting) {
				t.Fatalf("error %q does not name %s", msg, setting)
			}
			if strings.Contains(msg, "\n") {
				t.Fatalf("error spans lines: %q", msg)
			}
		})
	}
}

func TestServeAnswersHealthAndReadiness(t *testing.T) {
	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			dbURL := filepath.Join(t.TempDir(), "patronus.db")
			if dialect == storage.DialectPostgres {
				dbURL = storagetest.PostgresSchemaURL(t)
			}
			addr := freeAddr(t)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			var logs bytes.Buffer
			go func() {
				done <- run(ctx, []string{"serve", "--listen", addr, "--database-url", dbURL, "--spool-dir", t.TempDir()}, io.Discard, &logs)
			}()
			base := "http://" + addr
			waitFor(t, base+"/healthz", done)
			for _, path := range []string{"/healthz", "/readyz"} {
				resp, err := http.Get(base + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s = %d %s", path, resp.StatusCode, body)
				}
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("serve returned %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("serve did not stop after cancel")
			}
			if !strings.Contains(logs.String(), "stopped") {
				t.Fatalf("no orderly shutdown in logs:\n%s", logs.String())
			}
		})
	}
}

func TestMigrateAndTokenCreate(t *testing.T) {
	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			dbURL := filepath.Join(t.TempDir(), "patronus.db")
			if dialect == storage.DialectPostgres {
				dbURL = storagetest.PostgresSchemaURL(t)
			}
			var out bytes.Buffer
			if err := run(context.Background(), []string{"migrate", "--database-url", dbURL}, &out, io.Discard); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "migrated to version") {
				t.Fatalf("migrate printed %q", out.String())
			}
			db, err := storage.Open(context.Background(), dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.CheckForeignKeys(context.Background()); err != nil {
				t.Fatalf("after migrate: %v", err)
			}
			out.Reset()
			if err := run(context.Background(), []string{"token", "create", "--name", "ops", "--role", "operator", "--database-url", dbURL}, &out, io.Discard); err != nil {
				t.Fatal(err)
			}
			secret := strings.TrimSpace(out.String())
			if !strings.HasPrefix(secret, storage.TokenPrefix) {
				t.Fatalf("token create printed %q", secret)
			}
			tok, err := storage.NewStore(db).Tokens().Authenticate(context.Background(), secret)
			if err != nil || tok.Role != storage.RoleOperator || tok.Name != "ops" {
				t.Fatalf("stored token %+v, %v", tok, err)
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitFor(t *testing.T, url string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("serve exited early: %v", err)
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never answered", url)
}
