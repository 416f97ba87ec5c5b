package collector

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"sync"
	"unsafe"
)

// MaxBatchReports is the largest batch the API accepts.
const MaxBatchReports = 10_000

// MaxCount is the largest packets or bytes value of one report: openapi.yaml says int64, and
// history stores the counts as signed 64-bit integers, so a larger value (a router's unsigned
// delta across a counter reset, say) is refused where it arrives instead of going negative later.
const MaxCount = math.MaxInt64

// DecodeBatch reads a traffic batch, the JSON body {"reports":[...]} of POST /api/v1/traffic,
// strictly: unknown or duplicate fields, wrong types, invalid addresses, out-of-range ports
// and protocols, negative, fractional or over-MaxCount counts and more than maxReports reports (no limit if
// maxReports <= 0) are all errors. A problem with the content is a *ValidationError naming
// the report index and JSON path; an error reading r is returned wrapped as it is.
//
// It is a hand-written scanner rather than encoding/json: decoding into structs by reflection
// and then validating costs several times more per report (see BenchmarkDecodeBatch), and the
// scanner knows the path of every value it rejects.
func DecodeBatch(r io.Reader, maxReports int) ([]Report, error) {
	bp := bufPool.Get().(*bytes.Buffer)
	defer func() {
		if bp.Cap() <= maxPooledBuffer {
			bp.Reset()
			bufPool.Put(bp)
		}
	}()
	if _, err := bp.ReadFrom(r); err != nil {
		return nil, fmt.Errorf("read traffic batch: %w", err)
	}
	return DecodeBatchBytes(bp.Bytes(), maxReports)
}

// DecodeBatchBytes is DecodeBatch of a body already read: it keeps no reference to data.
func DecodeBatchBytes(data []byte, maxReports int) ([]Report, error) {
	d := decoder{data: data, max: maxReports}
	reports, err := d.batch()
	switch {
	case err != nil && len(d.errs) == 0:
		return nil, err
	case err != nil:
		var more ValidationErrors
		if !errors.As(err, &more) {
			var ve *ValidationError
			if errors.As(err, &ve) {
				more = ValidationErrors{ve}
			}
		}
		return nil, append(d.errs, more...)
	case len(d.errs) > 0:
		// Every value was read: the reports go back too, so the caller can check what the
		// decoder cannot (policy ids) and report all problems at once.
		return reports, d.errs
	}
	return reports, nil
}

const maxPooledBuffer = 4 << 20

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// minReportJSON is about the shortest JSON of one report, used to size the result up front.
const minReportJSON = 90

type decoder struct {
	data    []byte
	pos     int
	max     int
	scratch []byte // unescaped strings
	// errs holds the problems with values that were read whole, so decoding goes on past
	// them and the client learns every one at once.
	errs ValidationErrors
}

// note records a problem with a value that was read whole and lets decoding go on; past
// MaxValidationErrors it stops the decoding.
func (d *decoder) note(ve *ValidationError) error {
	d.errs = append(d.errs, ve)
	if len(d.errs) >= MaxValidationErrors {
		errs := d.errs
		d.errs = nil
		return errs
	}
	return nil
}

func (d *decoder) batch() ([]Report, error) {
	members, err := d.open(-1, "")
	if err != nil {
		return nil, err
	}
	var reports []Report
	seen := false
	for members {
		k, err := d.key(-1, "")
		if err != nil {
			return nil, err
		}
		if string(k) != "reports" {
			return nil, &ValidationError{Index: -1, Field: fieldName(k), Message: "unknown field"}
		}
		if seen {
			return nil, &ValidationError{Index: -1, Field: "reports", Message: "duplicate field"}
		}
		seen = true
		if reports, err = d.reports(); err != nil {
			return nil, err
		}
		if members, err = d.next('}', -1, ""); err != nil {
			return nil, err
		}
	}
	d.ws()
	if d.pos != len(d.data) {
		return nil, &ValidationError{Index: -1, Message: fmt.Sprintf("invalid JSON at offset %d: data after the batch object", d.pos),
			Kind: MalformedJSON}
	}
	if !seen {
		return nil, &ValidationError{Index: -1, Field: "reports", Message: "is required"}
	}
	return reports, nil
}

