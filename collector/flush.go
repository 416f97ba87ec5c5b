package collector

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patronus-sdwan/patronus/spool"
	"github.com/patronus-sdwan/patronus/storage/history"
)

// HistoryWriter is where flushed deltas go: InfluxDB or the SQL table (history.InfluxHistory,
// history.SQLHistory). Writing the same deltas again must replace the points, not add to them,
// so that a retried batch cannot double count; a failure the writer knows is a
// *history.WriteError, which decides whether the batch is retried (history.AsWriteError).
type HistoryWriter interface {
	WriteDeltas(ctx context.Context, batch []history.PolicyDelta) error
}

// DeltaSource hands out the per-policy deltas since its previous call.
type DeltaSource interface {
	TakeDeltas(now time.Time) []history.PolicyDelta
}

// PolicyNamer names policies for the policy_name of history points. A DeltaSource that is
// also a PolicyNamer (as *Collector is) names the points of its Flusher.
type PolicyNamer interface {
	PolicyName(id int64) string
}

// FlushConfig configures a Flusher.
type FlushConfig struct {
	// Instance is this replica's name, the instance tag of every point.
	Instance string
	// Interval is how often deltas are taken (PATRONUS_FLUSH_INTERVAL).
	Interval time.Duration
	// MaxPending bounds the points held while the store is down; past it the oldest are dropped
	// and counted (PATRONUS_HISTORY_BUFFER_POINTS).
	MaxPending int
	// MaxBatch is the most points sent in one write; several flushes' batches are merged up to it.
	MaxBatch int
	// WriteTimeout bounds one write attempt.
	WriteTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between retries of a failed write.
	MinBackoff, MaxBackoff time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives failures and the shutdown summary.
	Logger *slog.Logger
	// Spool, when set, is where the points come from: each flush appends a cut to it and
	// writes the sums of the acknowledged batches since the previous cut, and the spool's
	// checkpoint advances only after the store confirmed them. The DeltaSource then only
	// supplies the active flows. Without it the points are the DeltaSource's deltas, kept in
	// memory only.
	Spool Spool
}

// PipelineStats is the state of the history pipeline, for /api/v1/stats/pipeline and /metrics.
type PipelineStats struct {
	PointsWritten int64
	PointsPending int64
	PointsDropped int64
	// BatchesFailed counts the batches in which the store refused points for good, once per
	// batch however many of its points were refused; failures that are retried do not count
	// (WriteAttempts counts every write sent, retries included).
	BatchesFailed int64
	LastError     string
	LastErrorAt   time.Time
	// LastSuccessAt is when a flush cycle last ended healthy: everything it took was
	// written, or there was nothing to write and nothing was waiting. It tracks flush
	// health, not traffic: an idle service still moves it every interval.
	LastSuccessAt  time.Time
	FlushesTotal   int64
	WriteAttempts  int64
	PendingBatches int
}

// Flusher takes deltas from a DeltaSource every interval and writes them to a HistoryWriter.
//
// Deltas are taken once and kept, with their flush timestamp, until written: a retry re-sends
// the same points with the same timestamps, so a write that succeeded but timed out overwrites
// itself instead of counting twice. Taking deltas never waits for the store: a separate writer
// goroutine drains the queue, retrying network errors, 5xx and 429 with capped exponential
// backoff (Retry-After honoured). A batch the store refuses for good (other 4xx) is split
// until the refused points are alone; those are dropped, with a count and a log line, and the
// rest is written. Batching happens here only; the writer sends what it is given.
type Flusher struct {
	src   DeltaSource
	names PolicyNamer // nil when src does not name policies
	w     HistoryWriter
	cfg   FlushConfig

	mu      sync.Mutex
	queue   []queuedFlush // oldest first
	pending int
	nextSeq uint64
	stats   PipelineStats
	wake    chan struct{}
}

// queuedFlush is one flush's points, sharing one timestamp, waiting to be written.
type queuedFlush struct {
	points []history.PolicyDelta
	// end is the spool position to commit once the points are written; 0 without a spool.
	end int64
	// seq numbers the queued flushes, so that completing a write removes exactly the flushes
	// it sent, even if dropOldest removed some from the head meanwhile.
	seq uint64
}

// Spool is the durable log a Flusher reads its points from when FlushConfig.Spool is set:
// acknowledged batches are in it already, and a flush appends a cut and reads back the sums
// between cuts. *spool.Spool implements it.
type Spool interface {
	Cut(ctx context.Context, at time.Time, activeFlows map[int64]int64) error
	ReadFlushes() ([]spool.Flush, error)
	Commit(end int64) error
}

