package collector

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/patronus-sdwan/patronus/spool"
	"github.com/patronus-sdwan/patronus/storage/history"
)

// Unclassified is the policy id under which traffic that matched no policy is counted. Real
// policy ids are positive, so it never collides with one. TopFlows(Unclassified, ...) lists
// the unclassified flows.
const Unclassified int64 = 0

// Defaults for Config.
const (
	DefaultFlowIdleTimeout = 5 * time.Minute
	DefaultMaxFlows        = 1_000_000
)

// Config configures a Collector. The zero value is usable: every field has a default.
type Config struct {
	// FlowIdleTimeout is how long a flow may go without traffic before SweepIdle removes it.
	FlowIdleTimeout time.Duration
	// MaxFlows caps the number of flows tracked individually. Past it, traffic of new flows is
	// still counted in its policy's packets and bytes, but the flow is not tracked.
	MaxFlows int
	// SweepInterval is how often Run sweeps idle flows; default min(FlowIdleTimeout/4, 30s).
	SweepInterval time.Duration
	// Now is the clock. Nil means the real clock, which Run then caches at millisecond
	// resolution for the record path: time.Now costs about 80 ns on this kind of virtual
	// machine (kvm-clock), more than a whole record.
	Now func() time.Time
	// Logger receives the sweeper's reports; nil means slog.Default().
	Logger *slog.Logger
}

// Collector aggregates traffic reports into live per-policy and per-flow statistics and
// history deltas. All methods are safe for concurrent use.
type Collector struct {
	// Read on every record.
	shards     []paddedShard
	shardShift uint
	maxFlows   int64
	ticking    atomic.Bool  // coarse holds the time, refreshed by Run
	coarse     atomic.Int64 // unix nanoseconds
	policies   atomic.Pointer[policySet]

	now           func() time.Time
	realClock     bool
	idleTimeout   time.Duration
	sweepInterval time.Duration
	log           *slog.Logger

	_ [64]byte // keep the counters below off the lines read on every record

	tracked atomic.Int64
	expired atomic.Uint64
	// unclassifiedRecords counts unclassified reports; the live count is minus the base.
	unclassifiedRecords     atomic.Uint64
	unclassifiedRecordsBase atomic.Uint64
	records                 atomic.Uint64
	batches                 atomic.Uint64
	rejected                atomic.Uint64

	// setMu serialises SetPolicies; takeMu serialises TakeDeltas with the removal of
	// policies, whose last untaken deltas wait in removed until the next TakeDeltas.
	setMu   sync.Mutex
	takeMu  sync.Mutex
	removed map[int64]*history.PolicyDelta
	// removedNames keeps the names of removed policies for the flushes that may still write
	// their last deltas; guarded by takeMu, pruned by TakeDeltas (see PolicyName).
	removedNames map[int64]removedName
	takes        uint64 // TakeDeltas calls, guarded by takeMu

	paths pathCounters
}

// New returns a Collector that knows no policies yet; call SetPolicies before recording.
func New(cfg Config) *Collector {
	if cfg.FlowIdleTimeout <= 0 {
		cfg.FlowIdleTimeout = DefaultFlowIdleTimeout
	}
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = DefaultMaxFlows
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = min(cfg.FlowIdleTimeout/4, 30*time.Second)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Collector{
		idleTimeout:   cfg.FlowIdleTimeout,
		sweepInterval: cfg.SweepInterval,
		maxFlows:      int64(cfg.MaxFlows),
		now:           cfg.Now,
		realClock:     cfg.Now == nil,
		log:           cfg.Logger,
		removed:       make(map[int64]*history.PolicyDelta),
		removedNames:  make(map[int64]removedName),
		paths:         newPathCounters(),
	}
	if c.realClock {
		c.now = time.Now
	}
	// Enough shards that concurrent recorders rarely meet on one lock.
	n := 1 << bits.Len(uint(max(16, 8*runtime.GOMAXPROCS(0))-1))
	n = min(n, 1024)
	c.shards = newShards(n)
	c.shardShift = uint(64 - bits.TrailingZeros(uint(n)))
	c.policies.Store(&policySet{members: map[int64]struct{}{}, cls: &classifier{}})
	return c
}

