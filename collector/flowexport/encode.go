package flowexport

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/patronus-sdwan/patronus/collector"
)

// Encoder writes NetFlow v9 or IPFIX datagrams of IPv4 flows with one fixed template, as a
// router would send them: a template datagram first, then data datagrams, sequence numbers
// counted. It is for load generation (patronus-loadgen -mode netflow) and tests; Patronus
// itself only decodes, with goflow2.
type Encoder struct {
	// Version is 9 (NetFlow v9) or 10 (IPFIX).
	Version uint16
	// Domain is the observation domain (v9 source id).
	Domain uint32
	// TemplateID is the id of the data template, 256 or more.
	TemplateID uint16
	// Start is the exporter's boot time, for the v9 uptime; zero means the first use.
	Start time.Time

	fields   []templateField // nil means defaultLayout
	sequence uint32
}

type templateField struct {
	id, length uint16
}

// defaultLayout is the template Encoder announces: addresses, ports, protocol, 64-bit counters.
var defaultLayout = []templateField{
	{fieldSrcIPv4, 4}, {fieldDstIPv4, 4}, {fieldSrcPort, 2}, {fieldDstPort, 2},
	{fieldProtocol, 1}, {fieldInPackets, 8}, {fieldInBytes, 8},
}

// EncodedFlow is one flow record to encode: IPv4 addresses only.
type EncodedFlow struct {
	Flow    collector.FlowKey
	Packets uint64
	Bytes   uint64
}

// ErrNotIPv4 is returned for a flow whose addresses are not both IPv4.
var ErrNotIPv4 = errors.New("encoder: flow addresses must be IPv4")

func (e *Encoder) layout() []templateField {
	if e.fields == nil {
		return defaultLayout
	}
	return e.fields
}

// RecordSize is the size in bytes of one encoded data record.
func (e *Encoder) RecordSize() int {
	n := 0
	for _, f := range e.layout() {
		if f.length == 0xffff {
			n += 5 // the variable-length value Data writes
		} else {
			n += int(f.length)
		}
	}
	return n
}

// RecordsPerDatagram is how many records fit a datagram of at most size bytes.
func (e *Encoder) RecordsPerDatagram(size int) int {
	return max(1, (size-20-4)/e.RecordSize())
}

// Template returns a datagram announcing the data template.
func (e *Encoder) Template() []byte {
	fields := e.layout()
	set := make([]byte, 0, 8+4*len(fields))
	set = binary.BigEndian.AppendUint16(set, e.TemplateID)
	set = binary.BigEndian.AppendUint16(set, uint16(len(fields)))
	for _, f := range fields {
		set = binary.BigEndian.AppendUint16(set, f.id)
		set = binary.BigEndian.AppendUint16(set, f.length)
	}
	id := uint16(0)
	if e.Version == 10 {
		id = 2
	}
	return e.datagram(1, 0, flowSet(id, set))
}

// SamplingOptions returns a datagram with an options template and an options record that
// announces sampling of 1 packet in rate (samplingInterval, field 34).
func (e *Encoder) SamplingOptions(rate uint32) []byte {
	const optionsTemplate = 257
	var tmpl, data []byte
	tmpl = binary.BigEndian.AppendUint16(tmpl, optionsTemplate)
	if e.Version == 10 {
		tmpl = binary.BigEndian.AppendUint16(tmpl, 2) // field count
		tmpl = binary.BigEndian.AppendUint16(tmpl, 1) // scope field count
		tmpl = binary.BigEndian.AppendUint16(tmpl, 149)
		tmpl = binary.BigEndian.AppendUint16(tmpl, 4) // observationDomainId
	} else {
		tmpl = binary.BigEndian.AppendUint16(tmpl, 4) // scope length in bytes
		tmpl = binary.BigEndian.AppendUint16(tmpl, 4) // option length in bytes
		tmpl = binary.BigEndian.AppendUint16(tmpl, 1)
		tmpl = binary.BigEndian.AppendUint16(tmpl, 4) // scope: system
	}
	tmpl = binary.BigEndian.AppendUint16(tmpl, fieldSamplingInterval)
	tmpl = binary.BigEndian.AppendUint16(tmpl, 4)
	data = binary.BigEndian.AppendUint32(data, e.Domain)
	data = binary.BigEndian.AppendUint32(data, rate)
	tmplID := uint16(1)
	if e.Version == 10 {
		tmplID = 3
	}
	return e.datagram(2, 0, append(flowSet(tmplID, tmpl), flowSet(optionsTemplate, data)...))
}

