// Package history keeps per-policy and per-path traffic history: the collector's flush loop
// writes deltas to it, and the API and dashboards read windowed sums back. InfluxHistory and
// SQLHistory are its two stores, with the same semantics, checked by one shared test suite.
// The interfaces over them are declared by their consumers (collector.HistoryWriter,
// api.HistoryReader); this package declares none of its own beyond what it needs inside.
//
// Writes: WriteDeltas stores one point per delta, in the path series for deltas with a PathID
// and in the policy series otherwise. Writing the same deltas again (same policy, instance and
// time) replaces the points instead of adding to them, so a retried batch cannot double count.
// A failure is a *WriteError that says whether a retry can succeed (AsWriteError).
//
// Query semantics, the same on every store:
//   - Only points with from <= time < to count.
//   - Windows are [k*every, (k+1)*every) for integer k, aligned to the Unix epoch; a window's
//     point carries its start time. Every window that overlaps [from, to) is returned, in time
//     order, those without data as zeros; the first one may start before from (it then only
//     counts points from from on).
//   - Packets and Bytes of a window are the sums of every point in it, over all instances.
//   - ActiveFlows of a window is, for each instance, the largest active_flows gauge that
//     instance reported in the window, summed over the instances.
//
// The reads of every store:
//   - QueryPolicy returns the windows of one policy's history over [from, to); policy id 0
//     (UnclassifiedPolicyID) is the unclassified traffic.
//   - QueryTop returns the windows of every policy with points in [from, to), or with top > 0
//     of the top policies by bytes in the range, ordered by bytes (most first), then policy id.
//   - QueryIntervals returns, per policy (the given ones, all for none), the bytes of each
//     epoch-aligned interval of [from, to) with traffic, summed over instances: with the
//     flush interval, one sample per flush, the base of peak rates and percentiles. Points
//     count from from on, like the windows of QueryPolicy.
//   - QueryTotal returns the windows of all policies together over [from, to): packets and
//     bytes summed over every policy and instance, ActiveFlows left 0; and, when interval is
//     not 0, the per-interval bytes of all policies together, as QueryIntervals.
//   - Tier names the tier the queries over [from, to) at every read (TierRaw, Tier1m or
//     Tier1h; see TierConfig): the coarsest rollup whose buckets divide every and that still
//     holds from, raw without tiers.
//   - QueryPath and QueryPathIntervals are QueryPolicy and QueryIntervals for a path's series.
//   - Ping checks that the store answers and accepts this client's credentials; Close
//     releases what the store holds open.
package history