// nanos is the time stamped on records: the cached clock while Run keeps it fresh, the
// configured clock otherwise.
func (c *Collector) nanos() int64 {
	if c.ticking.Load() {
		return c.coarse.Load()
	}
	return c.now().UnixNano()
}

// policySet is an immutable snapshot of the policies, swapped whole by SetPolicies.
type policySet struct {
	members map[int64]struct{} // every policy, enabled or not
	ids     []int64            // the same, sorted
	names   []string           // names[i] is the name of policy ids[i]
	cls     *classifier        // the enabled ones

	labelsOnce sync.Once          // builds labels on the first scrape of this set
	labels     [][]*dto.LabelPair // metric labels: unclassified, then ids in order
}

// known reports whether id names a policy of the set.
func (p *policySet) known(id int64) bool {
	_, ok := p.members[id]
	return ok
}

// SetPolicies replaces the policies: it compiles the enabled ones into the classifier and
// remembers every id, enabled or not, as one that reports may name. The live statistics and
// flows of policies no longer present are dropped; their traffic not yet taken by TakeDeltas
// is still returned by the next TakeDeltas. On error nothing changes.
func (c *Collector) SetPolicies(policies []Policy) error {
	set := &policySet{members: make(map[int64]struct{}, len(policies))}
	for _, p := range policies {
		if p.ID <= 0 {
			return fmt.Errorf("set policies: policy id %d is not positive", p.ID)
		}
		if set.known(p.ID) {
			return fmt.Errorf("set policies: duplicate policy id %d", p.ID)
		}
		set.members[p.ID] = struct{}{}
		set.ids = append(set.ids, p.ID)
	}
	slices.Sort(set.ids)
	set.names = make([]string, len(set.ids))
	for _, p := range policies {
		i, _ := slices.BinarySearch(set.ids, p.ID)
		set.names[i] = p.Name
	}
	cls, err := compileClassifier(policies)
	if err != nil {
		return fmt.Errorf("set policies: %w", err)
	}
	set.cls = cls

	c.setMu.Lock()
	defer c.setMu.Unlock()
	old := c.policies.Load()
	c.policies.Store(set)
	var gone []int64
	var goneNames []string
	for i, id := range old.ids {
		if !set.known(id) {
			gone = append(gone, id)
			goneNames = append(goneNames, old.names[i])
		}
	}
	if len(gone) > 0 {
		c.dropPolicies(gone, goneNames)
	}
	return nil
}

// dropPolicies removes the cells and flows of policies that no longer exist, keeping their
// untaken deltas for the next TakeDeltas so that history loses nothing, and their names for
// the points of those deltas.
func (c *Collector) dropPolicies(ids []int64, names []string) {
	c.takeMu.Lock()
	defer c.takeMu.Unlock()
	for i, id := range ids {
		c.removedNames[id] = removedName{name: names[i], takes: c.takes}
	}
	for i := range c.shards {
		s := &c.shards[i].shard
		s.mu.Lock()
		removedFlows := 0
		for _, id := range ids {
			ci, ok := s.cellOf[id]
			if !ok {
				continue
			}
			dp, db, flows := s.dropCellLocked(ci)
			removedFlows += flows
			if dp == 0 && db == 0 {
				continue
			}
			d := c.removed[id]
			if d == nil {
				d = &history.PolicyDelta{PolicyID: id}
				c.removed[id] = d
			}
			d.Packets = addInt64Sat(d.Packets, int64Sat(dp))
			d.Bytes = addInt64Sat(d.Bytes, int64Sat(db))
		}
		c.tracked.Add(-int64(removedFlows))
		s.mu.Unlock()
	}
}

// Classify returns the policy that traffic of flow k matches: the first enabled policy in
// priority order (lower priority first, ties by lower id) whose protocol, CIDRs and port
// ranges all match. ok is false when none does.
func (c *Collector) Classify(k FlowKey) (policyID int64, ok bool) {
	return c.policies.Load().cls.classify(&k)
}