// NewFlusher returns a Flusher; Run starts it.
func NewFlusher(src DeltaSource, w HistoryWriter, cfg FlushConfig) *Flusher {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 1_000_000
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 10_000
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	names, _ := src.(PolicyNamer)
	return &Flusher{src: src, names: names, w: w, cfg: cfg, wake: make(chan struct{}, 1)}
}

// Stats returns a snapshot of the pipeline counters.
func (f *Flusher) Stats() PipelineStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	s.PointsPending = int64(f.pending)
	s.PendingBatches = len(f.queue)
	return s
}

// CollectDeltas takes the deltas since the last call and queues them under one timestamp. It never
// blocks on the store. With a spool it cuts the spool and queues what the spool hands back.
func (f *Flusher) CollectDeltas() int {
	now := f.cfg.Now().UTC()
	deltas := f.src.TakeDeltas(now)
	var flushes []queuedFlush
	healthy := true
	if f.cfg.Spool == nil {
		for i := range deltas {
			deltas[i].Instance = f.cfg.Instance
			deltas[i].Time = now
			f.name(&deltas[i])
		}
		flushes = []queuedFlush{{points: deltas}}
	} else {
		var ok bool
		flushes, ok = f.readSpool(now, deltas)
		healthy = ok
	}
	n := 0
	f.mu.Lock()
	f.stats.FlushesTotal++
	for _, q := range flushes {
		if len(q.points) == 0 && len(f.queue) == 0 {
			if q.end > 0 {
				f.commitLocked(q.end)
			}
			continue
		}
		f.nextSeq++
		q.seq = f.nextSeq
		f.queue = append(f.queue, q)
		f.pending += len(q.points)
		n += len(q.points)
	}
	f.dropOldestLocked()
	if healthy && len(f.queue) == 0 {
		f.stats.LastSuccessAt = f.cfg.Now() // an empty cycle: nothing to write, nothing waiting
	}
	f.mu.Unlock()
	if n > 0 {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
	return n
}

// readSpool cuts the spool at now, with the active flows of the collector's deltas, and
// returns the flushes it hands back (after a restart, those past the checkpoint first); ok
// is false when the spool failed, and the failure is the pipeline's last error.
func (f *Flusher) readSpool(now time.Time, deltas []history.PolicyDelta) (_ []queuedFlush, ok bool) {
	active := make(map[int64]int64, len(deltas))
	for _, d := range deltas {
		if d.PathID == 0 && d.ActiveFlows > 0 { // flows are counted per policy
			active[d.PolicyID] = d.ActiveFlows
		}
	}
	ok = true
	if err := f.cfg.Spool.Cut(context.Background(), now, active); err != nil {
		f.cfg.Logger.Error("spool: cannot cut a flush", "err", err)
		f.noteError(fmt.Errorf("spool: %w", err))
		ok = false
	}
	flushes, err := f.cfg.Spool.ReadFlushes()
	if err != nil {
		f.cfg.Logger.Error("spool: cannot read flushes", "err", err)
		f.noteError(fmt.Errorf("spool: %w", err))
		ok = false
	}
	out := make([]queuedFlush, len(flushes))
	for i, fl := range flushes {
		for j := range fl.Points {
			fl.Points[j].Instance = f.cfg.Instance
			f.name(&fl.Points[j])
		}
		out[i] = queuedFlush{points: fl.Points, end: fl.End}
	}
	return out, ok
}

// name sets a point's policy name once, when it is queued: a retry re-sends the point with
// the same tags, so it overwrites itself on InfluxDB even if the policy was renamed since.
func (f *Flusher) name(d *history.PolicyDelta) {
	if f.names != nil && d.PolicyName == "" {
		d.PolicyName = f.names.PolicyName(d.PolicyID)
	}
}

// commitLocked advances the spool's checkpoint. f.mu is held: commits happen in queue order.
func (f *Flusher) commitLocked(end int64) {
	if err := f.cfg.Spool.Commit(end); err != nil {
		f.cfg.Logger.Error("spool: cannot advance the checkpoint; what was written is replayed after a restart (and overwritten, not doubled)", "err", err)
	}
}

// dropOldestLocked enforces MaxPending by dropping the oldest points.
func (f *Flusher) dropOldestLocked() {
	dropped := 0
	for f.pending > f.cfg.MaxPending && len(f.queue) > 0 {
		over := f.pending - f.cfg.MaxPending
		head := f.queue[0].points
		if over >= len(head) {
			f.queue = f.queue[1:]
			f.pending -= len(head)
			dropped += len(head)
			continue
		}
		f.queue[0].points = head[over:]
		f.pending -= over
		dropped += over
	}
	if dropped > 0 {
		f.stats.PointsDropped += int64(dropped)
		f.cfg.Logger.Warn("history buffer full: dropped oldest points", "dropped", dropped, "max_pending", f.cfg.MaxPending)
	}
}

// nextBatch returns up to MaxBatch queued points, oldest first, without removing them.
func (f *Flusher) nextBatch() (batch []history.PolicyDelta, last uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, q := range f.queue {
		if len(batch) > 0 && len(batch)+len(q.points) > f.cfg.MaxBatch {
			break
		}
		batch = append(batch, q.points...)
		last = q.seq
	}
	return batch, last
}

// complete removes the queued flushes up to sequence number last after they were written,
// refused points excepted. The queue may have lost points to dropOldest meanwhile; only what
// is still there is removed.
func (f *Flusher) complete(last uint64, refused int, refusal error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	removed := 0
	var end int64
	for len(f.queue) > 0 && f.queue[0].seq <= last {
		removed += len(f.queue[0].points)
		end = f.queue[0].end
		f.queue = f.queue[1:]
	}
	f.pending -= removed
	if end > 0 {
		f.commitLocked(end)
	}
	refused = min(refused, removed)
	now := f.cfg.Now()
	f.stats.PointsWritten += int64(removed - refused)
	if removed > refused || removed == 0 { // removed == 0: flushes with nothing to write
		f.stats.LastSuccessAt = now
	}
	if refused == 0 {
		return
	}
	f.stats.PointsDropped += int64(refused)
	f.stats.BatchesFailed++
	f.stats.LastError = refusal.Error()
	f.stats.LastErrorAt = now
}

func (f *Flusher) noteError(err error) {
	f.mu.Lock()
	f.stats.LastError = err.Error()
	f.stats.LastErrorAt = f.cfg.Now()
	f.mu.Unlock()
}

// writeOnce sends the next batch. It reports whether the queue has more to send now, and,
// after a retryable failure, how long to wait before the next attempt.
func (f *Flusher) writeOnce(ctx context.Context) (more bool, wait time.Duration, err error) {
	batch, last := f.nextBatch()
	if len(batch) == 0 {
		if last > 0 { // flushes without points, queued behind others to keep commits in order
			f.complete(last, 0, nil)
			return true, 0, nil
		}
		return false, 0, nil
	}
	refused, refusal, err := f.writeIsolating(ctx, batch)
	if err != nil {
		f.noteError(err)
		_, retryAfter := classifyWriteError(err)
		return false, retryAfter, err
	}
	f.complete(last, refused, refusal)
	return true, 0, refusal
}

// writeIsolating writes batch. When the store refuses it for good, it splits the batch in
// halves and writes each, down to single points, so that a refused point is dropped alone and
// never takes the rest of its batch with it (as Telegraf splits a batch on 413). Parts
// written before a split are written again with it; they carry the same timestamps, so the
// store overwrites them. It returns how many points were refused and the last refusal, or a
// retryable error, after which the caller sends the whole batch again.
func (f *Flusher) writeIsolating(ctx context.Context, batch []history.PolicyDelta) (refused int, refusal, err error) {
	f.mu.Lock()
	f.stats.WriteAttempts++
	f.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, f.cfg.WriteTimeout)
	err = f.w.WriteDeltas(wctx, batch)
	cancel()
	if err == nil {
		return 0, nil, nil
	}
	if retryable, _ := classifyWriteError(err); retryable {
		return 0, nil, err
	}
	if len(batch) == 1 {
		d := batch[0]
		f.cfg.Logger.Error("history store refused a point; dropped", "policy_id", d.PolicyID, "path_id", d.PathID,
			"time", d.Time, "packets", d.Packets, "bytes", d.Bytes, "err", err)
		return 1, err, nil
	}
	half := len(batch) / 2
	r1, e1, err := f.writeIsolating(ctx, batch[:half])
	if err != nil {
		return 0, nil, err
	}
	r2, e2, err := f.writeIsolating(ctx, batch[half:])
	if err != nil {
		return 0, nil, err
	}
	if e2 == nil {
		e2 = e1
	}
	return r1 + r2, e2, nil
}

