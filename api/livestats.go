package api

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/storage"
)

// defaultLiveInterval is how often live counters are written when Config.LiveInterval is 0.
const defaultLiveInterval = 10 * time.Second

// liveStaleIntervals is how many snapshot intervals a replica may go unheard before cluster
// totals leave it out.
const liveStaleIntervals = 3

// liveState is this replica's side of the cluster-wide live counters.
type liveState struct {
	// mu is held across reading the counters for a snapshot and across applying a reset, so a
	// snapshot's counters and its resetSeq always belong together.
	mu       sync.Mutex
	resetSeq int64
	// written is the policy rows as last written; nil makes the next snapshot a full one.
	written map[int64]storage.LivePolicy
}

// clustered reports whether live counters are shared: a named replica on PostgreSQL. SQLite
// is one embedded process, whose counters are the cluster's.
func (s *Server) clustered() bool {
	return s.cfg.Instance != "" && s.cfg.Collector != nil && s.cfg.DB.Dialect == storage.DialectPostgres
}

func (s *Server) liveInterval() time.Duration {
	if s.cfg.LiveInterval > 0 {
		return s.cfg.LiveInterval
	}
	return defaultLiveInterval
}

// applyStatsReset zeroes the local counters of policyID (0: every policy) for the reset
// numbered seq, the change that recorded it (see storage.LiveStatsStore.Reset). Snapshots
// written from then on say they reflect seq. The feed's reset applier calls it.
func (s *Server) applyStatsReset(policyID, seq int64) {
	if s.cfg.Collector == nil {
		return
	}
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	if policyID == 0 {
		s.cfg.Collector.ResetAll()
	} else {
		s.cfg.Collector.ResetPolicy(policyID)
	}
	if seq > s.live.resetSeq {
		s.live.resetSeq = seq
		s.live.written = nil
	}
}

// RunLiveSnapshots writes this replica's live counters to the database every LiveInterval
// until ctx ends, then removes them (a stopped replica's live counters end with it). It does
// nothing unless the counters are shared (see Config.Instance).
func (s *Server) RunLiveSnapshots(ctx context.Context) {
	if !s.clustered() {
		return
	}
	ticker := time.NewTicker(s.liveInterval())
	defer ticker.Stop()
	for {
		if err := s.writeLiveSnapshot(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("write live stats snapshot", "err", err)
		}
		select {
		case <-ctx.Done():
			forgetCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := s.store.LiveStats().Forget(forgetCtx, s.cfg.Instance); err != nil {
				s.log.Warn("remove live stats snapshot", "err", err)
			}
			cancel()
			return
		case <-ticker.C:
		}
	}
}

func liveRow(st collector.PolicyStats) storage.LivePolicy {
	row := storage.LivePolicy{PolicyID: st.PolicyID, Packets: counterOut(st.PacketsMatched),
		Bytes: counterOut(st.BytesMatched), ActiveFlows: st.ActiveFlows}
	if !st.LastSeen.IsZero() {
		last := st.LastSeen.UTC()
		row.LastSeen = &last
	}
	return row
}

func sameLiveRow(a, b storage.LivePolicy) bool {
	if a.Packets != b.Packets || a.Bytes != b.Bytes || a.ActiveFlows != b.ActiveFlows || (a.LastSeen == nil) != (b.LastSeen == nil) {
		return false
	}
	return a.LastSeen == nil || a.LastSeen.Equal(*b.LastSeen)
}

// writeLiveSnapshot writes the totals and the policy rows that changed since the last write;
// policies with no traffic since their reset have no row.
func (s *Server) writeLiveSnapshot(ctx context.Context) error {
	s.live.mu.Lock()
	t := s.cfg.Collector.Totals()
	all := s.cfg.Collector.AllPolicyStats()
	seq, prev := s.live.resetSeq, s.live.written
	s.live.mu.Unlock()

	cur := make(map[int64]storage.LivePolicy, len(all))
	for _, st := range all {
		if st.PacketsMatched > 0 || st.BytesMatched > 0 || st.ActiveFlows > 0 {
			cur[st.PolicyID] = liveRow(st)
		}
	}
	snap := storage.LiveSnapshot{Full: prev == nil, Totals: storage.LiveTotals{
		Instance: s.cfg.Instance, Packets: counterOut(t.Packets), Bytes: counterOut(t.Bytes), ActiveFlows: t.ActiveFlows,
		UnclassifiedPackets: counterOut(t.UnclassifiedPackets), UnclassifiedBytes: counterOut(t.UnclassifiedBytes),
		UnclassifiedReports: counterOut(t.UnclassifiedReports), TrackedFlows: t.TrackedFlows,
		FlowOverflow: counterOut(t.FlowOverflow), FlowsExpired: counterOut(t.FlowsExpired), ResetSeq: seq,
	}}
	for id, row := range cur {
		if old, ok := prev[id]; !ok || !sameLiveRow(old, row) {
			snap.Policies = append(snap.Policies, row)
		}
	}
	for id := range prev {
		if _, ok := cur[id]; !ok {
			snap.Removed = append(snap.Removed, id)
		}
	}
	err := s.store.LiveStats().Write(ctx, snap)
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	if err != nil || s.live.resetSeq != seq {
		s.live.written = nil // write everything next time
	} else {
		s.live.written = cur
	}
	return err
}

