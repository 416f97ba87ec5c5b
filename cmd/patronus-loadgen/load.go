package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patronus-sdwan/patronus/collector"
)

// summary is the outcome of a run. Accepted, Classified and Unclassified add up what the
// server answered; Packets and Bytes are those of the accepted batches, so they equal what
// the server counted if nothing else sent traffic.
type summary struct {
	Elapsed    time.Duration
	Batches    int64 // accepted
	Errors     int64 // batches that failed or were refused
	FirstError string
	// Refused is the first batch the server refused for its token, which stopped the run.
	Refused      *authError
	Accepted     int64
	Classified   int64
	Unclassified int64
	Packets      uint64
	Bytes        uint64
	// Latencies of accepted batches, sorted.
	Latencies []time.Duration
	cfg       config

	// Unanswered and UnansweredPackets count the failed batches that were sent but got no
	// answer (the server died or the connection broke): the server may have recorded them.
	Unanswered        int64
	UnansweredPackets uint64
}

// ReportsPerSecond is the accepted reports over the run's length.
func (s *summary) ReportsPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Accepted) / s.Elapsed.Seconds()
}

// percentile is the latency at q (0 to 1) of the accepted batches; 0 if there were none.
func (s *summary) percentile(q float64) time.Duration {
	if len(s.Latencies) == 0 {
		return 0
	}
	i := int(q*float64(len(s.Latencies))+0.5) - 1
	return s.Latencies[min(max(i, 0), len(s.Latencies)-1)]
}

func (s *summary) print(w io.Writer) {
	gz := "off"
	if s.cfg.gzip {
		gz = "on"
	}
	fmt.Fprintf(w, "patronus-loadgen: %s to %s, concurrency %d, batch %d, gzip %s\n",
		s.Elapsed.Round(time.Millisecond), s.cfg.url, s.cfg.concurrency, s.cfg.batch, gz)
	fmt.Fprintf(w, "batches:  %d accepted, %d errors\n", s.Batches, s.Errors)
	if s.Unanswered > 0 {
		fmt.Fprintf(w, "unanswered: %d batches, %d packets sent without an answer (may or may not be recorded)\n",
			s.Unanswered, s.UnansweredPackets)
	}
	fmt.Fprintf(w, "reports:  %d accepted (%.0f reports/s), %d classified, %d unclassified\n",
		s.Accepted, s.ReportsPerSecond(), s.Classified, s.Unclassified)
	fmt.Fprintf(w, "traffic:  %d packets, %d bytes\n", s.Packets, s.Bytes)
	fmt.Fprintf(w, "latency:  p50 %s, p99 %s, max %s\n", s.percentile(0.50).Round(time.Microsecond),
		s.percentile(0.99).Round(time.Microsecond), s.percentile(1).Round(time.Microsecond))
	if s.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", s.FirstError)
	}
}

// counters are shared by the workers and read by the progress line.
type counters struct {
	batches, errors, accepted atomic.Int64
}

