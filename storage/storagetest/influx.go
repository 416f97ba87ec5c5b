package storagetest

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// InfluxDatabase creates a fresh database on the test InfluxDB (1.8) for this test and drops it
// when the test ends. It returns the server URL and the bucket name ("db/autogen") that
// influxdb-client-go/v2 uses for it.
func InfluxDatabase(t testing.TB) (serverURL, bucket string) {
	t.Helper()
	serverURL = InfluxURL(t)
	db := "patronus_" + randomHex(t, 6)
	if err := InfluxQL(serverURL, "CREATE DATABASE "+db); err != nil {
		t.Fatalf("create InfluxDB database: %v", err)
	}
	t.Cleanup(func() { _ = InfluxQL(serverURL, "DROP DATABASE "+db) })
	return serverURL, db + "/autogen"
}

// InfluxQL runs one InfluxQL statement through the 1.x /query endpoint.
func InfluxQL(serverURL, statement string) error {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.PostForm(strings.TrimRight(serverURL, "/")+"/query", url.Values{"q": {statement}})
	if err != nil {
		return fmt.Errorf("influxql %q: %w", statement, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("influxql %q: HTTP %d", statement, resp.StatusCode)
	}
	return nil
}
