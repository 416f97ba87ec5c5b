package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// serviceBinary builds the service (without the race detector, as it ships) once per test
// binary run, for the tests that need a real child process: its RSS, a kill, a lease holder.
var serviceBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "patronus-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "patronus")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// buildService returns the service binary, building it on first use.
func buildService(t *testing.T) string {
	t.Helper()
	bin, err := serviceBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// child is the service running as a child process of the test.
type child struct {
	cmd  *exec.Cmd
	base string
	addr string
}

// startChild builds the service and runs `patronus args...` as a child process listening on a free port, waits
// until it answers /healthz and stops it when the test ends.
func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	bin := buildService(t)
	addr := freeAddr(t)
	cmd := exec.Command(bin, append(args, "--listen", addr)...)
	cmd.Stderr = &prefixWriter{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &child{cmd: cmd, base: "http://" + addr, addr: addr}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("child exited before it answered: %v", cmd.ProcessState)
		default:
		}
		if resp, err := http.Get(ch.base + "/healthz"); err == nil {
			resp.Body.Close()
			return ch
		}
		if time.Now().After(deadline) {
			t.Fatal("child never answered /healthz")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// procStatus returns a kB value of /proc/PID/status (VmRSS, VmHWM) in bytes.
func (c *child) procStatus(t *testing.T, key string) int64 {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(c.cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, c.cmd.Process.Pid)
	return 0
}

// prefixWriter sends a child's log lines to the test log.
type prefixWriter struct{ t *testing.T }

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.t.Logf("child: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }
