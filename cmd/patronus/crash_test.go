package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// crashAdminToken is the admin token of the child processes.
const crashAdminToken = "crash-test-admin-token-0123456789"

// crashChild is a patronus serve process with fixed settings, restarted on the same database and
// spool.
type crashChild struct {
	t    *testing.T
	bin  string
	addr string
	env  []string
	cmd  *exec.Cmd
	logs *bytes.Buffer
	// pathID, when set, is the path_id of every report the load sends.
	pathID int64
}

func newChild(t *testing.T, influxURL string) *crashChild {
	t.Helper()
	return newChildEnv(t,
		"PATRONUS_INFLUX_URL="+influxURL,
		"PATRONUS_INFLUX_TOKEN=u:p",
		"PATRONUS_INFLUX_BUCKET=patronus/autogen",
	)
}

// newChildEnv is a child on a SQLite database in a temporary directory (override it with a
// PATRONUS_DATABASE_URL in extra), its spool beside it, with extra settings added last.
func newChildEnv(t *testing.T, extra ...string) *crashChild {
	t.Helper()
	bin := buildService(t)
	dir := t.TempDir()
	c := &crashChild{t: t, bin: bin, addr: freeAddr(t)}
	c.env = append(os.Environ(),
		"PATRONUS_LISTEN="+c.addr,
		"PATRONUS_DATABASE_URL="+filepath.Join(dir, "patronus.db"),
		"PATRONUS_SPOOL_DIR="+filepath.Join(dir, "spool"),
		"PATRONUS_ADMIN_TOKEN="+crashAdminToken,
		"PATRONUS_INSTANCE=crash-test",
		"PATRONUS_FLUSH_INTERVAL=100ms",
		"PATRONUS_LOG_LEVEL=warn",
	)
	c.env = append(c.env, extra...)
	t.Cleanup(c.kill)
	return c
}

func (c *crashChild) start() {
	c.t.Helper()
	c.cmd = exec.Command(c.bin, "serve")
	c.cmd.Env = c.env
	c.logs = new(bytes.Buffer)
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	if err := c.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + c.addr + "/healthz"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("patronus did not answer /healthz:\n%s", c.logs)
}

// kill sends SIGKILL: no shutdown, no final flush.
func (c *crashChild) kill() {
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
	c.cmd = nil
}

func (c *crashChild) do(method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequest(method, "http://"+c.addr+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+crashAdminToken)
	req.Header.Set("Content-Type", "application/json")
	return http.DefaultClient.Do(req)
}

// ledger is what the load sent: packets acknowledged per policy, and how many batches may or
// may not have been recorded (sent, but the answer was lost to the kill).
type ledger struct {
	acked     [3]atomic.Int64
	uncertain [3]atomic.Int64 // packets of unanswered batches
}

// load posts batches from workers goroutines until stop is closed. Every batch holds 10
// reports of one policy, packets 1..10 (55 packets), all on c.pathID when it is set.
func (c *crashChild) load(workers int, ids [3]int64, l *ledger, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				p := (w + n) % 3
				var b strings.Builder
				b.WriteString(`{"reports":[`)
				for i := 1; i <= 10; i++ {
					if i > 1 {
						b.WriteByte(',')
					}
					if c.pathID != 0 {
						fmt.Fprintf(&b, `{"path_id":%d,`, c.pathID)
					} else {
						b.WriteByte('{')
					}
					fmt.Fprintf(&b, `"policy_id":%d,"flow":{"src_ip":"10.%d.%d.%d","dst_ip":"192.0.2.1","src_port":%d,"dst_port":443,"protocol":6},"packets":%d,"bytes":%d}`,
						ids[p], w, n%250, i, 1000+n%5000, i, i*100)
				}
				b.WriteString(`]}`)
				resp, err := c.do(http.MethodPost, "/api/v1/traffic", []byte(b.String()))
				if err != nil {
					var op *net.OpError
					if !(errors.As(err, &op) && op.Op == "dial") {
						l.uncertain[p].Add(55) // sent; the process died before answering
					}
					time.Sleep(5 * time.Millisecond)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					l.acked[p].Add(55)
				} else {
					c.t.Errorf("ingest answered %d", resp.StatusCode)
					return
				}
			}
		})
	}
	return &wg
}

// influxPackets returns the packets history holds per policy id, read from InfluxDB itself.
func influxPackets(t *testing.T, influxURL string) map[string]int64 {
	t.Helper()
	return influxSums(t, influxURL, "policy_traffic", "policy_id")
}

