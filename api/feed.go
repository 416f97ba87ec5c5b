package api

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/patronus-sdwan/patronus/api/events"
	"github.com/patronus-sdwan/patronus/cache"
	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/spool"
	"github.com/patronus-sdwan/patronus/storage"
)

// applyWait bounds how long a write waits for its own change to be applied locally before
// answering; the change stands either way.
const applyWait = 10 * time.Second

// feedRecheckInterval rate-limits the feed reads ingest makes before refusing an unknown
// policy.
const feedRecheckInterval = 100 * time.Millisecond

// maxBackfill is the most changes an SSE resume reads from the feed; further behind is a reset.
const maxBackfill = 10_000

// record appends the change of a write to the feed inside the write's transaction, as the
// request's principal, and returns its seq.
func (s *Server) record(ctx context.Context, tx *storage.Store, c *gin.Context, kind, resourceID string,
	details map[string]any, effects storage.Effects) (int64, error) {
	ch := storage.Change{Kind: kind, Actor: principalOf(c).Name, ResourceID: resourceID, Details: details, Effects: effects}
	if err := tx.Changes().Record(ctx, &ch); err != nil {
		return 0, err
	}
	return ch.Seq, nil
}

// applied waits until this replica's tailer has applied the change (so the writer reads its
// own write: classifier, caches, events); the change stands whatever happens here.
func (s *Server) applied(c *gin.Context, seq int64) {
	ctx, cancel := context.WithTimeout(afterCommit(c), applyWait)
	defer cancel()
	if err := s.tailer.WaitApplied(ctx, seq); err != nil {
		loggerFrom(c).Warn("change not applied locally in time", "seq", seq, "err", err, "request_id", requestID(c))
	}
}

// StartFeed positions the tailer at the feed's head, loads the state derived from the feed
// (policies), and starts tailing. New calls it when the database is there; a server built
// while it was not (Config.DatabaseReady) is started by its caller once it is. A second call
// does nothing.
func (s *Server) StartFeed() error {
	s.feedMu.Lock()
	defer s.feedMu.Unlock()
	if s.stopFeed != nil {
		return nil
	}
	tailer := storage.NewTailer(storage.TailerConfig{
		Store: s.store, DB: s.cfg.DB, PollInterval: s.cfg.FeedPollInterval, NoNotify: s.cfg.FeedNoNotify,
		Apply: s.applyChange, Reset: s.resetFromFeed, Logger: s.log,
	})
	ctx, cancel := context.WithCancel(context.Background())
	head, err := tailer.Head(ctx)
	if err != nil {
		cancel()
		return err
	}
	s.tailer = tailer
	s.store.OnCommit(func(int64) { tailer.Wake() })
	s.cfg.Events.SetLastID(uint64(head))
	s.cfg.Events.SetBackfill(s.backfill)
	if err := s.ReloadPolicies(ctx); err != nil {
		cancel()
		return err
	}
	s.stopFeed = cancel
	s.feedDone = make(chan struct{})
	go func() {
		defer close(s.feedDone)
		tailer.Run(ctx)
	}()
	return nil
}

// Close stops tailing the change feed (the server answers nothing that waits on it after)
// and writes the token uses still waiting for their last_used_at.
func (s *Server) Close() {
	s.auth.uses.close() // the last token uses are written before the database closes
	s.feedMu.Lock()
	defer s.feedMu.Unlock()
	if s.stopFeed != nil {
		s.stopFeed()
		<-s.feedDone
	}
}

// Tailer is the server's change-feed tailer (for its applied seq and tests).
func (s *Server) Tailer() *storage.Tailer { return s.tailer }

// applyChange applies one change of the feed to this replica's state, whichever replica made
// it: classifier, caches, token cache, counters, then the SSE clients.
func (s *Server) applyChange(ctx context.Context, ch storage.Change) {
	e := ch.Effects
	switch ch.Kind {
	case storage.KindPolicyCreated, storage.KindPolicyUpdated, storage.KindPolicyDeleted:
		s.policiesChanged(ctx)
	case storage.KindPathCreated:
		s.routesChanged() // the new path may beat the one a cached decision chose
		s.pathsChanged(ctx)
	case storage.KindPathUpdated, storage.KindPathMetricsReplaced:
		s.invalidatePaths(e.PathIDs)
	case storage.KindPathDeleted, storage.KindEndpointDeleted, storage.KindSiteDeleted:
		s.invalidatePaths(e.PathIDs)
		if len(e.PolicyIDs) > 0 {
			s.policiesChanged(ctx) // reloads the paths too
		} else if len(e.PathIDs) > 0 {
			s.pathsChanged(ctx)
		}
	case storage.KindTokenRevoked:
		if e.TokenHash != "" {
			s.auth.forgetHash(e.TokenHash)
		} else {
			s.auth.forget()
		}
	case storage.KindStatsReset:
		var policyID int64 // 0: every policy
		if len(e.PolicyIDs) == 1 {
			policyID = e.PolicyIDs[0]
		}
		s.applyStatsReset(policyID, ch.Seq)
	case storage.KindCacheCleared:
		if s.cfg.Caches != nil { // the writer cleared them already, to count; clearing again is harmless
			for _, name := range e.Caches {
				s.cfg.Caches.Clear(name)
			}
		}
	}
	s.emit(changeEvents(ch)...)
}

// policiesChanged recompiles the classifier and drops the routing decisions policies made.
func (s *Server) policiesChanged(ctx context.Context) {
	s.routesChanged()
	if err := s.ReloadPolicies(ctx); err != nil {
		s.log.Error("reload policies into the collector", "err", err)
	}
}

