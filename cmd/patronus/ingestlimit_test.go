package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// stalledGzipBody is a gzip stream of {"reports":[ followed by about size spaces, without its
// last bytes: a server decompresses nearly all of it and then waits for the rest.
func stalledGzipBody(t *testing.T, size int) (sent []byte, full int) {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(zw, `{"reports":[`)
	_, _ = zw.Write(bytes.Repeat([]byte{' '}, size))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	return b[:len(b)-8], len(b) // the 8-byte trailer (CRC, size) never comes
}

// stalledUpload opens a connection and sends an authenticated gzip ingest whose body never
// ends.
func stalledUpload(t *testing.T, addr string, body []byte, full int) net.Conn {
	t.Helper()
	head := fmt.Sprintf("POST /api/v1/traffic HTTP/1.1\nHost: x\nAuthorization: Bearer %s\nContent-Type: application/json\nContent-Encoding: gzip\nContent-Length: %d\n\n", hostileAdminToken, full)
	return rawRequest(t, addr, head, string(body))
}

// ingestOne posts a one-report batch with the admin token and returns the status.
func ingestOne(t *testing.T, base string) (int, http.Header) {
	t.Helper()
	body := `{"reports":[{"flow":{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","src_port":1,"dst_port":2,"protocol":6},"packets":1,"bytes":100}]}`
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/traffic", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+hostileAdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// TestIngestCapAnswers503PastIt: with two ingest requests allowed at once and two stalled
// uploads holding them, a third is answered 503 problem with Retry-After at once; when the
// stalled ones go, ingest works again.
func TestIngestCapAnswers503PastIt(t *testing.T) {
	s := startServe(t, "--max-ingest-requests", "2", "--read-timeout", "30s")
	body, full := stalledGzipBody(t, 1<<20)
	var held []net.Conn
	for range 2 {
		held = append(held, stalledUpload(t, s.addr, body, full))
	}
	time.Sleep(300 * time.Millisecond) // both are being read
	start := time.Now()
	status, h := ingestOne(t, s.base)
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || h.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("third ingest = %d, Retry-After %q, %s; want 503 problem with Retry-After", status, h.Get("Retry-After"), h.Get("Content-Type"))
	}
	if took := time.Since(start); took > 10*time.Second { // the stalled uploads hold for 30 s
		t.Fatalf("the 503 took %s", took)
	}
	for _, c := range held {
		c.Close()
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		status, _ = ingestOne(t, s.base)
		if status == http.StatusOK || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status != http.StatusOK {
		t.Fatalf("after the stalled uploads left, ingest = %d", status)
	}
}

// TestStalledGzipUploadsKeepRSSBounded is the attack of issue 11: 30 uploads with a valid
// token, each about 15 KB of gzip expanding to 15 MiB, stalled before their end (once: RSS
// from 91 MB to 835 MB). The service runs as a child process, built without the race
// detector, and its peak RSS (VmHWM) is read from /proc. The growth must stay within a
// multiple of the byte budget, whatever the number of uploads: a body being read is held in
// fixed-size chunks (about the bytes the budget charged, no garbage) and the garbage collector
// lets the heap reach twice what is live, so about three times the budget.
func TestStalledGzipUploadsKeepRSSBounded(t *testing.T) {
	const budget = 32 << 20
	ch := startChild(t, "serve", "--database-url", filepath.Join(t.TempDir(), "patronus.db"),
		"--admin-token", hostileAdminToken, "--read-timeout", "30s", "--max-ingest-requests", "64",
		"--max-ingest-bytes", fmt.Sprint(budget))
	for range 3 { // warm the ingest path, so the baseline includes it
		if status, _ := ingestOne(t, ch.base); status != http.StatusOK {
			t.Fatalf("warm-up ingest = %d", status)
		}
	}
	baseline := ch.procStatus(t, "VmRSS")
	body, full := stalledGzipBody(t, 15<<20)
	t.Logf("each upload: %d bytes of gzip, %d MiB decompressed", full, 15)

	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	conns := make([]net.Conn, 30)
	for i := range conns {
		conns[i] = stalledUpload(t, ch.addr, body, full)
		wg.Go(func() {
			_ = conns[i].SetReadDeadline(time.Now().Add(8 * time.Second))
			resp, err := http.ReadResponse(bufioReader(conns[i]), nil)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				statuses[0]++ // still held: no answer while its body is unfinished
				return
			}
			resp.Body.Close()
			statuses[resp.StatusCode]++
		})
	}
	wg.Wait()
	peak := ch.procStatus(t, "VmHWM")
	t.Logf("RSS baseline %d MiB, peak %d MiB (growth %d MiB) with a %d MiB budget; answers %v (0: still held)",
		baseline>>20, peak>>20, (peak-baseline)>>20, budget>>20, statuses)
	if statuses[http.StatusServiceUnavailable] == 0 {
		t.Errorf("no upload was refused with 503: %v", statuses)
	}
	if growth := peak - baseline; growth > 3*budget+32<<20 {
		t.Errorf("RSS grew by %d MiB under the attack; the bound is about %d MiB", growth>>20, (3*budget+32<<20)>>20)
	}
	for _, c := range conns {
		c.Close()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, _ := ingestOne(t, ch.base)
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the attack, ingest = %d", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