// influxSums returns the packets of a measurement per value of its id tag.
func influxSums(t *testing.T, influxURL, measurement, tag string) map[string]int64 {
	t.Helper()
	q := url.Values{"db": {"patronus"}, "q": {fmt.Sprintf(`SELECT sum("packets") FROM %q GROUP BY %q`, measurement, tag)}}
	resp, err := http.Get(influxURL + "/query?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Results []struct {
			Series []struct {
				Tags   map[string]string `json:"tags"`
				Values [][]any           `json:"values"`
			} `json:"series"`
			Error string `json:"error"`
		} `json:"results"`
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range out.Results {
		if r.Error != "" {
			t.Fatal(r.Error)
		}
		for _, s := range r.Series {
			n, _ := s.Values[0][1].(json.Number)
			v, _ := n.Int64()
			got[s.Tags[tag]] = v
		}
	}
	return got
}

// createCrashPolicies creates three policies through the API and returns their ids.
func createCrashPolicies(t *testing.T, c *crashChild) (ids [3]int64) {
	t.Helper()
	for i := range ids {
		resp, err := c.do(http.MethodPost, "/api/v1/policies", fmt.Appendf(nil, `{"name":"crash-%d","priority":%d,"match":{},"action":{"type":"drop"}}`, i, i))
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			ID int64 `json:"id"`
		}
		err = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusCreated || p.ID == 0 {
			t.Fatalf("create policy: %d %v", resp.StatusCode, err)
		}
		ids[i] = p.ID
	}
	return ids
}