func (d *decoder) reports() ([]Report, error) {
	if d.pos >= len(d.data) || d.data[d.pos] != '[' {
		return nil, d.typeErr(-1, "reports", "an array")
	}
	d.pos++
	d.ws()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		return []Report{}, nil
	}
	n := (len(d.data)-d.pos)/minReportJSON + 1
	if d.max > 0 {
		n = min(n, d.max)
	}
	reports := make([]Report, 0, n)
	ids := make([]int64, 0, n) // backing store of the PolicyID pointers
	for {
		i := len(reports)
		if d.max > 0 && i == d.max {
			return nil, &ValidationError{Index: -1, Field: "reports",
				Message: fmt.Sprintf("more than %d reports", d.max), Kind: TooManyReports}
		}
		reports = append(reports, Report{})
		if len(ids) == cap(ids) {
			// Reallocating would leave earlier pointers on the old array, which is still correct.
			ids = make([]int64, 0, n)
		}
		r := &reports[i]
		hasID, err := d.report(i, r, &ids)
		if err != nil {
			return nil, err
		}
		if hasID {
			r.PolicyID = &ids[len(ids)-1]
		}
		more, err := d.next(']', -1, "reports")
		if err != nil {
			return nil, err
		}
		if !more {
			return reports, nil
		}
	}
}

// Member bits, to find duplicate and missing fields.
const (
	fPolicyID = 1 << iota
	fFlow
	fPackets
	fBytes
	fSrcIP
	fDstIP
	fSrcPort
	fDstPort
	fProtocol
	fPathID
)

// member names a known member of an object: its bit and its path below the report.
type member struct {
	bit  uint
	name string
	path string
}

// lookupMember finds k among members, nil if it is unknown.
func lookupMember(k []byte, members []member) *member {
	for i := range members {
		if string(k) == members[i].name {
			return &members[i]
		}
	}
	return nil
}

var (
	reportMembers = []member{{fPolicyID, "policy_id", "policy_id"}, {fFlow, "flow", "flow"},
		{fPackets, "packets", "packets"}, {fBytes, "bytes", "bytes"}, {fPathID, "path_id", "path_id"}}
	flowMembers = []member{{fSrcIP, "src_ip", "flow.src_ip"}, {fDstIP, "dst_ip", "flow.dst_ip"},
		{fSrcPort, "src_port", "flow.src_port"}, {fDstPort, "dst_port", "flow.dst_port"},
		{fProtocol, "protocol", "flow.protocol"}}
)

// members reads the members of an object whose '{' is consumed, calling value for each
// known one once; it rejects unknown and duplicate members and reports which were seen.
func (d *decoder) members(i int, prefix string, known []member, value func(bit uint, path string) error) (seen uint, err error) {
	more := true
	for more {
		k, err := d.key(i, prefix)
		if err != nil {
			return 0, err
		}
		m := lookupMember(k, known)
		if m == nil {
			name := fieldName(k)
			if prefix != "" {
				name = prefix + "." + name
			}
			return 0, &ValidationError{Index: i, Field: fieldPath(i, name), Message: "unknown field"}
		}
		if seen&m.bit != 0 {
			return 0, &ValidationError{Index: i, Field: fieldPath(i, m.path), Message: "duplicate field"}
		}
		seen |= m.bit
		if err := value(m.bit, m.path); err != nil {
			return 0, err
		}
		if more, err = d.next('}', i, prefix); err != nil {
			return 0, err
		}
	}
	return seen, nil
}

func required(i int, seen uint, need []member) error {
	for _, m := range need {
		if seen&m.bit == 0 {
			return &ValidationError{Index: i, Field: fieldPath(i, m.path), Message: "is required"}
		}
	}
	return nil
}

// required notes every member of need an object that was read whole lacks.
func (d *decoder) required(i int, seen uint, need []member) error {
	for _, m := range need {
		if seen&m.bit == 0 {
			if err := d.note(&ValidationError{Index: i, Field: fieldPath(i, m.path), Message: "is required"}); err != nil {
				return err
			}
		}
	}
	return nil
}

var (
	reportRequired = []member{reportMembers[1], reportMembers[2], reportMembers[3]}
	flowRequired   = flowMembers // openapi.yaml's FlowKey requires all five; ICMP sends ports 0
)