// classifyWriteError says whether a write may succeed if sent again, and how long the store
// asked us to wait. The decision is the store's (history.AsWriteError): the flusher keeps no
// default of its own.
func classifyWriteError(err error) (retryable bool, retryAfter time.Duration) {
	we := history.AsWriteError(err)
	return we.Retryable, we.RetryAfter
}

// Run takes deltas every interval and writes them until ctx ends; then it takes a last batch
// and writes what it can before drainCtx ends, logging what could not be written.
func (f *Flusher) Run(ctx context.Context, drainTimeout time.Duration) {
	var wg sync.WaitGroup
	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	wg.Go(func() { f.writeLoop(writerCtx) })

	ticker := time.NewTicker(f.cfg.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			stopWriter()
			wg.Wait()
			f.drain(drainTimeout)
			return
		case <-ticker.C:
			f.CollectDeltas()
		}
	}
}

// writeLoop drains the queue whenever woken, backing off after retryable failures.
func (f *Flusher) writeLoop(ctx context.Context) {
	backoff := time.Duration(0)
	for {
		more, wait, err := f.writeOnce(ctx)
		switch {
		case err != nil && !more: // retryable failure: the batch is still queued
			if backoff == 0 {
				backoff = f.cfg.MinBackoff
			} else {
				backoff = min(backoff*2, f.cfg.MaxBackoff)
			}
			d := backoff
			if wait > d {
				d = min(wait, 5*time.Minute)
			}
			f.cfg.Logger.Warn("history write failed; will retry", "err", err, "retry_in", d, "pending", f.Stats().PointsPending)
			if !sleepCtx(ctx, d) {
				return
			}
			continue
		case more:
			backoff = 0
			continue
		}
		backoff = 0
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		}
	}
}

