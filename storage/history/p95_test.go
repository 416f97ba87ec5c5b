package history_test

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage/history"
)

// TestHistoryP95MatchesDenseNearestRank checks the sparse percentile (intervals without
// traffic are not read) against the definition applied to every interval, zeros included,
// for random traffic of random density.
func TestHistoryP95MatchesDenseNearestRank(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 95))
	const iv = 10 * time.Second
	for round := range 500 {
		n := 1 + rng.IntN(300)
		from := base
		to := base.Add(time.Duration(n) * iv)
		dense := make([]float64, n)
		var sparse []history.IntervalBytes
		for k := range n {
			if rng.IntN(100) < 60 {
				bytes := int64(1 + rng.IntN(5000))
				dense[k] = float64(bytes) * 8 / iv.Seconds()
				sparse = append(sparse, history.IntervalBytes{Time: from.Add(time.Duration(k) * iv), Bytes: bytes})
			}
		}
		rng.Shuffle(len(sparse), func(i, j int) { sparse[i], sparse[j] = sparse[j], sparse[i] })
		_, sum := history.HistoryRates(nil, sparse, from, to, time.Minute, iv)
		slices.Sort(dense)
		rank := (95*n + 99) / 100
		if want := dense[rank-1]; sum.P95BPS != want || sum.MaxBPS != dense[n-1] || sum.Intervals != int64(n) {
			t.Fatalf("round %d, %d intervals: p95 %v max %v, want %v %v", round, n, sum.P95BPS, sum.MaxBPS, want, dense[n-1])
		}
	}
}