// RecordPacket counts one packet of bytes bytes of flow k against a policy. Traffic for a
// policy id the collector does not know is counted as unclassified.
func (c *Collector) RecordPacket(policyID int64, k FlowKey, bytes uint64) {
	if policyID == Unclassified {
		c.unclassifiedRecords.Add(1)
	}
	c.record(policyID, &k, 1, bytes, c.nanos())
}

// Record counts packets and bytes of flow k against a policy, like RecordPacket.
func (c *Collector) Record(policyID int64, k FlowKey, packets, bytes uint64) {
	if policyID == Unclassified {
		c.unclassifiedRecords.Add(1)
	}
	c.record(policyID, &k, packets, bytes, c.nanos())
}

// BatchResult says what RecordBatch did with a batch: Accepted reports in all, of which
// Classified had no policy id and matched one, and Unclassified matched none.
type BatchResult struct {
	Accepted     int
	Classified   int
	Unclassified int
}

// CheckBatch returns every problem of the reports that needs the collector to see, an unknown
// policy or path id, at most MaxValidationErrors of them in report order; nil when there is
// none.
func (c *Collector) CheckBatch(reports []Report) ValidationErrors {
	return c.checkIDs(c.policies.Load(), reports)
}

// checkIDs returns the reports' unknown policy and path ids, at most MaxValidationErrors.
func (c *Collector) checkIDs(set *policySet, reports []Report) ValidationErrors {
	errs := checkPolicies(set, reports)
	if more := c.checkPaths(reports, MaxValidationErrors); len(more) > 0 {
		errs = append(errs, more...)
		slices.SortStableFunc(errs, func(a, b *ValidationError) int { return cmp.Compare(a.Index, b.Index) })
		if len(errs) > MaxValidationErrors {
			errs = errs[:MaxValidationErrors]
		}
	}
	return errs
}

// checkPolicies returns the reports' unknown policy ids against set, at most
// MaxValidationErrors of them.
func checkPolicies(set *policySet, reports []Report) ValidationErrors {
	var errs ValidationErrors
	for i := range reports {
		if len(errs) >= MaxValidationErrors {
			break
		}
		r := &reports[i]
		if r.PolicyID != nil && !set.known(*r.PolicyID) {
			errs = append(errs, &ValidationError{Index: i, Field: fieldPath(i, "policy_id"),
				Message: fmt.Sprintf("unknown policy %d", *r.PolicyID)})
		}
	}
	return errs
}

// RecordBatch validates every report first and records nothing if one is invalid (an
// unknown policy id or a missing address), returning a *ValidationError that names it.
// Otherwise it records all of them, classifying the reports without a policy id.
func (c *Collector) RecordBatch(reports []Report) (BatchResult, error) {
	set := c.policies.Load()
	if err := c.validateBatch(set, reports); err != nil {
		return BatchResult{}, err
	}
	return c.recordValidated(set, reports, nil)
}

// RecordBatchDurably validates a batch as RecordBatch does, then hands its deltas to persist:
// the sums per policy (the unclassified traffic under policy 0) and per path, and records the
// batch in the live counters only if persist succeeds. An error of persist is returned as it
// is, with nothing recorded: the batch must not be acknowledged.
func (c *Collector) RecordBatchDurably(reports []Report, persist func([]spool.Delta) error) (BatchResult, error) {
	set := c.policies.Load()
	if err := c.validateBatch(set, reports); err != nil {
		return BatchResult{}, err
	}
	return c.recordValidated(set, reports, persist)
}

// recordValidated classifies and records a validated batch; with persist, it first hands the
// batch's per-policy deltas to it.
func (c *Collector) recordValidated(set *policySet, reports []Report, persist func([]spool.Delta) error) (BatchResult, error) {
	res := BatchResult{Accepted: len(reports)}
	now := c.nanos()
	if persist == nil { // classify and record in one pass
		for i := range reports {
			r := &reports[i]
			c.record(c.classifyReport(set, r, &res), &r.Flow, r.Packets, r.Bytes, now)
		}
		c.recordPaths(reports)
		c.countBatch(len(reports), res.Unclassified)
		return res, nil
	}
	ids := make([]int64, len(reports))
	for i := range reports {
		ids[i] = c.classifyReport(set, &reports[i], &res)
	}
	if err := persist(append(batchDeltas(reports, ids), pathDeltas(reports)...)); err != nil {
		return BatchResult{}, err
	}
	for i := range reports {
		r := &reports[i]
		c.record(ids[i], &r.Flow, r.Packets, r.Bytes, now)
	}
	c.recordPaths(reports)
	c.countBatch(len(reports), res.Unclassified)
	return res, nil
}

