package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/storage/history"
)

// seriesReader reads one history series: its windows and, for peaks and percentiles, its
// per-interval bytes. The history of a policy, of a path and of the unclassified traffic
// differ only in it.
type seriesReader struct {
	// read returns the windows at every over [from, to) and, when iv > 0, the per-interval
	// bytes of intervals iv (read together, so that a rollup row is read once for both).
	read func(ctx context.Context, from, to time.Time, every, iv time.Duration) ([]history.HistoryPoint, []history.IntervalBytes, error)
	// tier is the history tier the windows are read from.
	tier func(ctx context.Context, from, to time.Time, every time.Duration) (string, error)
}

// policyReader reads policy id's series from h; id 0 is the unclassified traffic.
func policyReader(h HistoryReader, id int64) seriesReader {
	return seriesReader{
		read: func(ctx context.Context, from, to time.Time, every, iv time.Duration) ([]history.HistoryPoint, []history.IntervalBytes, error) {
			if iv == 0 {
				points, err := h.QueryPolicy(ctx, id, from, to, every)
				return points, nil, err
			}
			return h.QueryPolicyWithIntervals(ctx, id, from, to, every, iv)
		},
		tier: h.Tier,
	}
}

// PathHistoryReader is what the path history route needs of the history store; both
// history.InfluxHistory and history.SQLHistory implement it.
type PathHistoryReader interface {
	QueryPath(ctx context.Context, pathID int64, from, to time.Time, every time.Duration) ([]history.HistoryPoint, error)
	QueryPathIntervals(ctx context.Context, ids []int64, from, to time.Time, interval time.Duration) (map[int64][]history.IntervalBytes, error)
	// QueryPathWithIntervals is QueryPath and QueryPathIntervals of one path in one read.
	QueryPathWithIntervals(ctx context.Context, pathID int64, from, to time.Time, every, interval time.Duration) ([]history.HistoryPoint, []history.IntervalBytes, error)
	// PathTier is Tier of path history.
	PathTier(ctx context.Context, from, to time.Time, every time.Duration) (string, error)
}

// pathReader reads path id's series from h.
func pathReader(h PathHistoryReader, id int64) seriesReader {
	return seriesReader{
		read: func(ctx context.Context, from, to time.Time, every, iv time.Duration) ([]history.HistoryPoint, []history.IntervalBytes, error) {
			if iv == 0 {
				points, err := h.QueryPath(ctx, id, from, to, every)
				return points, nil, err
			}
			return h.QueryPathWithIntervals(ctx, id, from, to, every, iv)
		},
		tier: h.PathTier,
	}
}

// openSeriesHistory reads what every one-series history route reads first: the range, the
// answer format and the store. When ok is false the error answer is written.
func (s *Server) openSeriesHistory(c *gin.Context, from, to, every, format *string) (r historyRange, asCSV bool, store HistoryReader, ok bool) {
	var err error
	if r, err = s.historyRangeOf(from, to, every); err == nil {
		if asCSV, err = wantsCSV(c, format); err == nil {
			store, err = s.historyStore()
		}
	}
	if err != nil {
		writeError(c, err)
		return r, false, nil, false
	}
	return r, asCSV, store, true
}

// seriesAnswer is one series over a range, rated, with the preceding period when asked.
type seriesAnswer struct {
	rated    ratedSeries
	iv       time.Duration // the flush interval of peaks and percentiles, 0 for none
	tier     string        // the tier the windows were read from
	previous *apigen.HistoryPrevious
}

func (a seriesAnswer) withPeak() bool { return a.iv > 0 }

// readSeriesHistory reads a series over r and rates it, with the preceding period of equal
// length when compare; a failed read is the answer historyQueryError gives.
func (s *Server) readSeriesHistory(c *gin.Context, r historyRange, rd seriesReader, compare bool) (seriesAnswer, error) {
	ctx := c.Request.Context()
	a := seriesAnswer{iv: s.rateInterval(r)}
	read := func(r historyRange) (ratedSeries, error) {
		points, intervals, err := rd.read(ctx, r.from, r.to, r.every, a.iv)
		if err != nil {
			return ratedSeries{}, historyQueryError(c, err)
		}
		return rateSeries(r, a.iv, points, intervals), nil
	}
	var err error
	if a.rated, err = read(r); err != nil {
		return a, err
	}
	if a.tier, err = rd.tier(ctx, r.from, r.to, r.every); err != nil {
		return a, historyQueryError(c, err)
	}
	if compare {
		prev := r.previous()
		rs, err := read(prev)
		if err != nil {
			return a, err
		}
		a.previous = rs.previousOut(prev, a.withPeak())
	}
	return a, nil
}

// GetPathStatsHistory answers one path's traffic history over a range, in JSON or CSV. The
// path need not exist any more: its history outlives it until retention removes it.
func (s *Server) GetPathStatsHistory(c *gin.Context, pathID apigen.PathID, params apigen.GetPathStatsHistoryParams) {
	r, asCSV, store, ok := s.openSeriesHistory(c, params.From, params.To, params.Every, (*string)(params.Format))
	if !ok {
		return
	}
	paths, ok := store.(PathHistoryReader)
	if !ok {
		writeError(c, newError(errUnavailable, "the history store keeps no path history"))
		return
	}
	a, err := s.readSeriesHistory(c, r, pathReader(paths, pathID), params.Compare != nil && !asCSV)
	if err != nil {
		writeError(c, err)
		return
	}
	if asCSV {
		writeHistoryCSV(c, fmt.Sprintf("path-%d-history.csv", pathID), a.rated, a.withPeak())
		return
	}
	c.JSON(http.StatusOK, apigen.PathHistory{
		PathID: pathID, From: r.from, To: r.to, Every: r.everyText, Interval: intervalText(a.iv),
		Points: a.rated.pointsOut(a.withPeak()), Summary: a.rated.summaryOut(a.withPeak()), Previous: a.previous,
	})
}

// GetUnclassifiedStatsHistory answers the history of the traffic that matched no policy,
// stored as policy 0, over a range, in JSON or CSV.
func (s *Server) GetUnclassifiedStatsHistory(c *gin.Context, params apigen.GetUnclassifiedStatsHistoryParams) {
	r, asCSV, store, ok := s.openSeriesHistory(c, params.From, params.To, params.Every, (*string)(params.Format))
	if !ok {
		return
	}
	a, err := s.readSeriesHistory(c, r, policyReader(store, history.UnclassifiedPolicyID), params.Compare != nil && !asCSV)
	if err != nil {
		writeError(c, err)
		return
	}
	if asCSV {
		writeHistoryCSV(c, "unclassified-history.csv", a.rated, a.withPeak())
		return
	}
	c.JSON(http.StatusOK, apigen.UnclassifiedHistory{
		From: r.from, To: r.to, Every: r.everyText, Interval: intervalText(a.iv),
		Points: a.rated.pointsOut(a.withPeak()), Summary: a.rated.summaryOut(a.withPeak()), Previous: a.previous,
	})
}