// drain takes the last deltas and writes until the queue is empty or the deadline passes.
func (f *Flusher) drain(timeout time.Duration) {
	f.CollectDeltas()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for ctx.Err() == nil {
		more, wait, err := f.writeOnce(ctx)
		if err == nil && !more {
			break
		}
		if err != nil && !more {
			if !sleepCtx(ctx, max(wait, f.cfg.MinBackoff)) {
				break
			}
		}
	}
	s := f.Stats()
	if s.PointsPending > 0 && f.cfg.Spool != nil {
		f.cfg.Logger.Warn("shutdown: history points not written yet; they stay in the spool and are written after the next start",
			"points", s.PointsPending, "batches", s.PendingBatches, "last_error", s.LastError)
		return
	}
	if s.PointsPending > 0 {
		f.cfg.Logger.Error("shutdown: history points not written", "points", s.PointsPending, "batches", s.PendingBatches, "last_error", s.LastError)
		return
	}
	f.cfg.Logger.Info("shutdown: history flushed", "points_written", s.PointsWritten, "points_dropped", s.PointsDropped)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

var (
	descPointsWritten = prometheus.NewDesc("patronus_history_points_written_total", "History points the store accepted.", nil, nil)
	descPointsPending = prometheus.NewDesc("patronus_history_points_pending", "History points waiting to be written.", nil, nil)
	descPointsDropped = prometheus.NewDesc("patronus_history_points_dropped_total", "History points dropped: buffer full or rejected by the store.", nil, nil)
	descBatchesFailed = prometheus.NewDesc("patronus_history_batches_failed_total", "History batches in which the store refused points for good (retried failures are not counted).", nil, nil)
	descFlushes       = prometheus.NewDesc("patronus_history_flushes_total", "Flush intervals run.", nil, nil)
	descWriteAttempts = prometheus.NewDesc("patronus_history_write_attempts_total", "Writes sent to the history store, retries included.", nil, nil)
	descLastSuccess   = prometheus.NewDesc("patronus_history_last_success_timestamp_seconds", "When a flush cycle last succeeded: it wrote what it took, or had nothing to write.", nil, nil)
	descLastError     = prometheus.NewDesc("patronus_history_last_error_timestamp_seconds", "When a history write last failed.", nil, nil)
)

// Describe implements prometheus.Collector.
func (f *Flusher) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPointsWritten, descPointsPending, descPointsDropped, descBatchesFailed, descFlushes, descWriteAttempts, descLastSuccess, descLastError} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (f *Flusher) Collect(ch chan<- prometheus.Metric) {
	s := f.Stats()
	unix := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return float64(t.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(descPointsWritten, prometheus.CounterValue, float64(s.PointsWritten))
	ch <- prometheus.MustNewConstMetric(descPointsPending, prometheus.GaugeValue, float64(s.PointsPending))
	ch <- prometheus.MustNewConstMetric(descPointsDropped, prometheus.CounterValue, float64(s.PointsDropped))
	ch <- prometheus.MustNewConstMetric(descBatchesFailed, prometheus.CounterValue, float64(s.BatchesFailed))
	ch <- prometheus.MustNewConstMetric(descFlushes, prometheus.CounterValue, float64(s.FlushesTotal))
	ch <- prometheus.MustNewConstMetric(descWriteAttempts, prometheus.CounterValue, float64(s.WriteAttempts))
	ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue, unix(s.LastSuccessAt))
	ch <- prometheus.MustNewConstMetric(descLastError, prometheus.GaugeValue, unix(s.LastErrorAt))
}
