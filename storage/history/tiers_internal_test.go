package history

import (
	"math"
	"reflect"
	"testing"
	"time"
)

// TestRateBinErrorBound checks the documented bound of the 1-hour histogram over a wide span
// of interval sizes.
func TestRateBinErrorBound(t *testing.T) {
	for b := int64(1); b < 1<<40; b = b*1013/1000 + 1 {
		got := rateBin(b)
		if rel := math.Abs(float64(got-b)) / float64(b); rel > RateRelativeError {
			t.Fatalf("bytes %d kept as %d: relative error %.4f over %.2f", b, got, rel, RateRelativeError)
		}
		if rateBin(got) != got {
			t.Fatalf("bytes %d kept as %d, which is kept as %d: a bin's value is not in its bin", b, got, rateBin(got))
		}
	}
}

// TestTierPlanSegments checks how a range is split across tiers.
func TestTierPlanSegments(t *testing.T) {
	now := time.Date(2026, 1, 10, 12, 0, 30, 0, time.UTC)
	p, err := newTierPlan(&TierConfig{Interval: 10 * time.Second, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	rolled := func(until, until1m time.Time) func(string) (time.Time, error) {
		return func(tier string) (time.Time, error) {
			if tier == Tier1m && !until1m.IsZero() {
				return until1m, nil
			}
			return until, nil
		}
	}
	day := 24 * time.Hour
	for name, tc := range map[string]struct {
		from, to time.Time
		every    time.Duration
		until    time.Time
		until1m  time.Time // of the 1m tier when not zero; until otherwise
		tier     string
		segs     []segment
	}{
		"RawAtFlushResolution": {now.Add(-time.Hour), now, 10 * time.Second, now, time.Time{}, TierRaw, []segment{{TierRaw, now.Add(-time.Hour), now}}},
		"HourWithEdgesFrom1mAndRaw": {now.Add(-2*day - 30*time.Minute), now, time.Hour, now.Truncate(time.Hour), time.Time{}, Tier1h, []segment{
			{TierRaw, now.Add(-2*day - 30*time.Minute), now.Add(-2*day - 30*time.Minute).Truncate(time.Minute).Add(time.Minute)},
			{Tier1m, now.Add(-2*day - 30*time.Minute).Truncate(time.Minute).Add(time.Minute), now.Add(-2 * day).Truncate(time.Hour)},
			{Tier1h, now.Add(-2 * day).Truncate(time.Hour), now.Truncate(time.Hour)},
			{TierRaw, now.Truncate(time.Hour), now}}},
		"HourNotRolledUpYetFrom1m": {now.Add(-day).Truncate(time.Hour), now, time.Hour, now.Truncate(time.Hour).Add(-time.Hour), now.Truncate(time.Minute), Tier1h, []segment{
			{Tier1h, now.Add(-day).Truncate(time.Hour), now.Truncate(time.Hour).Add(-time.Hour)},
			{Tier1m, now.Truncate(time.Hour).Add(-time.Hour), now.Truncate(time.Minute)},
			{TierRaw, now.Truncate(time.Minute), now}}},
		"RawAgedOutBucketsCountWhole": {now.Add(-20 * day), now.Add(-10 * day), time.Minute, now, time.Time{}, Tier1m, []segment{
			{Tier1m, now.Add(-20 * day), now.Add(-10 * day)}}},
		"RawAgedOutHourEdgeFrom1m": {now.Add(-20*day - 30*time.Minute), now.Add(-10 * day), time.Hour, now, time.Time{}, Tier1h, []segment{
			{Tier1m, now.Add(-20*day - 30*time.Minute), now.Add(-20 * day).Truncate(time.Hour)},
			{Tier1h, now.Add(-20 * day).Truncate(time.Hour), now.Add(-10 * day).Truncate(time.Hour)},
			{Tier1m, now.Add(-10 * day).Truncate(time.Hour), now.Add(-10 * day)}}},
		"NothingRolledUpYet": {now.Add(-2 * day), now, time.Hour, time.Time{}, time.Time{}, TierRaw, []segment{{TierRaw, now.Add(-2 * day), now}}},
		"OlderThan1mAtOneMinute": {now.Add(-60 * day), now.Add(-59 * day), time.Minute, now, time.Time{}, Tier1h, []segment{
			{Tier1h, now.Add(-60 * day), now.Add(-59 * day)}}},
	} {
		t.Run(name, func(t *testing.T) {
			tier, segs, err := p.choose(tc.from, tc.to, tc.every, rolled(tc.until, tc.until1m))
			if err != nil {
				t.Fatal(err)
			}
			if tier != tc.tier || !reflect.DeepEqual(segs, tc.segs) {
				t.Fatalf("tier %s segments %v, want %s %v", tier, segs, tc.tier, tc.segs)
			}
		})
	}
	if got := p.intervalsEvery(now.Add(-30*day), now, 10*time.Second); got != time.Hour {
		t.Errorf("a month past raw reads intervals at %s, want the 1h tier", got)
	}
	for _, from := range []time.Time{now.Add(-time.Hour), now.Add(-3 * day), now.Add(-9 * day)} {
		if got := p.intervalsEvery(from, from.Add(2*day), 10*time.Second); got != time.Minute {
			t.Errorf("2 days from %s read intervals at %s, want the 1m tier (exact)", from, got)
		}
	}

}

// TestRatesRoundTrip checks the hand-written parser of a row's rates against its encoder and
// refuses text it did not write.
func TestRatesRoundTrip(t *testing.T) {
	rates := map[int64]int64{0: 1500, 10: 7, 50: 1 << 40}
	pairs, err := decodeRates(encodeRates(rates))
	if err != nil {
		t.Fatal(err)
	}
	if want := []ratePair{{0, 1500}, {10, 7}, {50, 1 << 40}}; !reflect.DeepEqual(pairs, want) {
		t.Fatalf("decoded %v, want %v", pairs, want)
	}
	if pairs, err := decodeRates(""); err != nil || len(pairs) != 0 {
		t.Fatalf("empty rates: %v %v", pairs, err)
	}
	for _, bad := range []string{"1", "1:", ":2", "1:2:3", "a:1", "1:-2", "1:2  3"} {
		if _, err := decodeRates(bad); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}
