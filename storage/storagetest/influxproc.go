package storagetest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// EnvInfluxd names the influxd binary that `make test` built, for tests that run their own.
const EnvInfluxd = "PATRONUS_TEST_INFLUXD"

// InfluxProcess is an InfluxDB 1.8 server owned by one test, which may stop and restart it on
// the same port with the same data, to test what happens while it is down.
type InfluxProcess struct {
	t      testing.TB
	bin    string
	config string
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartInflux runs a private influxd on free loopback ports with its data in a temp dir; it is
// stopped when the test ends.
func StartInflux(t testing.TB) *InfluxProcess {
	t.Helper()
	bin := Require(t, EnvInfluxd, "InfluxDB (the influxd binary)")
	dir := t.TempDir()
	httpPort, bindPort := freePort(t), freePort(t)
	config := filepath.Join(dir, "influxdb.conf")
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"
[meta]
  dir = "%[2]s/meta"
[data]
  dir = "%[2]s/data"
  wal-dir = "%[2]s/wal"
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:%[3]d"
  flux-enabled = true
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
`, bindPort, dir, httpPort)
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &InfluxProcess{t: t, bin: bin, config: config, port: httpPort}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// URL is the server's HTTP address.
func (p *InfluxProcess) URL() string { return "http://127.0.0.1:" + strconv.Itoa(p.port) }

// Start runs influxd (again) and waits until it answers /ping.
func (p *InfluxProcess) Start() {
	p.t.Helper()
	if p.cmd != nil {
		p.t.Fatal("influxd already running")
	}
	cmd := exec.Command(p.bin, "run", "-config", p.config)
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start influxd: %v", err)
	}
	p.cmd = cmd
	p.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(p.exited) }()
	// influxd answers in about a second on a quiet machine; on a loaded one (a load average
	// past 20 was seen) it took over 30 s.
	const startLimit = 2 * time.Minute
	deadline := time.Now().Add(startLimit)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			p.cmd = nil
			p.t.Fatal("influxd exited at start")
		default:
		}
		resp, err := http.Get(p.URL() + "/ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("influxd did not answer /ping within %s", startLimit)
}

// Stop kills influxd (SIGKILL: the test wants an abrupt outage) and waits for it to exit.
func (p *InfluxProcess) Stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
}

// CreateDatabase creates a database and returns its bucket name for influxdb-client-go/v2.
func (p *InfluxProcess) CreateDatabase(name string) string {
	p.t.Helper()
	if err := InfluxQL(p.URL(), "CREATE DATABASE "+name); err != nil {
		p.t.Fatal(err)
	}
	return name + "/autogen"
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