// liveOthers is what the other replicas contribute to cluster totals.
type liveOthers struct {
	// live are the other replicas heard from within liveStaleIntervals, by instance.
	live map[string]storage.LiveTotals
	// stale are the replicas left out for silence.
	stale   []apigen.LeftOutInstance
	resets  storage.LiveResets
	readAt  time.Time
	enabled bool
}

// others reads the other replicas' snapshots; nothing unless scope is cluster and counters
// are shared.
func (s *Server) others(ctx context.Context, scope apigen.LiveScope) (liveOthers, error) {
	if scope == apigen.LiveScopeLocal || !s.clustered() {
		return liveOthers{}, nil
	}
	cl, err := s.store.LiveStats().Cluster(ctx)
	if err != nil {
		return liveOthers{}, err
	}
	out := liveOthers{live: map[string]storage.LiveTotals{}, resets: cl.Resets, readAt: cl.Now, enabled: true}
	staleAfter := liveStaleIntervals * s.liveInterval()
	for _, t := range cl.Totals {
		switch {
		case t.Instance == s.cfg.Instance:
		case cl.Now.Sub(t.UpdatedAt) > staleAfter:
			out.stale = append(out.stale, apigen.LeftOutInstance{Instance: t.Instance, Reason: apigen.LeftOutInstanceReasonStale, UpdatedAt: t.UpdatedAt})
		default:
			out.live[t.Instance] = t
		}
	}
	return out, nil
}

func scopeOf(o liveOthers) apigen.LiveScope {
	if o.enabled {
		return apigen.LiveScopeCluster
	}
	return apigen.LiveScopeLocal
}

func (s *Server) instanceName() string {
	if s.cfg.Instance != "" {
		return s.cfg.Instance
	}
	return "local"
}

// clusterTotals answers the live totals of scope: this replica's counters plus, for the
// cluster scope, every other live replica's latest snapshot that reflects the newest reset.
// A stats reset uses it for its audit record's "before".
func (s *Server) clusterTotals(ctx context.Context, scope apigen.LiveScope) (apigen.GlobalStats, error) {
	var t collector.Totals
	if s.cfg.Collector != nil {
		t = s.cfg.Collector.Totals()
	}
	now := time.Now().UTC()
	o, err := s.others(ctx, scope)
	if err != nil {
		return apigen.GlobalStats{}, err
	}
	if o.enabled {
		now = o.readAt
	}
	out := apigen.GlobalStats{Scope: scopeOf(o), LeftOut: append([]apigen.LeftOutInstance{}, o.stale...),
		Instances: []apigen.InstanceStats{{
			Instance: s.instanceName(), Local: true, UpdatedAt: now,
			Packets: counterOut(t.Packets), Bytes: counterOut(t.Bytes), ActiveFlows: t.ActiveFlows,
			UnclassifiedPackets: counterOut(t.UnclassifiedPackets), UnclassifiedBytes: counterOut(t.UnclassifiedBytes),
			UnclassifiedReports: counterOut(t.UnclassifiedReports), TrackedFlows: t.TrackedFlows,
			FlowOverflow: counterOut(t.FlowOverflow), FlowsExpired: counterOut(t.FlowsExpired),
		}}}
	for _, name := range slices.Sorted(maps.Keys(o.live)) {
		r := o.live[name]
		if r.ResetSeq < o.resets.NewestAny() {
			out.LeftOut = append(out.LeftOut, apigen.LeftOutInstance{Instance: r.Instance, Reason: apigen.LeftOutInstanceReasonResetPending, UpdatedAt: r.UpdatedAt})
			continue
		}
		out.Instances = append(out.Instances, apigen.InstanceStats{
			Instance: r.Instance, UpdatedAt: r.UpdatedAt, Packets: r.Packets, Bytes: r.Bytes, ActiveFlows: r.ActiveFlows,
			UnclassifiedPackets: r.UnclassifiedPackets, UnclassifiedBytes: r.UnclassifiedBytes,
			UnclassifiedReports: r.UnclassifiedReports, TrackedFlows: r.TrackedFlows,
			FlowOverflow: r.FlowOverflow, FlowsExpired: r.FlowsExpired,
		})
	}
	for _, in := range out.Instances {
		out.Packets = satAdd(out.Packets, in.Packets)
		out.Bytes = satAdd(out.Bytes, in.Bytes)
		out.ActiveFlows += in.ActiveFlows
		out.UnclassifiedPackets = satAdd(out.UnclassifiedPackets, in.UnclassifiedPackets)
		out.UnclassifiedBytes = satAdd(out.UnclassifiedBytes, in.UnclassifiedBytes)
		out.UnclassifiedReports = satAdd(out.UnclassifiedReports, in.UnclassifiedReports)
		out.TrackedFlows += in.TrackedFlows
		out.FlowOverflow = satAdd(out.FlowOverflow, in.FlowOverflow)
		out.FlowsExpired = satAdd(out.FlowsExpired, in.FlowsExpired)
	}
	return out, nil
}

