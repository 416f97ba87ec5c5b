package flowexport

import "github.com/prometheus/client_golang/prometheus"

// metrics are the per-protocol counters of the flow listeners, exported as
// patronus_flow_*_total{protocol=...}.
type metrics struct {
	datagramsVec, decodeErrorsVec, unknownTemplatesVec, recordsVec, queueDropsVec *prometheus.CounterVec

	datagrams, decodeErrors, unknownTemplates, records, queueDrops map[Protocol]prometheus.Counter
}

func newMetrics() *metrics {
	vec := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"protocol"})
	}
	m := &metrics{
		datagramsVec:        vec("patronus_flow_datagrams_total", "Flow export datagrams received, by protocol."),
		decodeErrorsVec:     vec("patronus_flow_decode_errors_total", "Flow export datagrams that did not decode and were dropped, by protocol."),
		unknownTemplatesVec: vec("patronus_flow_unknown_templates_total", "NetFlow v9/IPFIX data sets whose template was not known, by protocol."),
		recordsVec:          vec("patronus_flow_records_total", "Flow records recorded into the collector, by protocol."),
		queueDropsVec:       vec("patronus_flow_queue_drops_total", "Datagrams dropped because the decode queue was full, by listener (netflow takes v5, v9 and IPFIX)."),
	}
	resolve := func(v *prometheus.CounterVec) map[Protocol]prometheus.Counter {
		out := make(map[Protocol]prometheus.Counter, 3)
		for _, p := range []Protocol{NetFlow, IPFIX, SFlow} {
			out[p] = v.WithLabelValues(string(p))
		}
		return out
	}
	m.datagrams = resolve(m.datagramsVec)
	m.decodeErrors = resolve(m.decodeErrorsVec)
	m.unknownTemplates = resolve(m.unknownTemplatesVec)
	m.records = resolve(m.recordsVec)
	m.queueDrops = resolve(m.queueDropsVec)
	return m
}

func (m *metrics) vecs() []*prometheus.CounterVec {
	return []*prometheus.CounterVec{m.datagramsVec, m.decodeErrorsVec, m.unknownTemplatesVec, m.recordsVec, m.queueDropsVec}
}

// Describe sends the descriptions of the flow metrics; with Collect it makes the Decoder a
// prometheus.Collector.
func (d *Decoder) Describe(ch chan<- *prometheus.Desc) {
	for _, v := range d.metrics.vecs() {
		v.Describe(ch)
	}
}

// Collect sends the current values of the flow metrics.
func (d *Decoder) Collect(ch chan<- prometheus.Metric) {
	for _, v := range d.metrics.vecs() {
		v.Collect(ch)
	}
}