// generate runs the workers for cfg.duration and sums up what they did.
func generate(ctx context.Context, cfg config, progress io.Writer) (*summary, error) {
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: cfg.concurrency, DisableCompression: true},
		Timeout:   30 * time.Second,
	}
	defer client.CloseIdleConnections()
	base := strings.TrimRight(cfg.url, "/")
	var policyIDs []int64
	if cfg.policies > 0 {
		var err error
		if policyIDs, err = fetchPolicyIDs(ctx, client, base, cfg.token, cfg.policies); err != nil {
			return nil, err
		}
	}

	// A batch is started only while the run lasts; batches in flight at the end are waited
	// for, not cancelled, so that what the server counted and what is summed here agree.
	timed, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	// A refused token stops every worker at once: each further batch would be refused too.
	runCtx, stop := context.WithCancelCause(timed)
	defer stop(nil)
	var tokens <-chan time.Time
	if cfg.rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / cfg.rate))
		defer t.Stop()
		tokens = t.C
	}
	var live counters
	start := time.Now()
	results := make([]*summary, cfg.concurrency)
	var wg sync.WaitGroup
	for w := range cfg.concurrency {
		wk := newWorker(cfg, w, policyIDs, client, base+"/api/v1/traffic")
		wg.Go(func() { results[w] = wk.run(runCtx, stop, tokens, &live) })
	}
	done := make(chan struct{})
	var progressDone sync.WaitGroup
	if cfg.progress > 0 {
		progressDone.Go(func() {
			t := time.NewTicker(cfg.progress)
			defer t.Stop()
			var last int64
			for {
				select {
				case <-done:
					return
				case now := <-t.C:
					acc := live.accepted.Load()
					fmt.Fprintf(progress, "%6.1fs  batches %d  errors %d  reports %d  %.0f reports/s\n",
						now.Sub(start).Seconds(), live.batches.Load(), live.errors.Load(), acc,
						float64(acc-last)/cfg.progress.Seconds())
					last = acc
				}
			}
		})
	}
	wg.Wait()
	close(done)
	progressDone.Wait() // no progress line after the summary
	sum := &summary{Elapsed: time.Since(start), cfg: cfg}
	var refused *authError
	if errors.As(context.Cause(runCtx), &refused) {
		sum.Refused = refused
	}
	for _, r := range results {
		sum.Batches += r.Batches
		sum.Errors += r.Errors
		sum.Unanswered += r.Unanswered
		sum.UnansweredPackets += r.UnansweredPackets
		if sum.FirstError == "" {
			sum.FirstError = r.FirstError
		}
		sum.Accepted += r.Accepted
		sum.Classified += r.Classified
		sum.Unclassified += r.Unclassified
		sum.Packets += r.Packets
		sum.Bytes += r.Bytes
		sum.Latencies = append(sum.Latencies, r.Latencies...)
	}
	slices.Sort(sum.Latencies)
	return sum, nil
}

