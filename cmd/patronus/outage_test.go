package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// get sends an authenticated GET and returns the status, headers and body.
func get(t *testing.T, url, token string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// ingestWith posts a one-report batch with token and returns the status.
func ingestWith(t *testing.T, base, token string) int {
	t.Helper()
	body := `{"reports":[{"flow":{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","src_port":1,"dst_port":2,"protocol":6},"packets":1,"bytes":100}]}`
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/traffic", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// want503 checks an answer is a 503 problem with Retry-After that shows no address, user
// or driver text.
func want503(t *testing.T, what string, status int, h http.Header, body string) {
	t.Helper()
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || h.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("%s = %d, Retry-After %q, %s: %s; want a 503 problem with Retry-After", what, status, h.Get("Retry-After"), h.Get("Content-Type"), body)
	}
	for _, leak := range []string{"127.0.0.1", "postgres", "dial", "tcp", "5432", "pgx", "SQLSTATE"} {
		if strings.Contains(body, leak) {
			t.Fatalf("%s shows %q: %s", what, leak, body)
		}
	}
}

// eventually retries f until it is true or d passes.
func eventually(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDatabaseOutageAnswers503AndRecovers cuts the PostgreSQL connection with a proxy, first
// as a server that is down (connections refused) and then as a silent network (nothing
// answers): reads answer 503 problem+json with Retry-After within the statement deadline,
// never a 500 or a hang; /readyz says "database: unavailable" and nothing more; a router
// token verified before keeps ingesting; once the proxy forwards again, everything works
// without a restart.
func TestDatabaseOutageAnswers503AndRecovers(t *testing.T) {
	proxy, dbURL := newDBProxy(t, storagetest.PostgresSchemaURL(t))
	s := startServe(t, "--database-url", dbURL, "--database-timeout", "1s")

	var created struct {
		Token string `json:"token"`
	}
	req, _ := http.NewRequest(http.MethodPost, s.base+"/api/v1/tokens", strings.NewReader(`{"name":"router-1","role":"operator"}`))
	req.Header.Set("Authorization", "Bearer "+hostileAdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create token: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	router := created.Token
	if status := ingestWith(t, s.base, router); status != http.StatusOK {
		t.Fatalf("ingest with the router token before the outage: %d", status)
	}

	for _, outage := range []struct {
		name string
		mode int
	}{{"down", proxyRefuse}, {"silent", proxyBlackhole}} {
		t.Run(outage.name, func(t *testing.T) {
			proxy.setMode(outage.mode)
			start := time.Now()
			status, h, body := get(t, s.base+"/api/v1/sites", hostileAdminToken)
			want503(t, "GET /api/v1/sites", status, h, body)
			if took := time.Since(start); took > 15*time.Second { // a hang is 25 s and more
				t.Fatalf("the 503 took %s with a 1s statement deadline", took)
			}
			status, h, body = get(t, s.base+"/readyz", "")
			want503(t, "/readyz", status, h, body)
			if !strings.Contains(body, "database: unavailable") {
				t.Fatalf("/readyz does not say which dependency is down: %s", body)
			}
			// Past the token cache's freshness (5 s), the router's token can no longer be
			// confirmed; the grace keeps it working.
			time.Sleep(5200 * time.Millisecond)
			if status := ingestWith(t, s.base, router); status != http.StatusOK {
				t.Fatalf("ingest with a verified router token during the outage: %d", status)
			}
			if status := ingestWith(t, s.base, "ptr_never-issued-token"); status != http.StatusServiceUnavailable && status != http.StatusUnauthorized {
				t.Fatalf("ingest with an unknown token during the outage: %d", status)
			}
			proxy.setMode(proxyForward)
			eventually(t, 15*time.Second, "GET /api/v1/sites after the outage", func() bool {
				status, _, _ := get(t, s.base+"/api/v1/sites", hostileAdminToken)
				return status == http.StatusOK
			})
			eventually(t, 15*time.Second, "/readyz after the outage", func() bool {
				status, _, _ := get(t, s.base+"/readyz", "")
				return status == http.StatusOK
			})
		})
	}
	if strings.Contains(s.logs.String(), "internal error") {
		t.Errorf("the outage produced internal errors:\n%s", s.logs.String())
	}
}

// TestServeStartsWithTheDatabaseDown: with PostgreSQL unreachable, serve starts, answers
// /healthz, says 503 "database: unavailable" on /readyz, answers 503 on database routes,
// ingests for the admin token, and once the database is reachable connects, migrates and
// turns ready without a restart.
func TestServeStartsWithTheDatabaseDown(t *testing.T) {
	proxy, dbURL := newDBProxy(t, storagetest.PostgresSchemaURL(t))
	proxy.setMode(proxyRefuse)
	s := startServe(t, "--database-url", dbURL, "--database-timeout", "1s")

	status, h, body := get(t, s.base+"/readyz", "")
	want503(t, "/readyz", status, h, body)
	if !strings.Contains(body, "database: unavailable") {
		t.Fatalf("/readyz: %s", body)
	}
	status, h, body = get(t, s.base+"/api/v1/sites", hostileAdminToken)
	want503(t, "GET /api/v1/sites", status, h, body)
	if status := ingestWith(t, s.base, hostileAdminToken); status != http.StatusOK {
		t.Fatalf("ingest with the admin token while the database is down: %d", status)
	}

	proxy.setMode(proxyForward)
	eventually(t, 20*time.Second, "/readyz once the database is up", func() bool {
		status, _, _ := get(t, s.base+"/readyz", "")
		return status == http.StatusOK
	})
	if status, _, body := get(t, s.base+"/api/v1/sites", hostileAdminToken); status != http.StatusOK {
		t.Fatalf("GET /api/v1/sites once connected: %d %s", status, body)
	}
	if !strings.Contains(s.logs.String(), "database connected") {
		t.Errorf("no log line about connecting:\n%s", s.logs.String())
	}
}