// createCrashPath creates two sites with an endpoint each and a path between them, and
// returns the path's id.
func createCrashPath(t *testing.T, c *crashChild) int64 {
	t.Helper()
	post := func(path, body string) string {
		resp, err := c.do(http.MethodPost, path, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			ID any `json:"id"` // a UUID for sites and endpoints, a number for paths
		}
		dec := json.NewDecoder(resp.Body)
		dec.UseNumber()
		err = dec.Decode(&out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusCreated || out.ID == nil {
			t.Fatalf("POST %s: %d %v", path, resp.StatusCode, err)
		}
		return fmt.Sprint(out.ID)
	}
	var endpoints [2]string
	for i := range endpoints {
		site := post("/api/v1/sites", fmt.Sprintf(`{"name":"crash-site-%d"}`, i))
		endpoints[i] = post("/api/v1/sites/"+site+"/endpoints", fmt.Sprintf(`{"name":"wan","address":"203.0.113.%d"}`, i+1))
	}
	id, err := strconv.ParseInt(post("/api/v1/paths", fmt.Sprintf(`{"name":"crash-path","local_endpoint_id":%q,"remote_endpoint_id":%q}`, endpoints[0], endpoints[1])), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestCrashLosesNothingAcknowledged SIGKILLs a real patronus process during load, three
// times with InfluxDB up and three times with InfluxDB down, restarting it each time on the
// same database and spool. At the end InfluxDB holds exactly the packets of the acknowledged
// batches: none lost, none doubled (batches sent but unanswered when the process died may or
// may not be there, and are told apart). Every report also names a path: the path's history
// must hold the packets of all acknowledged batches the same way.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	influx := storagetest.StartInflux(t)
	influx.CreateDatabase("patronus")
	c := newChild(t, influx.URL())
	c.start()
	ids := createCrashPolicies(t, c)
	c.pathID = createCrashPath(t, c)
	var l ledger
	for i := range 3 {
		c.crashRound(fmt.Sprintf("InfluxDB up, kill %d", i+1), ids, &l, nil, nil)
	}
	for i := range 3 {
		c.crashRound(fmt.Sprintf("InfluxDB down, kill %d", i+1), ids, &l, influx.Stop, influx.Start)
	}
	c.checkLedger(ids, &l, func() map[string]int64 { return influxPackets(t, influx.URL()) })
	// The path's history holds every policy's acknowledged packets, as their histories do
	// (checkLedger waited until those were all there).
	var acked, uncertain int64
	for p := range ids {
		acked, uncertain = acked+l.acked[p].Load(), uncertain+l.uncertain[p].Load()
	}
	if have := influxSums(t, influx.URL(), "path_traffic", "path_id")[fmt.Sprint(c.pathID)]; have < acked || have > acked+uncertain || (have-acked)%55 != 0 {
		t.Errorf("path %d: history %d packets, %d acknowledged and %d unanswered", c.pathID, have, acked, uncertain)
	} else {
		t.Logf("path %d: history %d = %d acknowledged + %d of %d unanswered", c.pathID, have, acked, have-acked, uncertain)
	}
}

// TestCrashLosesNothingAcknowledgedSQLHistory is the same promise with history in SQL, on the
// embedded SQLite (with the strict and the relaxed spool) and on PostgreSQL. History is read
// back through the API, as a user would.
func TestCrashLosesNothingAcknowledgedSQLHistory(t *testing.T) {
	cases := []struct {
		name  string
		extra func(t *testing.T) []string
	}{
		{"sqlite strict", func(*testing.T) []string { return nil }},
		// relaxed acknowledges before the fsync: a power cut may lose the last interval, a
		// killed process may not (its writes are in the page cache).
		{"sqlite relaxed", func(*testing.T) []string { return []string{"PATRONUS_SPOOL_SYNC=relaxed"} }},
		{"postgres strict", func(t *testing.T) []string {
			return []string{"PATRONUS_DATABASE_URL=" + storagetest.PostgresSchemaURL(t)}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newChildEnv(t, tc.extra(t)...)
			c.start()
			ids := createCrashPolicies(t, c)
			var l ledger
			for i := range 3 {
				c.crashRound(fmt.Sprintf("kill %d", i+1), ids, &l, nil, nil)
			}
			c.checkLedger(ids, &l, func() map[string]int64 { return apiPackets(t, c, ids) })
		})
	}
}

// crashRound runs load against the child, SIGKILLs it in the middle and starts it again on
// the same database and spool. before and after, when set, run around the round (to take a
// dependency down and bring it back).
func (c *crashChild) crashRound(name string, ids [3]int64, l *ledger, before, after func()) {
	if before != nil {
		before()
	}
	stop := make(chan struct{})
	wg := c.load(4, ids, l, stop)
	time.Sleep(700 * time.Millisecond) // several flush intervals of load
	c.kill()
	time.Sleep(50 * time.Millisecond)
	c.start()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if after != nil {
		after()
	}
	c.t.Logf("%s: acknowledged so far %d/%d/%d packets", name, l.acked[0].Load(), l.acked[1].Load(), l.acked[2].Load())
}

// checkLedger waits until history holds every acknowledged packet, then checks that nothing
// was lost and nothing doubled: what history holds beyond the acknowledged packets must be
// whole unanswered batches.
func (c *crashChild) checkLedger(ids [3]int64, l *ledger, read func() map[string]int64) {
	t := c.t
	var got map[string]int64
	settled := func() bool {
		got = read()
		for p, id := range ids {
			if v := got[fmt.Sprint(id)]; v < l.acked[p].Load() {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(20 * time.Second)
	for !settled() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a few more flushes: anything doubled would show now
	got = read()
	for p, id := range ids {
		acked, uncertain := l.acked[p].Load(), l.uncertain[p].Load()
		have := got[fmt.Sprint(id)]
		switch {
		case acked == 0:
			t.Errorf("policy %d: no batch was acknowledged: the load did not run", id)
		case have < acked:
			t.Errorf("policy %d: history %d packets, %d acknowledged: %d lost", id, have, acked, acked-have)
		case have > acked+uncertain || (have-acked)%55 != 0:
			t.Errorf("policy %d: history %d packets, %d acknowledged and %d unanswered: doubled", id, have, acked, uncertain)
		default:
			t.Logf("policy %d: history %d = %d acknowledged + %d of %d unanswered", id, have, acked, have-acked, uncertain)
		}
	}
	if t.Failed() {
		t.Logf("last process's log:\n%s", c.logs)
	}
}

// apiPackets returns the packets history holds per policy id, read through the history API
// (the summary of the last day, one window).
func apiPackets(t *testing.T, c *crashChild, ids [3]int64) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	for _, id := range ids {
		resp, err := c.do(http.MethodGet, fmt.Sprintf("/api/v1/policies/%d/stats/history?from=-24h&every=24h", id), nil)
		if err != nil {
			t.Fatal(err)
		}
		var h struct {
			Summary struct {
				TotalPackets int64 `json:"total_packets"`
			} `json:"summary"`
		}
		err = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("history of policy %d: %d %v", id, resp.StatusCode, err)
		}
		got[fmt.Sprint(id)] = h.Summary.TotalPackets
	}
	return got
}