// fetchPolicyIDs returns the ids of up to n of the server's policies.
func fetchPolicyIDs(ctx context.Context, client *http.Client, base, token string, n int) ([]int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/policies?limit="+strconv.Itoa(min(n, 1000)), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("list policies: %s: %s", resp.Status, body)
	}
	var page struct {
		Items []struct {
			ID int64 `json:"id"`
		} `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	ids := make([]int64, 0, len(page.Items))
	for _, p := range page.Items {
		ids = append(ids, p.ID)
	}
	return ids, nil
}

// worker sends batches one after another over its own share of the flows.
type worker struct {
	cfg      config
	client   *http.Client
	endpoint string
	rng      *rand.Rand
	policies []int64
	// pool holds the flow numbers in use; fresh numbers are next, next+stride, ...
	pool         []uint32
	next, stride uint32
	reports      []collector.Report
	body         []byte
	zbuf         bytes.Buffer
	zw           *gzip.Writer
}

func newWorker(cfg config, index int, policies []int64, client *http.Client, endpoint string) *worker {
	w := &worker{
		cfg: cfg, client: client, endpoint: endpoint, policies: policies,
		rng:     rand.New(rand.NewPCG(cfg.seed, uint64(index))),
		pool:    make([]uint32, max(1, cfg.flows/cfg.concurrency)),
		stride:  uint32(cfg.concurrency),
		reports: make([]collector.Report, cfg.batch),
		zw:      gzip.NewWriter(io.Discard),
	}
	// Worker i owns the flow numbers i, i+concurrency, i+2*concurrency, ...
	for j := range w.pool {
		w.pool[j] = uint32(index) + uint32(j)*w.stride
	}
	w.next = uint32(index) + uint32(len(w.pool))*w.stride
	return w
}

func (w *worker) run(ctx context.Context, stop context.CancelCauseFunc, tokens <-chan time.Time, live *counters) *summary {
	sum := &summary{}
	for {
		if tokens != nil {
			select {
			case <-ctx.Done():
				return sum
			case <-tokens:
			}
		}
		if ctx.Err() != nil {
			return sum
		}
		packets, bytes := w.fill()
		body := collector.AppendBatchJSON(w.body[:0], w.reports)
		w.body = body
		if w.cfg.gzip {
			w.zbuf.Reset()
			w.zw.Reset(&w.zbuf)
			_, _ = w.zw.Write(body)
			_ = w.zw.Close()
			body = w.zbuf.Bytes()
		}
		began := time.Now()
		res, err := w.send(body)
		took := time.Since(began)
		if err != nil {
			sum.Errors++
			if errors.Is(err, errNoAnswer) {
				sum.Unanswered++
				sum.UnansweredPackets += packets
			}
			live.errors.Add(1)
			if sum.FirstError == "" {
				sum.FirstError = err.Error()
			}
			var refused *authError
			if errors.As(err, &refused) {
				stop(refused)
				return sum
			}
			continue
		}
		sum.Batches++
		sum.Accepted += res.Accepted
		sum.Classified += res.Classified
		sum.Unclassified += res.Unclassified
		sum.Packets += packets
		sum.Bytes += bytes
		sum.Latencies = append(sum.Latencies, took)
		live.batches.Add(1)
		live.accepted.Add(res.Accepted)
	}
}

// fill generates the next batch into w.reports and returns its packets and bytes.
func (w *worker) fill() (packets, bytes uint64) {
	for i := range w.reports {
		slot := w.rng.IntN(len(w.pool))
		if w.cfg.churn > 0 && w.rng.Float64() < w.cfg.churn {
			w.pool[slot] = w.next
			w.next += w.stride
		}
		n := w.pool[slot]
		r := &w.reports[i]
		*r = collector.Report{Flow: flowKey(n)}
		if len(w.policies) > 0 && n%4 != 0 {
			id := w.policies[int(n)%len(w.policies)]
			r.PolicyID = &id
		}
		r.Packets = 1 + w.rng.Uint64N(20)
		r.Bytes = r.Packets * (64 + w.rng.Uint64N(1400))
		packets += r.Packets
		bytes += r.Bytes
	}
	return packets, bytes
}

// dstPorts are the services flows go to, so that port-matching policies see some of them.
var dstPorts = [...]uint16{443, 5060, 53, 80, 22, 3389, 8080, 1194}

// flowKey is flow number n: a distinct source address and port, a destination from a small
// set of services, TCP or UDP.
func flowKey(n uint32) collector.FlowKey {
	src := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
	dst := netip.AddrFrom4([4]byte{10, 20, byte(n % 7), 1 + byte(n%13)})
	proto := uint8(6)
	if n%3 == 0 {
		proto = 17
	}
	return collector.FlowKey{SrcIP: src, DstIP: dst, SrcPort: 1024 + uint16(n>>24)*1000 + uint16(n%1000),
		DstPort: dstPorts[n%uint32(len(dstPorts))], Protocol: proto}
}

// trafficResult is the server's answer to an accepted batch.
type trafficResult struct {
	Accepted     int64 `json:"accepted"`
	Classified   int64 `json:"classified"`
	Unclassified int64 `json:"unclassified"`
}

// send posts one batch; anything but a 200 with a result is an error.
// errNoAnswer marks a batch that was sent but not answered.
var errNoAnswer = errors.New("no answer")

func (w *worker) send(body []byte) (trafficResult, error) {
	var res trafficResult
	// Not the run's context: a batch started before the end is let finish.
	req, err := http.NewRequest(http.MethodPost, w.endpoint, bytes.NewReader(body))
	if err != nil {
		return res, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+w.cfg.token)
	if w.cfg.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := w.client.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return res, err // never reached the server
		}
		return res, fmt.Errorf("%w: %w", errNoAnswer, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return res, fmt.Errorf("%w: %w", errNoAnswer, err)
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return res, &authError{status: resp.Status, body: string(bytes.TrimSpace(raw))}
	}
	if resp.StatusCode != http.StatusOK {
		return res, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(raw))
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return res, fmt.Errorf("decode the result: %w", err)
	}
	return res, nil
}

// authError is a batch the server refused for its token: 401 (unknown or revoked) or 403 (a
// role below operator). Retrying cannot help, so the run stops at the first one.
type authError struct {
	status, body string
}

func (e *authError) Error() string {
	hint := "the token is unknown or revoked; create one with `patronus token create --name NAME --role operator`"
	if strings.HasPrefix(e.status, "403") {
		hint = "the token's role cannot ingest traffic; use an operator or admin token"
	}
	return fmt.Sprintf("%s: %s (%s)", e.status, hint, e.body)
}
