package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestShutdownEndsEventStreams checks that an open GET /api/v1/events does not hold shutdown
// up: the broker is closed before the HTTP server drains, so the stream ends cleanly and the
// server stops without running into its shutdown deadline.
func TestShutdownEndsEventStreams(t *testing.T) {
	const adminToken = "events-test-admin-token-0123456789"
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--listen", addr, "--database-url", filepath.Join(t.TempDir(), "patronus.db"),
			"--admin-token", adminToken, "--event-buffer", "16", "--shutdown-timeout", "20s"}, io.Discard, &logs)
	}()
	base := "http://" + addr
	waitFor(t, base+"/healthz", done)

	req, err := http.NewRequest(http.MethodGet, base+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /api/v1/events = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	first, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || first != "retry: 2000\n" {
		t.Fatalf("first line of the stream = %q, %v", first, err)
	}

	streamEnded := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		streamEnded <- err
	}()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop")
	}
	if strings.Contains(logs.String(), "http shutdown") {
		t.Errorf("the HTTP server ran into its shutdown deadline:\n%s", logs.String())
	}
	select {
	case err := <-streamEnded:
		if err != nil {
			t.Errorf("the stream broke instead of ending: %v", err)
		}
	case <-time.After(10 * time.Second):
		resp.Body.Close()
		t.Error("the event stream was still open after the server stopped")
	}
}
