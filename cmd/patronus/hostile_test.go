package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// hostileAdminToken is the admin token of the servers these tests start.
const hostileAdminToken = "hostile-test-admin-token-0123456789"

// testServer is a running `patronus serve` in this process.
type testServer struct {
	addr string
	base string
	logs *syncBuffer
}

// syncBuffer is a log sink that the server and the test may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs serve on a free port with a SQLite database (unless args name another) and
// the admin token, and stops it when the test ends.
func startServe(t *testing.T, args ...string) *testServer {
	t.Helper()
	addr := freeAddr(t)
	full := append([]string{"serve", "--listen", addr, "--database-url", filepath.Join(t.TempDir(), "patronus.db"),
		"--admin-token", hostileAdminToken, "--shutdown-timeout", "5s", "--spool-dir", t.TempDir()}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &syncBuffer{}
	go func() { done <- run(ctx, full, io.Discard, logs) }()
	s := &testServer{addr: addr, base: "http://" + addr, logs: logs}
	waitFor(t, s.base+"/healthz", done)
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	})
	return s
}

// rawRequest opens a connection and writes head (CRLF line ends, ending with the blank line)
// and body, leaving the connection open.
func rawRequest(t *testing.T, addr, head, body string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, strings.ReplaceAll(head, "\n", "\r\n")+body); err != nil {
		t.Fatal(err)
	}
	return conn
}

// readResponse reads one response from conn within d; it returns the status and how long it
// took.
func readResponse(t *testing.T, conn net.Conn, d time.Duration) (*http.Response, time.Duration) {
	t.Helper()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(d))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response within %s: %v", d, err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, time.Since(start)
}

// closedWithin says whether the server closes conn within d (reads end in EOF or a reset).
func closedWithin(conn net.Conn, d time.Duration) bool {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestStalledBodyWithoutTokenIsRefusedAtOnce: a POST that announces a body, sends one byte
// and falls silent is answered 401 at once, without its body being read, and its connection
// is closed, with no token and with a bad one. The read timeout is long here, so a server
// that waited for the body would miss the deadlines by far.
func TestStalledBodyWithoutTokenIsRefusedAtOnce(t *testing.T) {
	s := startServe(t, "--read-timeout", "30s")
	for name, auth := range map[string]string{
		"no token":  "",
		"bad token": "Authorization: Bearer ptr_not-a-token-at-all\n",
	} {
		t.Run(name, func(t *testing.T) {
			conn := rawRequest(t, s.addr, "POST /api/v1/traffic HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 1000\n"+auth+"\n", "{")
			resp, took := readResponse(t, conn, 15*time.Second)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			if took > 10*time.Second { // a server that read the body first would wait out the 30 s
				t.Fatalf("401 took %s", took)
			}
			if !resp.Close {
				t.Error("the 401 does not say Connection: close")
			}
			if !closedWithin(conn, 10*time.Second) {
				t.Fatal("the connection stayed open after the 401")
			}
		})
	}
}

// TestStalledBodyWithTokenIsCutAtReadTimeout: an authenticated client that stalls its body
// loses the connection at the read timeout, and slow headers at the header timeout.
func TestStalledBodyWithTokenIsCutAtReadTimeout(t *testing.T) {
	s := startServe(t, "--read-timeout", "400ms", "--read-header-timeout", "300ms")
	t.Run("body", func(t *testing.T) {
		conn := rawRequest(t, s.addr, "POST /api/v1/traffic HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 1000\nAuthorization: Bearer "+hostileAdminToken+"\n\n", "{")
		start := time.Now()
		if !closedWithin(conn, 15*time.Second) {
			t.Fatal("a stalled body held its connection past the read timeout")
		}
		if took := time.Since(start); took < 300*time.Millisecond {
			t.Fatalf("closed after %s, before the read timeout", took)
		}
	})
	t.Run("headers", func(t *testing.T) {
		conn := rawRequest(t, s.addr, "GET /healthz HTTP/1.1\nHost: x\n", "")
		if !closedWithin(conn, 15*time.Second) {
			t.Fatal("unfinished headers held their connection past the header timeout")
		}
	})
}

// TestConnectionCapQueuesClientsPastIt: with the cap at 3 and three idle connections open, a
// fourth client is not served until one of them closes; then it is, with no restart.
func TestConnectionCapQueuesClientsPastIt(t *testing.T) {
	s := startServe(t, "--max-connections", "3", "--read-header-timeout", "20s")
	var idle []net.Conn
	for range 3 {
		conn, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		idle = append(idle, conn)
	}
	time.Sleep(100 * time.Millisecond) // let the server accept them
	client := &http.Client{Timeout: 700 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := client.Get(s.base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("a fourth connection was served (%d) past the cap of 3", resp.StatusCode)
	}
	idle[0].Close()
	client.Timeout = 15 * time.Second
	resp, err := client.Get(s.base + "/healthz")
	if err != nil {
		t.Fatalf("after one connection closed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz = %d", resp.StatusCode)
	}
	if n := openFDs(t); n > 200 {
		t.Fatalf("%d open file descriptors", n)
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(fmt.Errorf("count fds: %w", err))
	}
	return len(entries)
}
