package flowexport

import (
	"math/bits"
	"net/netip"
	"time"

	"github.com/patronus-sdwan/patronus/collector"
)

// Recorder is where decoded flow records go: the collector's batch API, as for a REST batch.
type Recorder interface {
	RecordBatch(reports []collector.Report) (collector.BatchResult, error)
}

// Defaults for Config.
const (
	DefaultMaxExporters = 10_000
	DefaultMaxTemplates = 512
	DefaultTemplateTTL  = 30 * time.Minute
	DefaultQueueSize    = 4096
	// maxDomains bounds the observation domains remembered per exporter.
	maxDomains = 1024
)

// DecoderConfig bounds what a Decoder keeps. The zero value is usable.
type DecoderConfig struct {
	// MaxExporters is how many exporters are remembered (with their templates).
	MaxExporters int
	// MaxTemplates is how many templates one exporter may have at once.
	MaxTemplates int
	// TemplateTTL is how long a template lives after it was last announced.
	TemplateTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Decoder turns datagrams into traffic reports and records them. It is safe for concurrent
// use; each goroutine passes its own Batch.
type Decoder struct {
	rec       Recorder
	exporters *registry
	metrics   *metrics
}

// NewDecoder returns a Decoder recording into rec.
func NewDecoder(rec Recorder, cfg DecoderConfig) *Decoder {
	if cfg.MaxExporters <= 0 {
		cfg.MaxExporters = DefaultMaxExporters
	}
	if cfg.MaxTemplates <= 0 {
		cfg.MaxTemplates = DefaultMaxTemplates
	}
	if cfg.TemplateTTL <= 0 {
		cfg.TemplateTTL = DefaultTemplateTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Decoder{rec: rec, exporters: newRegistry(cfg.MaxExporters, cfg.MaxTemplates, cfg.TemplateTTL, cfg.Now),
		metrics: newMetrics()}
}

// Exporters lists the exporters seen, by address.
func (d *Decoder) Exporters() []ExporterInfo {
	return d.exporters.list()
}

// Batch is a goroutine's scratch space for decoding: reuse one per goroutine.
type Batch struct {
	reports []collector.Report
	sflow   *headerParser
	scratch []byte // a datagram copy fixV9Count may rewrite
}

// NewBatch returns an empty Batch.
func NewBatch() *Batch {
	return &Batch{reports: make([]collector.Report, 0, 64), sflow: newHeaderParser()}
}

// add appends a report with its counts scaled by rate; reports without both addresses
// (options data, non-IP samples) are skipped.
func (b *Batch) add(k collector.FlowKey, packets, bytes uint64, rate uint32) {
	if !k.SrcIP.IsValid() || !k.DstIP.IsValid() {
		return
	}
	if rate > 1 {
		packets = saturatingMul(packets, uint64(rate))
		bytes = saturatingMul(bytes, uint64(rate))
	}
	b.reports = append(b.reports, collector.Report{Flow: k, Packets: packets, Bytes: bytes})
}

func saturatingMul(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi != 0 {
		return ^uint64(0)
	}
	return lo
}

// record hands the batch's reports to the recorder and counts them on the exporter. The
// reports are all valid (addresses present, no policy id), so RecordBatch cannot refuse them.
func (d *Decoder) record(b *Batch, e *exporter, p Protocol) {
	if len(b.reports) == 0 {
		return
	}
	n := len(b.reports)
	if _, err := d.rec.RecordBatch(b.reports); err != nil {
		d.decodeError(e, p)
		b.reports = b.reports[:0]
		return
	}
	e.records.Add(uint64(n))
	d.metrics.records[p].Add(float64(n))
	b.reports = b.reports[:0]
}

func (d *Decoder) decodeError(e *exporter, p Protocol) {
	e.decodeErrors.Add(1)
	d.metrics.decodeErrors[p].Inc()
}

// beUint reads a big-endian unsigned number of 1 to 8 bytes; longer values keep their low
// 8 bytes.
func beUint(b []byte) uint64 {
	if len(b) > 8 {
		b = b[len(b)-8:]
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// addrOf reads a 4- or 16-byte address; anything else is the invalid address.
func addrOf(b []byte) netip.Addr {
	switch len(b) {
	case 4:
		return netip.AddrFrom4([4]byte(b))
	case 16:
		return netip.AddrFrom16([16]byte(b)).Unmap()
	}
	return netip.Addr{}
}
