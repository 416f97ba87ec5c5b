package cache

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
)

// Default TTLs of the two typed caches, as in the reference system.
const (
	DefaultMetricsTTL = 60 * time.Second
	DefaultRoutingTTL = 30 * time.Second
)

// MetricsCache holds the latest metrics of each path, by path id, so hot read
// paths skip the database.
type MetricsCache = Cache[int64, storage.PathMetrics]

// RoutingCache holds routing decisions by RoutingKey.
type RoutingCache = Cache[string, RoutingDecision]

// RoutingDecision is the path chosen for traffic between two sites, and why.
type RoutingDecision struct {
	SelectedPathID int64  `json:"selected_path_id"`
	Reason         string `json:"reason"`
	// Score is the selected path's score; nil when it has no metrics.
	Score     *int      `json:"score"`
	DecidedAt time.Time `json:"decided_at"`
	// PathIDs are the paths the decision chose among: a change to any of them (metrics,
	// status, deletion) can change the decision, so InvalidateRoutesUsing drops it.
	PathIDs []int64 `json:"-"`
}

// NewMetricsCache returns a MetricsCache holding at most maxEntries paths.
func NewMetricsCache(ttl time.Duration, maxEntries int64, opts ...Option) (*MetricsCache, error) {
	return New[int64, storage.PathMetrics](ttl, maxEntries, opts...)
}

// NewRoutingCache returns a RoutingCache holding at most maxEntries decisions.
func NewRoutingCache(ttl time.Duration, maxEntries int64, opts ...Option) (*RoutingCache, error) {
	return New[string, RoutingDecision](ttl, maxEntries, opts...)
}

// RoutingKey is the routing-cache key of a decision for traffic from one site
// to another, under a policy or none. Distinct arguments give distinct keys,
// whatever characters the ids hold, and ParseRoutingKey reverses it.
func RoutingKey(srcSiteID, dstSiteID string, policyID *int64) string {
	var b strings.Builder
	b.Grow(len(srcSiteID) + len(dstSiteID) + 32)
	b.WriteString(strconv.Itoa(len(srcSiteID)))
	b.WriteByte(':')
	b.WriteString(srcSiteID)
	b.WriteString(strconv.Itoa(len(dstSiteID)))
	b.WriteByte(':')
	b.WriteString(dstSiteID)
	if policyID != nil {
		b.WriteByte('p')
		b.WriteString(strconv.FormatInt(*policyID, 10))
	}
	return b.String()
}

// ParseRoutingKey returns the arguments RoutingKey made key from; ok is false
// when key is not such a key.
func ParseRoutingKey(key string) (srcSiteID, dstSiteID string, policyID *int64, ok bool) {
	srcSiteID, rest, ok := cutLengthPrefixed(key)
	if !ok {
		return "", "", nil, false
	}
	dstSiteID, rest, ok = cutLengthPrefixed(rest)
	if !ok {
		return "", "", nil, false
	}
	if rest == "" {
		return srcSiteID, dstSiteID, nil, true
	}
	digits, found := strings.CutPrefix(rest, "p")
	if !found {
		return "", "", nil, false
	}
	id, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || strconv.FormatInt(id, 10) != digits {
		return "", "", nil, false
	}
	return srcSiteID, dstSiteID, &id, true
}

// cutLengthPrefixed splits "<n>:<n bytes>rest" into the n bytes and rest.
func cutLengthPrefixed(s string) (field, rest string, ok bool) {
	digits, after, found := strings.Cut(s, ":")
	if !found {
		return "", "", false
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 0 || n > len(after) || strconv.Itoa(n) != digits {
		return "", "", false
	}
	return after[:n], after[n:], true
}

// InvalidateRoutesBetween removes the decisions for traffic between the two
// sites, in either direction and under any policy: the ones a change to a path
// joining them can alter. It returns how many it removed.
func InvalidateRoutesBetween(rc *RoutingCache, siteA, siteB string) int {
	return rc.DeleteFunc(func(key string, _ RoutingDecision) bool {
		src, dst, _, ok := ParseRoutingKey(key)
		return ok && (src == siteA && dst == siteB || src == siteB && dst == siteA)
	})
}

// InvalidateRoutesOfSite removes the decisions for traffic from or to the
// site, for when it is deleted. It returns how many it removed.
func InvalidateRoutesOfSite(rc *RoutingCache, siteID string) int {
	return rc.DeleteFunc(func(key string, _ RoutingDecision) bool {
		src, dst, _, ok := ParseRoutingKey(key)
		return ok && (src == siteID || dst == siteID)
	})
}

// InvalidateRoutesUsing removes the decisions that chose among any of the paths, for when
// their metrics or status change or they are deleted. It returns how many it removed.
func InvalidateRoutesUsing(rc *RoutingCache, pathIDs []int64) int {
	return rc.DeleteFunc(func(_ string, d RoutingDecision) bool {
		for _, id := range d.PathIDs {
			if slices.Contains(pathIDs, id) {
				return true
			}
		}
		return false
	})
}

// InvalidateRoutesVia removes the decisions that selected the path, for when
// it is deleted or goes down. It returns how many it removed.
func InvalidateRoutesVia(rc *RoutingCache, pathID int64) int {
	return rc.DeleteFunc(func(_ string, d RoutingDecision) bool {
		return d.SelectedPathID == pathID
	})
}
