package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patronus-sdwan/patronus/spool"
)

// spoolMetrics exports the spool's counters to /metrics.
type spoolMetrics struct{ sp *spool.Spool }

var (
	descSpoolBytes        = prometheus.NewDesc("patronus_spool_bytes", "Bytes of the spool on disk: acknowledged traffic history has not confirmed yet, and the active segment.", nil, nil)
	descSpoolWritten      = prometheus.NewDesc("patronus_spool_written_bytes_total", "Bytes appended to the spool.", nil, nil)
	descSpoolAppends      = prometheus.NewDesc("patronus_spool_appends_total", "Records appended to the spool.", nil, nil)
	descSpoolSyncs        = prometheus.NewDesc("patronus_spool_fsyncs_total", "Fsyncs of spool appends; concurrent batches share one.", nil, nil)
	descSpoolDroppedBytes = prometheus.NewDesc("patronus_spool_dropped_bytes_total", "Unconfirmed spool bytes deleted because the spool reached PATRONUS_SPOOL_MAX_BYTES.", nil, nil)
)

// Describe implements prometheus.Collector.
func (m spoolMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSpoolBytes, descSpoolWritten, descSpoolAppends, descSpoolSyncs, descSpoolDroppedBytes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m spoolMetrics) Collect(ch chan<- prometheus.Metric) {
	st := m.sp.Stats()
	ch <- prometheus.MustNewConstMetric(descSpoolBytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(descSpoolWritten, prometheus.CounterValue, float64(st.BytesWritten))
	ch <- prometheus.MustNewConstMetric(descSpoolAppends, prometheus.CounterValue, float64(st.Appends))
	ch <- prometheus.MustNewConstMetric(descSpoolSyncs, prometheus.CounterValue, float64(st.Syncs))
	ch <- prometheus.MustNewConstMetric(descSpoolDroppedBytes, prometheus.CounterValue, float64(st.DroppedBytes))
}
