package collector

import "github.com/prometheus/client_golang/prometheus"

// Metric descriptions; values are read from the collector's own counters at scrape time,
// so the record path pays nothing for them.
var (
	descRecords = prometheus.NewDesc("patronus_ingest_records_total",
		"Traffic reports recorded from accepted batches.", nil, nil)
	descBatches = prometheus.NewDesc("patronus_ingest_batches_total",
		"Traffic batches accepted.", nil, nil)
	descRejected = prometheus.NewDesc("patronus_ingest_rejected_total",
		"Traffic batches rejected as invalid; nothing of them was recorded.", nil, nil)
	descUnclassifiedRecords = prometheus.NewDesc("patronus_unclassified_records_total",
		"Traffic records that matched no policy.", nil, nil)
	descUnclassifiedPackets = prometheus.NewDesc("patronus_unclassified_packets_total",
		"Packets of traffic that matched no policy.", nil, nil)
	descUnclassifiedBytes = prometheus.NewDesc("patronus_unclassified_bytes_total",
		"Bytes of traffic that matched no policy.", nil, nil)
	descActiveFlows = prometheus.NewDesc("patronus_active_flows",
		"Tracked flows attributed to a policy.", nil, nil)
	descTrackedFlows = prometheus.NewDesc("patronus_tracked_flows",
		"Tracked flows, unclassified ones included; at most the configured maximum.", nil, nil)
	descExpired = prometheus.NewDesc("patronus_flows_expired_total",
		"Flows removed after being idle for longer than the idle timeout.", nil, nil)
	descOverflow = prometheus.NewDesc("patronus_flow_overflow_total",
		"Records whose new flow was counted but not tracked because the flow table was full.", nil, nil)
)

// Describe sends the descriptions of the collector's metrics; with Collect it makes the
// Collector a prometheus.Collector to register with a registry.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRecords, descBatches, descRejected, descUnclassifiedRecords,
		descUnclassifiedPackets, descUnclassifiedBytes, descActiveFlows, descTrackedFlows, descExpired, descOverflow} {
		ch <- d
	}
}

// Collect sends the current values of the collector's metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	t := c.totals()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter(descRecords, c.records.Load())
	counter(descBatches, c.batches.Load())
	counter(descRejected, c.rejected.Load())
	counter(descUnclassifiedRecords, t.unclassifiedReports)
	counter(descUnclassifiedPackets, t.unclassifiedPackets)
	counter(descUnclassifiedBytes, t.unclassifiedBytes)
	gauge(descActiveFlows, t.ActiveFlows)
	gauge(descTrackedFlows, t.TrackedFlows)
	counter(descExpired, t.FlowsExpired)
	counter(descOverflow, t.FlowOverflow)
}
