// Package collector turns traffic reports from edge routers into live statistics: it
// classifies flows to routing policies, counts packets and bytes per policy and per flow,
// expires idle flows, and hands out per-policy deltas for the history store.
//
// Flows live in shards picked by a hash of the flow key. Recording to a flow already tracked
// takes no lock: the flow is found in an open-addressing index read with atomic loads and
// its atomic counters are added to, so recorders on different flows share no written cache
// line. New flows, expiry, resets and reads take the shard's mutex. A policy's counters are
// the sum of its live flows plus what removed flows and untracked traffic left behind, so
// they are exact at read time without an "update counts" step. Raw counters only grow: a
// reset moves a base and a delta flush moves a mark, so resets never change history.
//
// Classification compiles the enabled policies into per-field interval indexes that map a
// protocol, port or address to the bit set of the policies matching it; a flow's policy is
// the lowest bit of the intersection, so a lookup costs a few table lookups and ANDs instead
// of a scan of every policy.
package collector