func (d *decoder) report(i int, r *Report, ids *[]int64) (hasID bool, err error) {
	d.ws()
	more, err := d.open(i, "")
	if err != nil || !more {
		if err == nil {
			err = required(i, 0, reportRequired)
		}
		return false, err
	}
	seen, err := d.members(i, "", reportMembers, func(bit uint, path string) error {
		var err error
		switch bit {
		case fPolicyID:
			if d.pos < len(d.data) && d.data[d.pos] == 'n' {
				return d.null(i, path)
			}
			noted := len(d.errs)
			v, err := d.uint(i, path, math.MaxInt64)
			if err != nil || len(d.errs) > noted {
				return err
			}
			if v == 0 {
				return d.note(&ValidationError{Index: i, Field: fieldPath(i, path), Message: "must be a positive integer"})
			}
			*ids = append(*ids, int64(v))
			hasID = true
		case fPathID:
			if d.pos < len(d.data) && d.data[d.pos] == 'n' {
				return d.null(i, path)
			}
			noted := len(d.errs)
			v, err := d.uint(i, path, math.MaxInt64)
			if err != nil || len(d.errs) > noted {
				return err
			}
			if v == 0 {
				return d.note(&ValidationError{Index: i, Field: fieldPath(i, path), Message: "must be a positive integer"})
			}
			r.PathID = int64(v)
		case fFlow:
			err = d.flow(i, &r.Flow)
		case fPackets:
			r.Packets, err = d.uint(i, path, MaxCount)
		case fBytes:
			r.Bytes, err = d.uint(i, path, MaxCount)
		}
		return err
	})
	if err != nil {
		return false, err
	}
	return hasID, d.required(i, seen, reportRequired)
}

func (d *decoder) flow(i int, f *FlowKey) error {
	more, err := d.open(i, "flow")
	if err != nil || !more {
		if err == nil {
			err = required(i, 0, flowRequired)
		}
		return err
	}
	seen, err := d.members(i, "flow", flowMembers, func(bit uint, path string) error {
		var err error
		var v uint64
		switch bit {
		case fSrcIP:
			f.SrcIP, err = d.addr(i, path)
		case fDstIP:
			f.DstIP, err = d.addr(i, path)
		case fSrcPort:
			v, err = d.uint(i, path, math.MaxUint16)
			f.SrcPort = uint16(v)
		case fDstPort:
			v, err = d.uint(i, path, math.MaxUint16)
			f.DstPort = uint16(v)
		case fProtocol:
			v, err = d.uint(i, path, math.MaxUint8)
			f.Protocol = uint8(v)
		}
		return err
	})
	if err != nil {
		return err
	}
	return d.required(i, seen, flowRequired)
}

func (d *decoder) addr(i int, field string) (netip.Addr, error) {
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return netip.Addr{}, d.typeErr(i, field, "a string")
	}
	s, err := d.str(i, field)
	if err != nil {
		return netip.Addr{}, err
	}
	// ParseAddr keeps no reference to its argument, so viewing the bytes is safe.
	a, err := netip.ParseAddr(unsafe.String(unsafe.SliceData(s), len(s)))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, d.note(&ValidationError{Index: i, Field: fieldPath(i, field),
			Message: fmt.Sprintf("%s is not an IP address without zone", truncateQuote(s))})
	}
	return a.Unmap(), nil
}

// uint reads a non-negative integer no larger than max.
func (d *decoder) uint(i int, field string, max uint64) (uint64, error) {
	start := d.pos
	if d.pos >= len(d.data) || d.data[d.pos] < '0' || d.data[d.pos] > '9' {
		if d.pos < len(d.data) && d.data[d.pos] == '-' {
			if err := d.number(i, field); err != nil {
				return 0, err
			}
			return 0, d.note(&ValidationError{Index: i, Field: fieldPath(i, field), Message: "must not be negative"})
		}
		return 0, d.typeErr(i, field, "an integer")
	}
	var v uint64
	overflow := false
	for d.pos < len(d.data) {
		c := d.data[d.pos] - '0'
		if c > 9 {
			break
		}
		if v > (math.MaxUint64-uint64(c))/10 {
			overflow = true
		}
		v = v*10 + uint64(c)
		d.pos++
	}
	if d.data[start] == '0' && d.pos-start > 1 {
		d.pos = start + 1
		return 0, d.syntax(i, field, "',' or '}' after a leading zero")
	}
	if d.pos < len(d.data) {
		if c := d.data[d.pos]; c == '.' || c == 'e' || c == 'E' {
			d.pos = start
			if err := d.number(i, field); err != nil {
				return 0, err
			}
			return 0, d.note(&ValidationError{Index: i, Field: fieldPath(i, field), Message: "must be an integer"})
		}
	}
	if overflow || v > max {
		return 0, d.note(&ValidationError{Index: i, Field: fieldPath(i, field), Message: fmt.Sprintf("must be at most %d", max)})
	}
	return v, nil
}
