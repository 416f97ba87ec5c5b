package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/history"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// replica is one in-process `patronus serve`.
type replica struct {
	addr   string
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns, with its error in err
	err    error
}

// stop cancels the replica and waits for run to return.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		t.Errorf("replica %s did not stop", r.addr)
	}
}

func startReplica(t *testing.T, dbURL string, extra ...string) *replica {
	t.Helper()
	r := &replica{addr: freeAddr(t), logs: &syncBuffer{}, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	args := append([]string{"serve", "--listen", r.addr, "--database-url", dbURL, "--flush-interval", "100ms", "--spool-dir", t.TempDir()}, extra...)
	go func() { defer close(r.done); r.err = run(ctx, args, io.Discard, r.logs) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func waitReady(t *testing.T, r *replica) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			t.Fatalf("replica %s exited: %v\n%s", r.addr, r.err, r.logs.String())
		default:
		}
		if resp, err := http.Get("http://" + r.addr + "/readyz"); err == nil {
			resp.Body.Close()
			// The start-up line comes just after serving begins.
			if resp.StatusCode == http.StatusOK && strings.Contains(r.logs.String(), `msg="patronus serving"`) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("replica %s never became ready\n%s", r.addr, r.logs.String())
}

var instanceInLog = regexp.MustCompile(`msg="patronus serving".* instance=(\S+)`)

func TestReplicasStartAtOnceOnEmptyDatabase(t *testing.T) {
	for try := range 3 {
		dbURL := storagetest.PostgresSchemaURL(t)
		replicas := make([]*replica, 3)
		for i := range replicas {
			replicas[i] = startReplica(t, dbURL)
		}
		names := map[string]bool{}
		for _, r := range replicas {
			waitReady(t, r)
			m := instanceInLog.FindStringSubmatch(r.logs.String())
			if m == nil {
				t.Fatalf("try %d: no instance in the start-up log:\n%s", try, r.logs.String())
			}
			host, _ := os.Hostname()
			_, port, _ := strings.Cut(r.addr, ":")
			if want := host + ":" + port; m[1] != want {
				t.Errorf("default instance %q, want %q (hostname:listen-port)", m[1], want)
			}
			names[m[1]] = true
		}
		if len(names) != 3 {
			t.Errorf("try %d: default instance names %v are not distinct", try, names)
		}
		for _, r := range replicas {
			r.stop(t)
		}
	}
}

func TestDuplicateInstanceRefusesToStart(t *testing.T) {
	dbURL := storagetest.PostgresSchemaURL(t)
	first := startReplica(t, dbURL, "--instance", "edge-1")
	waitReady(t, first)
	err := run(context.Background(), []string{"serve", "--listen", freeAddr(t), "--database-url", dbURL, "--instance", "edge-1", "--spool-dir", t.TempDir()}, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("a second replica named edge-1 started")
	}
	msg := oneLine(err)
	if !strings.Contains(msg, "PATRONUS_INSTANCE") || !strings.Contains(msg, `"edge-1"`) {
		t.Fatalf("error %q does not name PATRONUS_INSTANCE and the name", msg)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("error spans lines: %q", err.Error())
	}
	// Once the holder stops, the name is free again.
	first.stop(t)
	second := startReplica(t, dbURL, "--instance", "edge-1")
	waitReady(t, second)
}

func TestRetentionLeaseTakeoverAfterKill(t *testing.T) {
	dbURL := storagetest.PostgresSchemaURL(t)
	bin := buildService(t)
	type proc struct {
		cmd  *exec.Cmd
		addr string
		logs *syncBuffer
	}
	start := func(name string) *proc {
		p := &proc{addr: freeAddr(t), logs: &syncBuffer{}}
		p.cmd = exec.Command(bin, "serve")
		p.cmd.Env = append(os.Environ(), "PATRONUS_LISTEN="+p.addr, "PATRONUS_DATABASE_URL="+dbURL,
			"PATRONUS_INSTANCE="+name, "PATRONUS_HISTORY_RETENTION=1h", "PATRONUS_FLUSH_INTERVAL=100ms", "PATRONUS_SPOOL_DIR="+t.TempDir())
		p.cmd.Stderr = p.logs
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
		deadline := time.Now().Add(30 * time.Second)
		for {
			if resp, err := http.Get("http://" + p.addr + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return p
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never became ready:\n%s", name, p.logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	holds := func(p *proc) bool {
		return strings.Contains(p.logs.String(), `msg="singleton lease acquired" job=history-retention`)
	}
	a, b := start("a"), start("b")
	time.Sleep(500 * time.Millisecond)
	holder, standby := a, b
	if holds(b) {
		holder, standby = b, a
	}
	if !holds(holder) || holds(standby) {
		t.Fatalf("want exactly one lease holder; a:\n%s\nb:\n%s", a.logs.String(), b.logs.String())
	}

	db, err := storage.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := time.Now().Add(-2 * time.Hour).UTC()
	if err := history.NewSQLHistory(db).WriteDeltas(context.Background(), []history.PolicyDelta{
		{PolicyID: 1, Instance: "gone", Time: old, Packets: 1, Bytes: 1},
	}); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := holder.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The bound: the standby's retry period (SingletonRetry), plus slack for a loaded machine.
	bound := storage.SingletonRetry + 5*time.Second
	for {
		var n int64
		if err := db.SQL().QueryRow("SELECT count(*) FROM policy_stats WHERE timestamp < $1", time.Now().Add(-time.Hour).UTC()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 && holds(standby) && strings.Contains(standby.logs.String(), `msg="history retention" deleted=1`) {
			t.Logf("standby took the lease and pruned %s after the holder was killed (retry period %s)",
				time.Since(killed).Round(time.Millisecond), storage.SingletonRetry)
			break
		}
		if time.Since(killed) > bound {
			t.Fatalf("no takeover within %s (%d old rows left); standby log:\n%s", bound, n, standby.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
