package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// A record on disk is a frame: payload length (uint32, little endian), CRC-32C of the payload
// (uint32), then the payload. The payload's first byte is its kind.
const frameHeader = 8

// Record kinds.
const (
	kindDeltas byte = 'D' // one acknowledged batch: per-policy packets and bytes
	kindCut    byte = 'C' // a flush: its timestamp and the active flows per policy
	// kindSeriesDeltas is kindDeltas with a path id per delta (0 for a policy's). It is
	// written only for batches with path traffic, so a spool without any stays readable by
	// a build that knows only kindDeltas; every build since reads both.
	kindSeriesDeltas byte = 'S'
)

// maxRecord bounds a payload, so that a corrupt length cannot make a reader allocate
// gigabytes: a batch of 10,000 reports on 10,000 policies stays far below it.
const maxRecord = 16 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt is a frame whose length or checksum is wrong: a torn write at the tail, or
// damage on disk.
var errCorrupt = errors.New("corrupt spool record")

// Delta is one policy's traffic in an acknowledged batch (PolicyID 0: the unclassified
// traffic), or, with a PathID, one path's (PolicyID is then 0).
type Delta struct {
	PolicyID int64
	PathID   int64
	Packets  int64
	Bytes    int64
}

// appendFrame appends the frame of payload to b.
func appendFrame(b, payload []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(payload, crcTable))
	return append(b, payload...)
}

// encodeDeltas returns the payload of a deltas record: kindDeltas when no delta has a path,
// kindSeriesDeltas otherwise.
func encodeDeltas(b []byte, deltas []Delta) []byte {
	kind := kindDeltas
	for _, d := range deltas {
		if d.PathID != 0 {
			kind = kindSeriesDeltas
			break
		}
	}
	b = append(b, kind)
	b = binary.AppendUvarint(b, uint64(len(deltas)))
	for _, d := range deltas {
		b = binary.AppendVarint(b, d.PolicyID)
		if kind == kindSeriesDeltas {
			b = binary.AppendVarint(b, d.PathID)
		}
		b = binary.AppendUvarint(b, uint64(d.Packets))
		b = binary.AppendUvarint(b, uint64(d.Bytes))
	}
	return b
}

// cut is a flush boundary: the points of a flush are the sums of the deltas records between
// the previous cut and this one, stamped with at, so a replay computes the same points.
type cut struct {
	at          int64 // unix nanoseconds
	activeFlows map[int64]int64
}

func encodeCut(b []byte, c cut) []byte {
	b = append(b, kindCut)
	b = binary.AppendVarint(b, c.at)
	b = binary.AppendUvarint(b, uint64(len(c.activeFlows)))
	for id, n := range c.activeFlows {
		b = binary.AppendVarint(b, id)
		b = binary.AppendUvarint(b, uint64(n))
	}
	return b
}

// payloadReader reads the varints of a payload, remembering the first error.
type payloadReader struct {
	b   []byte
	err error
}

func (r *payloadReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *payloadReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a length that must fit in the rest of the payload (each entry is >= 2 bytes).
func (r *payloadReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err = errCorrupt
		return 0
	}
	return int(n)
}

// decodeDeltas calls fn for each delta of a deltas payload of kind (kindDeltas or
// kindSeriesDeltas; kind byte removed).
func decodeDeltas(kind byte, p []byte, fn func(Delta)) error {
	r := payloadReader{b: p}
	n := r.count()
	for i := 0; i < n && r.err == nil; i++ {
		d := Delta{PolicyID: r.varint()}
		if kind == kindSeriesDeltas {
			d.PathID = r.varint()
		}
		d.Packets, d.Bytes = int64(r.uvarint()), int64(r.uvarint())
		if r.err == nil {
			if d.Packets < 0 || d.Bytes < 0 {
				return fmt.Errorf("%w: negative delta", errCorrupt)
			}
			if d.PathID < 0 || (d.PathID != 0 && d.PolicyID != 0) {
				return fmt.Errorf("%w: delta of a policy and a path", errCorrupt)
			}
			fn(d)
		}
	}
	return r.err
}

func decodeCut(p []byte) (cut, error) {
	r := payloadReader{b: p}
	c := cut{at: r.varint()}
	n := r.count()
	c.activeFlows = make(map[int64]int64, n)
	for i := 0; i < n && r.err == nil; i++ {
		id := r.varint()
		n := int64(r.uvarint())
		if n < 0 {
			return cut{}, fmt.Errorf("%w: negative active flows", errCorrupt)
		}
		c.activeFlows[id] = n
	}
	return c, r.err
}
