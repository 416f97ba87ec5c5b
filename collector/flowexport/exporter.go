package flowexport

import (
	"cmp"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Protocol names an export protocol as the exporters list and the metrics show it.
type Protocol string

// The protocols taken.
const (
	NetFlow Protocol = "netflow" // NetFlow v5 or v9
	IPFIX   Protocol = "ipfix"   // IPFIX (NetFlow v10)
	SFlow   Protocol = "sflow"   // sFlow v5
)

// ExporterInfo is what is known of one exporter: a router (address) sending one protocol.
type ExporterInfo struct {
	Address  netip.Addr
	Protocol Protocol
	// Version is the version of the last datagram that decoded (5, 9 or 10; 5 for sFlow).
	Version   int
	FirstSeen time.Time
	LastSeen  time.Time
	// Datagrams counts every datagram received from it, decoded or not.
	Datagrams uint64
	// FlowRecords counts the flow records recorded from it.
	FlowRecords uint64
	// DecodeErrors counts datagrams that did not decode (none of their records was recorded).
	DecodeErrors uint64
	// UnknownTemplates counts data sets that arrived before (or after the expiry of) their template.
	UnknownTemplates uint64
	// Restarts counts the restarts detected (sequence number or uptime going back).
	Restarts uint64
	// Templates is the number of templates known now.
	Templates int
	// SamplingRate is the rate last applied to its records: 1 when unsampled.
	SamplingRate uint32
}

type exporterKey struct {
	addr     netip.Addr
	protocol Protocol
}

// exporter is the live state of one exporter. Counters are atomic; the domain state
// (sequence numbers, sampling rates) is under mu.
type exporter struct {
	key       exporterKey
	firstSeen int64
	lastSeen  atomic.Int64
	version   atomic.Int32

	datagrams, records, decodeErrors, unknownTemplates, restarts atomic.Uint64
	samplingRate                                                 atomic.Uint32

	templates *templateStore

	mu      sync.Mutex
	domains map[uint64]*domainState // by version<<32 | observation domain
}

// domainState is what is remembered of one observation domain of an exporter.
type domainState struct {
	seen     bool
	sequence uint32
	uptime   uint32
	sampling uint32 // 0 until an options record announces it
}

// domain returns the state of an observation domain, made on first use. Callers hold e.mu.
// The number of domains is bounded like templates: past maxDomains the oldest state is
// dropped wholesale, which costs at most a missed restart detection.
func (e *exporter) domainLocked(version uint16, id uint32, maxDomains int) *domainState {
	k := uint64(version)<<32 | uint64(id)
	d, ok := e.domains[k]
	if !ok {
		if len(e.domains) >= maxDomains {
			clear(e.domains)
		}
		d = &domainState{}
		e.domains[k] = d
	}
	return d
}

// registry holds the exporters, at most max of them: the least recently seen is forgotten
// first (with its templates).
type registry struct {
	cache        *lru.Cache[exporterKey, *exporter]
	maxTemplates int
	templateTTL  time.Duration
	now          func() time.Time
	mu           sync.Mutex // serialises creation so two workers make one exporter
}

func newRegistry(max, maxTemplates int, templateTTL time.Duration, now func() time.Time) *registry {
	c, err := lru.New[exporterKey, *exporter](max)
	if err != nil {
		panic(err) // only for max <= 0, which Config's defaults rule out
	}
	return &registry{cache: c, maxTemplates: maxTemplates, templateTTL: templateTTL, now: now}
}

// get returns the exporter of key, made on first sight, with its last-seen time stamped.
func (r *registry) get(addr netip.Addr, p Protocol) *exporter {
	key := exporterKey{addr: addr.Unmap(), protocol: p}
	now := r.now().UnixNano()
	e, ok := r.cache.Get(key)
	if !ok {
		r.mu.Lock()
		e, ok = r.cache.Get(key)
		if !ok {
			e = &exporter{key: key, firstSeen: now, domains: make(map[uint64]*domainState),
				templates: newTemplateStore(r.maxTemplates, r.templateTTL, r.now)}
			e.samplingRate.Store(1)
			r.cache.Add(key, e)
		}
		r.mu.Unlock()
	}
	e.lastSeen.Store(now)
	return e
}

// list returns every exporter known, by address then protocol.
func (r *registry) list() []ExporterInfo {
	exporters := r.cache.Values()
	out := make([]ExporterInfo, 0, len(exporters))
	for _, e := range exporters {
		out = append(out, ExporterInfo{
			Address: e.key.addr, Protocol: e.key.protocol, Version: int(e.version.Load()),
			FirstSeen: time.Unix(0, e.firstSeen).UTC(), LastSeen: time.Unix(0, e.lastSeen.Load()).UTC(),
			Datagrams: e.datagrams.Load(), FlowRecords: e.records.Load(), DecodeErrors: e.decodeErrors.Load(),
			UnknownTemplates: e.unknownTemplates.Load(), Restarts: e.restarts.Load(),
			Templates: e.templates.count(), SamplingRate: e.samplingRate.Load(),
		})
	}
	slices.SortFunc(out, func(a, b ExporterInfo) int {
		if c := a.Address.Compare(b.Address); c != 0 {
			return c
		}
		return cmp.Compare(a.Protocol, b.Protocol)
	})
	return out
}