// clusterPolicyStats answers the live counters of policies in scope, as clusterTotals does,
// by policy id; a policy with no traffic anywhere has zero counters. A reset of one policy
// uses it for its audit record's "before".
func (s *Server) clusterPolicyStats(ctx context.Context, ids []int64, scope apigen.LiveScope) (map[int64]apigen.PolicyStats, error) {
	o, err := s.others(ctx, scope)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	if o.enabled {
		now = o.readAt
	}
	out := make(map[int64]apigen.PolicyStats, len(ids))
	for _, id := range ids {
		st := s.policyStats(id)
		local := apigen.InstancePolicyStats{Instance: s.instanceName(), Local: true, UpdatedAt: now,
			PacketsMatched: counterOut(st.PacketsMatched), BytesMatched: counterOut(st.BytesMatched), ActiveFlows: st.ActiveFlows}
		if !st.LastSeen.IsZero() {
			last := st.LastSeen
			local.LastSeen = &last
		}
		out[id] = apigen.PolicyStats{PolicyID: id, Scope: scopeOf(o), Instances: []apigen.InstancePolicyStats{local},
			LeftOut: append([]apigen.LeftOutInstance{}, o.stale...)}
	}
	if o.enabled && len(o.live) > 0 {
		rows, err := s.store.LiveStats().Policies(ctx, ids)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			inst, ok := o.live[r.Instance]
			ps, want := out[r.PolicyID]
			if !ok || !want {
				continue
			}
			if r.ResetSeq < o.resets.Newest(r.PolicyID) {
				ps.LeftOut = append(ps.LeftOut, apigen.LeftOutInstance{Instance: r.Instance, Reason: apigen.LeftOutInstanceReasonResetPending, UpdatedAt: inst.UpdatedAt})
			} else {
				ps.Instances = append(ps.Instances, apigen.InstancePolicyStats{Instance: r.Instance, UpdatedAt: inst.UpdatedAt,
					PacketsMatched: r.Packets, BytesMatched: r.Bytes, ActiveFlows: r.ActiveFlows, LastSeen: r.LastSeen})
			}
			out[r.PolicyID] = ps
		}
	}
	for id, ps := range out {
		for _, in := range ps.Instances {
			ps.PacketsMatched = satAdd(ps.PacketsMatched, in.PacketsMatched)
			ps.BytesMatched = satAdd(ps.BytesMatched, in.BytesMatched)
			ps.ActiveFlows += in.ActiveFlows
			if in.LastSeen != nil && (ps.LastSeen == nil || in.LastSeen.After(*ps.LastSeen)) {
				ps.LastSeen = in.LastSeen
			}
		}
		out[id] = ps
	}
	return out, nil
}

// satAdd adds counters, saturating at the int64 maximum as counterOut does.
func satAdd(a, b int64) int64 {
	if s := a + b; s >= a {
		return s
	}
	return int64(^uint64(0) >> 1)
}

// scopeParam is the scope a stats request asks for; cluster by default.
func scopeParam(scope *apigen.LiveScope) apigen.LiveScope {
	if scope == nil {
		return apigen.LiveScopeCluster
	}
	return *scope
}

// withLive puts a policy's cluster-wide live counters into its API form.
func withLive(out apigen.Policy, ps apigen.PolicyStats) apigen.Policy {
	out.PacketsMatched, out.BytesMatched, out.ActiveFlows, out.LastSeen = ps.PacketsMatched, ps.BytesMatched, ps.ActiveFlows, ps.LastSeen
	return out
}

// liveOrLocal answers the cluster-wide numbers of read, or, when the other replicas' snapshots
// cannot be read (the database is down), this replica's alone: the response's scope says
// local, and live counters stay readable through a database outage.
func liveOrLocal[T any](c context.Context, s *Server, scope apigen.LiveScope, read func(apigen.LiveScope) (T, error)) (T, error) {
	out, err := read(scope)
	if err == nil || scope == apigen.LiveScopeLocal {
		return out, err
	}
	s.log.Warn("other replicas' live counters unreadable; answering this replica's", "err", err)
	return read(apigen.LiveScopeLocal)
}