// Data returns a datagram of data records for flows, or ErrNotIPv4.
func (e *Encoder) Data(flows []EncodedFlow) ([]byte, error) {
	set := make([]byte, 0, len(flows)*e.RecordSize())
	for _, f := range flows {
		if !f.Flow.SrcIP.Is4() || !f.Flow.DstIP.Is4() {
			return nil, ErrNotIPv4
		}
		for _, fl := range e.layout() {
			switch fl.id {
			case fieldSrcIPv4:
				set = append(set, f.Flow.SrcIP.AsSlice()...)
			case fieldDstIPv4:
				set = append(set, f.Flow.DstIP.AsSlice()...)
			case fieldSrcPort:
				set = binary.BigEndian.AppendUint16(set, f.Flow.SrcPort)
			case fieldDstPort:
				set = binary.BigEndian.AppendUint16(set, f.Flow.DstPort)
			case fieldProtocol:
				set = append(set, f.Flow.Protocol)
			case fieldInPackets:
				set = appendUint(set, f.Packets, fl.length)
			case fieldInBytes:
				set = appendUint(set, f.Bytes, fl.length)
			default: // a field this encoder has no value for: a variable-length name, or zeros
				if fl.length == 0xffff {
					set = append(set, 4, 'e', 't', 'h', '0')
				} else {
					set = append(set, make([]byte, fl.length)...)
				}
			}
		}
	}
	return e.datagram(len(flows), len(flows), flowSet(e.TemplateID, set)), nil
}

func appendUint(b []byte, v uint64, length uint16) []byte {
	var w [8]byte
	binary.BigEndian.PutUint64(w[:], v)
	return append(b, w[8-length:]...)
}

// flowSet frames a set with its id and length, padded to 4 bytes.
func flowSet(id uint16, body []byte) []byte {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	out := make([]byte, 0, 4+len(body))
	out = binary.BigEndian.AppendUint16(out, id)
	out = binary.BigEndian.AppendUint16(out, uint16(4+len(body)))
	return append(out, body...)
}

// datagram puts the header before sets holding records records (dataRecords of them data).
func (e *Encoder) datagram(records, dataRecords int, sets []byte) []byte {
	if e.Start.IsZero() {
		e.Start = time.Now()
	}
	now := time.Now()
	var h []byte
	h = binary.BigEndian.AppendUint16(h, e.Version)
	if e.Version == 10 {
		h = binary.BigEndian.AppendUint16(h, uint16(16+len(sets)))
		h = binary.BigEndian.AppendUint32(h, uint32(now.Unix()))
		h = binary.BigEndian.AppendUint32(h, e.sequence)
		h = binary.BigEndian.AppendUint32(h, e.Domain)
		e.sequence += uint32(dataRecords)
	} else {
		h = binary.BigEndian.AppendUint16(h, uint16(records))
		h = binary.BigEndian.AppendUint32(h, uint32(now.Sub(e.Start).Milliseconds()))
		h = binary.BigEndian.AppendUint32(h, uint32(now.Unix()))
		h = binary.BigEndian.AppendUint32(h, e.sequence)
		h = binary.BigEndian.AppendUint32(h, e.Domain)
		e.sequence++
	}
	return append(h, sets...)
}
