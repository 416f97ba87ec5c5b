package collector

import (
	"cmp"
	"fmt"
	"slices"
	"sync"

	"github.com/patronus-sdwan/patronus/spool"
	"github.com/patronus-sdwan/patronus/storage/history"
)

// pathCounters is the per-path side of the collector: which path ids reports may name, and
// each path's traffic not yet taken for history. Paths are their own series, beside the
// policies', so a report counts once against its policy and once against its path, and the
// two never multiply into policy-by-path series.
type pathCounters struct {
	mu      sync.Mutex
	known   map[int64]struct{}
	pending map[int64]*spool.Delta // untaken packets and bytes per path
}

func newPathCounters() pathCounters {
	return pathCounters{known: map[int64]struct{}{}, pending: map[int64]*spool.Delta{}}
}

// SetPaths replaces the paths that reports may name. Traffic of paths no longer present
// that TakeDeltas has not taken yet is still returned by it: history loses nothing.
func (c *Collector) SetPaths(ids []int64) error {
	known := make(map[int64]struct{}, len(ids))
	for _, id := range ids {
		if id <= 0 {
			return fmt.Errorf("set paths: path id %d is not positive", id)
		}
		known[id] = struct{}{}
	}
	c.paths.mu.Lock()
	c.paths.known = known
	c.paths.mu.Unlock()
	return nil
}

// KnowsPath says whether reports may name the path with this id.
func (c *Collector) KnowsPath(id int64) bool {
	c.paths.mu.Lock()
	defer c.paths.mu.Unlock()
	_, ok := c.paths.known[id]
	return ok
}

// checkPaths returns the reports' unknown path ids, at most limit of them.
func (c *Collector) checkPaths(reports []Report, limit int) ValidationErrors {
	var errs ValidationErrors
	c.paths.mu.Lock()
	defer c.paths.mu.Unlock()
	for i := range reports {
		if len(errs) >= limit {
			break
		}
		if id := reports[i].PathID; id != 0 {
			if _, ok := c.paths.known[id]; !ok {
				errs = append(errs, &ValidationError{Index: i, Field: fieldPath(i, "path_id"),
					Message: fmt.Sprintf("unknown path %d", id)})
			}
		}
	}
	return errs
}

// recordPaths counts the reports that name a path against it, under one lock per batch.
func (c *Collector) recordPaths(reports []Report) {
	locked := false
	for i := range reports {
		r := &reports[i]
		if r.PathID == 0 {
			continue
		}
		if !locked {
			c.paths.mu.Lock()
			defer c.paths.mu.Unlock()
			locked = true
		}
		d := c.paths.pending[r.PathID]
		if d == nil {
			d = &spool.Delta{PathID: r.PathID}
			c.paths.pending[r.PathID] = d
		}
		d.Packets = addInt64Sat(d.Packets, int64Sat(r.Packets))
		d.Bytes = addInt64Sat(d.Bytes, int64Sat(r.Bytes))
	}
}

// takePathDeltas returns the untaken traffic of every path, by path id, and forgets it.
func (c *Collector) takePathDeltas() []history.PolicyDelta {
	c.paths.mu.Lock()
	pending := c.paths.pending
	if len(pending) == 0 {
		c.paths.mu.Unlock()
		return nil
	}
	c.paths.pending = make(map[int64]*spool.Delta, len(pending))
	c.paths.mu.Unlock()
	out := make([]history.PolicyDelta, 0, len(pending))
	for id, d := range pending {
		if d.Packets != 0 || d.Bytes != 0 {
			out = append(out, history.PolicyDelta{PathID: id, Packets: d.Packets, Bytes: d.Bytes})
		}
	}
	slices.SortFunc(out, func(a, b history.PolicyDelta) int { return cmp.Compare(a.PathID, b.PathID) })
	return out
}

// pathDeltas sums a batch's reports per path, in order of first appearance; nil when no
// report names a path.
func pathDeltas(reports []Report) []spool.Delta {
	var out []spool.Delta
	var index map[int64]int
	for i := range reports {
		r := &reports[i]
		if r.PathID == 0 {
			continue
		}
		if index == nil {
			index = make(map[int64]int)
		}
		j, ok := index[r.PathID]
		if !ok {
			j = len(out)
			index[r.PathID] = j
			out = append(out, spool.Delta{PathID: r.PathID})
		}
		out[j].Packets = addInt64Sat(out[j].Packets, int64Sat(r.Packets))
		out[j].Bytes = addInt64Sat(out[j].Bytes, int64Sat(r.Bytes))
	}
	return out
}