// pathsChanged reloads the path ids traffic reports are checked against.
func (s *Server) pathsChanged(ctx context.Context) {
	if err := s.ReloadPaths(ctx); err != nil {
		s.log.Error("reload paths into the collector", "err", err)
	}
}

// resetFromFeed rebuilds what this replica derives from the feed after it fell behind the
// retained changes: policies, caches, tokens, and tells SSE clients to reload.
func (s *Server) resetFromFeed(ctx context.Context, head int64) {
	s.policiesChanged(ctx)
	if s.cfg.Caches != nil {
		for _, name := range cache.Names() {
			s.cfg.Caches.Clear(name)
		}
	}
	s.auth.forget()
	s.emit(events.NewEvent(uint64(head), events.TypeReset, time.Now(), map[string]any{
		"reason": "this replica missed changes no longer kept; reload state",
	}, false))
}

// emit publishes the events of one change to the configured sink (tests) or the broker.
func (s *Server) emit(evs ...events.Event) {
	if s.cfg.Publish != nil {
		for _, ev := range evs {
			s.cfg.Publish(ev.Type, ev.Data)
		}
		return
	}
	s.cfg.Events.PublishAt(evs...)
}

// changeEvents are the SSE events of a change, all with its seq as id: the events it carries,
// then one path.deleted per removed path for deletions.
func changeEvents(ch storage.Change) []events.Event {
	type typed struct {
		typ  string
		data map[string]any
	}
	var list []typed
	for _, ev := range ch.Effects.Events {
		data := maps.Clone(ev.Data)
		if data == nil {
			data = map[string]any{}
		}
		data["audit_id"] = ch.Seq
		list = append(list, typed{ev.Type, data})
	}
	switch ch.Kind {
	case storage.KindPathDeleted, storage.KindEndpointDeleted, storage.KindSiteDeleted:
		for _, id := range ch.Effects.PathIDs {
			data := map[string]any{"path_id": id, "audit_id": ch.Seq}
			if ch.Kind == storage.KindSiteDeleted {
				data["site_id"] = ch.ResourceID
			}
			list = append(list, typed{eventPathDeleted, data})
		}
	}
	out := make([]events.Event, len(list))
	for i, t := range list {
		out[i] = events.NewEvent(uint64(ch.Seq), t.typ, ch.Time, t.data, i < len(list)-1)
	}
	return out
}

// backfill reads the events of the changes in (after, upto] from the feed for a client that
// resumes with an id the broker no longer (or never, on this replica) buffered.
func (s *Server) backfill(ctx context.Context, after, upto uint64) ([]events.Event, bool, error) {
	head, pruned, err := s.store.Changes().Head(ctx)
	if err != nil {
		return nil, false, err
	}
	if int64(after) > head || int64(after) < pruned {
		return nil, true, nil
	}
	var out []events.Event
	last := int64(after)
	for n := 0; last < int64(upto); {
		batch, err := s.store.Changes().After(ctx, last, 500)
		if err != nil {
			return nil, false, err
		}
		if len(batch) == 0 {
			break
		}
		for _, ch := range batch {
			if ch.Seq > int64(upto) {
				return out, false, nil
			}
			out = append(out, changeEvents(ch)...)
			last = ch.Seq
		}
		if n += len(batch); n > maxBackfill {
			return nil, true, nil
		}
	}
	return out, false, nil
}

// recordTraffic records a checked batch (see checkReports): through the spool when there is
// one, so that it is on disk before it is acknowledged.
func (s *Server) recordTraffic(ctx context.Context, reports []collector.Report) (collector.BatchResult, error) {
	if s.cfg.Spool == nil {
		return s.cfg.Collector.RecordBatch(reports)
	}
	return s.cfg.Collector.RecordBatchDurably(reports, func(deltas []spool.Delta) error {
		if err := s.cfg.Spool.Append(ctx, deltas); err != nil {
			return fmt.Errorf("%w: traffic spool: %w", errUnavailable, err)
		}
		return nil
	})
}

// checkReports names the reports whose policy or path id this replica does not know. Before
// it refuses any, it reads the feed once more (rate-limited), so a policy or path just created
// through another replica is never refused.
func (s *Server) checkReports(ctx context.Context, reports []collector.Report) collector.ValidationErrors {
	arrived := time.Now()
	errs := s.cfg.Collector.CheckBatch(reports)
	if len(errs) == 0 {
		return nil
	}
	s.recheckFeed(ctx, arrived)
	return s.cfg.Collector.CheckBatch(reports)
}

// recheckFeed makes sure a read of the feed that started after arrived has completed. Callers
// waiting meanwhile share the next read, and reads are at least feedRecheckInterval apart.
func (s *Server) recheckFeed(ctx context.Context, arrived time.Time) {
	s.recheckMu.Lock()
	defer s.recheckMu.Unlock()
	if s.lastRecheck.After(arrived) {
		return
	}
	if wait := feedRecheckInterval - time.Since(s.lastRecheck); wait > 0 {
		time.Sleep(wait)
	}
	s.lastRecheck = time.Now()
	s.feedMu.Lock()
	tailer := s.tailer
	s.feedMu.Unlock()
	if tailer == nil { // the database is not there yet
		return
	}
	if err := tailer.CatchUp(ctx); err != nil {
		s.log.Warn("read the change feed before refusing an unknown policy or path", "err", err)
	}
}
