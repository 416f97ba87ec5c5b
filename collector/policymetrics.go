package collector

import (
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// UnclassifiedName is the name under which unclassified traffic (policy id Unclassified) is
// labelled in metrics and history.
const UnclassifiedName = "unclassified"

// Per-policy metric descriptions. The counters are the collector's raw counters, which only
// grow: a reset of the live statistics (ResetPolicy, ResetAll, the API's reset endpoints)
// moves the base the API subtracts and leaves these alone, so a Prometheus counter never
// goes down. They count from the start of the process, or from the policy's creation.
var (
	policyLabels      = []string{"policy_id", "policy_name"}
	descPolicyPackets = prometheus.NewDesc("patronus_policy_packets_total",
		"Packets counted against a policy since this process started or the policy was created; "+
			"resets of the live statistics do not lower it. policy_id 0 (policy_name unclassified) is traffic that matched no policy.",
		policyLabels, nil)
	descPolicyBytes = prometheus.NewDesc("patronus_policy_bytes_total",
		"Bytes counted against a policy since this process started or the policy was created; "+
			"resets of the live statistics do not lower it. policy_id 0 (policy_name unclassified) is traffic that matched no policy.",
		policyLabels, nil)
	descPolicyActiveFlows = prometheus.NewDesc("patronus_policy_active_flows",
		"Flows of a policy tracked right now. policy_id 0 (policy_name unclassified) counts the unclassified flows.",
		policyLabels, nil)
)

// PolicyMetrics exports the per-policy packets, bytes and active flows of a Collector to
// Prometheus, one series per known policy plus one for unclassified traffic. Values are read
// from the collector's live state at scrape time, so recording pays nothing for them, and
// a deleted policy's series disappear with it: the series are bounded by the policies.
type PolicyMetrics struct {
	c *Collector
}

// PolicyMetrics returns the prometheus.Collector of the collector's per-policy metrics.
func (c *Collector) PolicyMetrics() *PolicyMetrics { return &PolicyMetrics{c: c} }

// Describe sends the descriptions of the per-policy metrics.
func (m *PolicyMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPolicyPackets
	ch <- descPolicyBytes
	ch <- descPolicyActiveFlows
}

// policyCounts is one policy's raw counters summed over the shards.
type policyCounts struct {
	packets, bytes uint64
	flows          int64
}

// Collect sends one packets, bytes and active-flows sample per known policy, and the same
// for unclassified traffic. The label pairs are built once per policy set and shared by
// every scrape, and the samples of one scrape are allocated together: with 10,000 policies
// a scrape sends 30,003 samples.
func (m *PolicyMetrics) Collect(ch chan<- prometheus.Metric) {
	set, counts, unclassified := m.c.policyCounts()
	labels := set.metricLabels()
	samples := make([]policySample, 0, 3*len(labels))
	send := func(labels []*dto.LabelPair, n policyCounts) {
		samples = append(samples,
			policySample{desc: descPolicyPackets, labels: labels, counter: true, value: float64(n.packets)},
			policySample{desc: descPolicyBytes, labels: labels, counter: true, value: float64(n.bytes)},
			policySample{desc: descPolicyActiveFlows, labels: labels, value: float64(n.flows)})
		for i := len(samples) - 3; i < len(samples); i++ {
			ch <- &samples[i]
		}
	}
	send(labels[0], unclassified)
	for i := range set.ids {
		send(labels[i+1], counts[i])
	}
}

// metricLabels returns the label pairs of unclassified traffic, then of each policy in the
// order of ids, building them on first use.
func (p *policySet) metricLabels() [][]*dto.LabelPair {
	p.labelsOnce.Do(func() {
		pair := func(id, name string) []*dto.LabelPair { // sorted by label name, as Write must
			return []*dto.LabelPair{{Name: &policyLabels[0], Value: &id}, {Name: &policyLabels[1], Value: &name}}
		}
		p.labels = make([][]*dto.LabelPair, 0, len(p.ids)+1)
		p.labels = append(p.labels, pair("0", UnclassifiedName))
		for i, id := range p.ids {
			p.labels = append(p.labels, pair(strconv.FormatInt(id, 10), p.names[i]))
		}
	})
	return p.labels
}

// policySample is one per-policy sample: a prometheus.Metric over shared label pairs.
type policySample struct {
	desc    *prometheus.Desc
	labels  []*dto.LabelPair
	counter bool
	value   float64
}

// Desc returns the sample's description.
func (s *policySample) Desc() *prometheus.Desc { return s.desc }

// Write fills out with the sample's labels and value. The label pairs are shared and must
// not be changed; the registry only reads them.
func (s *policySample) Write(out *dto.Metric) error {
	out.Label = s.labels
	if s.counter {
		out.Counter = &dto.Counter{Value: &s.value}
	} else {
		out.Gauge = &dto.Gauge{Value: &s.value}
	}
	return nil
}

// policyCounts returns the policy set and, in its order, each policy's raw counters, and
// those of unclassified traffic: one pass over the shards.
func (c *Collector) policyCounts() (set *policySet, counts []policyCounts, unclassified policyCounts) {
	set = c.policies.Load()
	counts = make([]policyCounts, len(set.ids))
	for i := range c.shards {
		s := &c.shards[i].shard
		s.mu.Lock()
		for ci := range s.cells {
			cell := &s.cells[ci]
			if !cell.live {
				continue
			}
			n := &unclassified
			if cell.id != Unclassified {
				j, found := slices.BinarySearch(set.ids, cell.id)
				if !found { // dropped by a SetPolicies that is still running
					continue
				}
				n = &counts[j]
			}
			packets, bytes, _ := cell.raw()
			n.packets = addSat(n.packets, packets)
			n.bytes = addSat(n.bytes, bytes)
			n.flows += int64(len(cell.flows))
		}
		s.mu.Unlock()
	}
	return set, counts, unclassified
}

// removedName is the name of a removed policy, kept from TakeDeltas call number takes on.
type removedName struct {
	name  string
	takes uint64
}

// PolicyName returns the name of a policy, for the policy_name tag of its history points:
// UnclassifiedName for Unclassified, and for a policy removed since the last two TakeDeltas
// calls the name it had, since its last deltas are written after its removal. It is empty
// for ids it does not know (a policy removed earlier, or before a restart).
func (c *Collector) PolicyName(id int64) string {
	if id == Unclassified {
		return UnclassifiedName
	}
	set := c.policies.Load()
	if i, found := slices.BinarySearch(set.ids, id); found {
		return set.names[i]
	}
	c.takeMu.Lock()
	defer c.takeMu.Unlock()
	return c.removedNames[id].name
}

// pruneRemovedNamesLocked forgets the names of policies removed before the previous
// TakeDeltas call and counts this one; c.takeMu is held. A name thus outlives its policy by
// the flush that takes its last deltas and the one after, whose points are named after it.
func (c *Collector) pruneRemovedNamesLocked() {
	for id, n := range c.removedNames {
		if n.takes+1 < c.takes {
			delete(c.removedNames, id)
		}
	}
	c.takes++
}