// classifyReport returns the policy a report counts against, counting it in res.
func (c *Collector) classifyReport(set *policySet, r *Report, res *BatchResult) int64 {
	switch {
	case r.PolicyID != nil:
		return *r.PolicyID
	default:
		if matched, ok := set.cls.classify(&r.Flow); ok {
			res.Classified++
			return matched
		}
		res.Unclassified++
		return Unclassified
	}
}

// countBatch counts a recorded batch for the ingest metrics.
func (c *Collector) countBatch(reports, unclassified int) {
	c.unclassifiedRecords.Add(uint64(unclassified))
	c.batches.Add(1)
	c.records.Add(uint64(reports))
}

// batchDeltas sums a batch's reports per policy, the unclassified ones under policy 0,
// saturating, in order of first appearance. Batches usually name few policies, so a linear
// scan of the sums beats a map.
func batchDeltas(reports []Report, ids []int64) []spool.Delta {
	var out []spool.Delta
	var index map[int64]int
	for i := range reports {
		id := ids[i]
		j := -1
		if index != nil {
			if k, ok := index[id]; ok {
				j = k
			}
		} else {
			for k := range out {
				if out[k].PolicyID == id {
					j = k
					break
				}
			}
		}
		if j < 0 {
			j = len(out)
			out = append(out, spool.Delta{PolicyID: id})
			if index == nil && len(out) > 16 {
				index = make(map[int64]int, 64)
				for k := range out {
					index[out[k].PolicyID] = k
				}
			} else if index != nil {
				index[id] = j
			}
		}
		out[j].Packets = addInt64Sat(out[j].Packets, int64Sat(reports[i].Packets))
		out[j].Bytes = addInt64Sat(out[j].Bytes, int64Sat(reports[i].Bytes))
	}
	return out
}

// validateBatch checks what DecodeBatch cannot: policy ids against the policies, and that
// reports built in code carry both addresses.
func (c *Collector) validateBatch(set *policySet, reports []Report) error {
	if errs := c.checkIDs(set, reports); len(errs) > 0 {
		c.rejected.Add(1)
		return errs
	}
	for i := range reports {
		r := &reports[i]
		if !r.Flow.SrcIP.IsValid() {
			c.rejected.Add(1)
			return &ValidationError{Index: i, Field: fieldPath(i, "flow.src_ip"), Message: "is required"}
		}
		if !r.Flow.DstIP.IsValid() {
			c.rejected.Add(1)
			return &ValidationError{Index: i, Field: fieldPath(i, "flow.dst_ip"), Message: "is required"}
		}
	}
	return nil
}

// ObserveRejected counts a batch rejected before it reached RecordBatch (for example by
// DecodeBatch), for the patronus_ingest_rejected_total metric. RecordBatch counts its own.
func (c *Collector) ObserveRejected() {
	c.rejected.Add(1)
}

// Run sweeps idle flows every SweepInterval until ctx is done, logging how many it removed.
// With the real clock it also keeps the cached clock of the record path fresh. Call it once.
func (c *Collector) Run(ctx context.Context) {
	var wg sync.WaitGroup
	if c.realClock {
		c.coarse.Store(time.Now().UnixNano())
		c.ticking.Store(true)
		wg.Go(func() {
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					c.coarse.Store(now.UnixNano())
				}
			}
		})
	}
	defer func() {
		wg.Wait()
		c.ticking.Store(false)
	}()
	t := time.NewTicker(c.sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			removed := c.SweepIdle()
			level := slog.LevelDebug
			if removed > 0 {
				level = slog.LevelInfo
			}
			c.log.Log(ctx, level, "expired idle flows", "removed", removed,
				"tracked", c.tracked.Load(), "idle_timeout", c.idleTimeout)
		}
	}
}
