package flowexport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
	"github.com/netsampler/goflow2/v2/decoders/netflowlegacy"

	"github.com/patronus-sdwan/patronus/collector"
)

// Information elements read from NetFlow v9 and IPFIX records (the numbers are shared).
const (
	fieldInBytes          = 1
	fieldInPackets        = 2
	fieldProtocol         = 4
	fieldSrcPort          = 7
	fieldSrcIPv4          = 8
	fieldDstPort          = 11
	fieldDstIPv4          = 12
	fieldOutBytes         = 23
	fieldOutPackets       = 24
	fieldSrcIPv6          = 27
	fieldDstIPv6          = 28
	fieldSamplingInterval = 34
	fieldSamplerRandom    = 50
	fieldPacketInterval   = 305
	fieldPacketSpace      = 306
)

// restartWindow is how far a sequence number may go back before it counts as a restart
// rather than reordering; a sequence starting again (below 16, from past 64) counts too.
const restartWindow = 1024

// NetFlow decodes one datagram of the NetFlow socket (v5, v9 or IPFIX) from src and records
// its flow records.
func (d *Decoder) NetFlow(b *Batch, src netip.Addr, payload []byte) {
	version := uint16(0)
	if len(payload) >= 2 {
		version = binary.BigEndian.Uint16(payload)
	}
	switch version {
	case 5:
		d.netflowV5(b, src, payload)
	case 9, 10:
		d.netflowTemplated(b, src, payload, version)
	default:
		e := d.exporters.get(src, NetFlow)
		e.datagrams.Add(1)
		d.metrics.datagrams[NetFlow].Inc()
		d.decodeError(e, NetFlow)
	}
}

func (d *Decoder) netflowV5(b *Batch, src netip.Addr, payload []byte) {
	e := d.exporters.get(src, NetFlow)
	e.datagrams.Add(1)
	d.metrics.datagrams[NetFlow].Inc()
	var pkt netflowlegacy.PacketNetFlowV5
	if err := netflowlegacy.DecodeMessageVersion(bytes.NewBuffer(payload), &pkt); err != nil {
		d.decodeError(e, NetFlow)
		return
	}
	e.version.Store(5)
	rate := uint32(pkt.SamplingInterval & 0x3fff)
	rate = max(rate, 1)
	e.samplingRate.Store(rate)
	for _, r := range pkt.Records {
		k := collector.FlowKey{
			SrcIP: v4(uint32(r.SrcAddr)), DstIP: v4(uint32(r.DstAddr)),
			SrcPort: r.SrcPort, DstPort: r.DstPort, Protocol: r.Proto,
		}
		b.add(k, uint64(r.DPkts), uint64(r.DOctets), rate)
	}
	d.record(b, e, NetFlow)
}

func v4(a uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], a)
	return netip.AddrFrom4(b)
}

func (d *Decoder) netflowTemplated(b *Batch, src netip.Addr, payload []byte, version uint16) {
	p := NetFlow
	if version == 10 {
		p = IPFIX
	}
	e := d.exporters.get(src, p)
	e.datagrams.Add(1)
	d.metrics.datagrams[p].Inc()
	dom := d.checkRestart(e, payload, version)
	if version == 9 {
		payload = b.fixV9Count(payload)
	}

	var v9 netflow.NFv9Packet
	var ipfix netflow.IPFIXPacket
	err := netflow.DecodeMessageVersion(bytes.NewBuffer(payload), e.templates, &v9, &ipfix)
	if err != nil && !onlyUnknownTemplates(err) {
		d.decodeError(e, p)
		return
	}
	e.version.Store(int32(version))
	flowSets := v9.FlowSets
	if version == 10 {
		flowSets = ipfix.FlowSets
	}
	// Options first: a sampling rate announced in this datagram applies to its data.
	for _, fs := range flowSets {
		if opts, ok := fs.(netflow.OptionsDataFlowSet); ok {
			for _, r := range opts.Records {
				if rate, ok := samplingRate(r.OptionsValues); ok {
					e.mu.Lock()
					e.domainLocked(version, dom, maxDomains).sampling = rate
					e.mu.Unlock()
				}
			}
		}
	}
	e.mu.Lock()
	rate := max(e.domainLocked(version, dom, maxDomains).sampling, 1)
	e.mu.Unlock()
	e.samplingRate.Store(rate)
	for _, fs := range flowSets {
		switch set := fs.(type) {
		case netflow.RawFlowSet:
			// A data set whose template goflow2 found comes back raw (see dataTemplate);
			// one whose template is not known comes back raw too, with an error.
			t, _ := e.templates.GetTemplate(version, dom, set.Id)
			if dt, ok := t.(*dataTemplate); ok {
				b.addRecords(dt, set.Records, rate)
				continue
			}
			e.unknownTemplates.Add(1)
			d.metrics.unknownTemplates[p].Inc()
		}
	}
	d.record(b, e, p)
}

// fixV9Count makes the v9 header's count at least the number of sets the datagram holds.
// RFC 3954 counts records (templates and data) there, and goflow2 stops decoding after that
// many sets; softflowd 1.1.0 counts only its data records, so the data sets after its five
// template sets would be skipped. The count is rewritten in a copy, the caller's bytes stay.
func (b *Batch) fixV9Count(payload []byte) []byte {
	if len(payload) < 20 {
		return payload
	}
	sets := 0
	for rest := payload[20:]; len(rest) >= 4; sets++ {
		n := int(binary.BigEndian.Uint16(rest[2:]))
		if n < 4 || n > len(rest) {
			break
		}
		rest = rest[n:]
	}
	if sets <= int(binary.BigEndian.Uint16(payload[2:])) {
		return payload
	}
	b.scratch = append(b.scratch[:0], payload...)
	binary.BigEndian.PutUint16(b.scratch[2:], uint16(sets))
	return b.scratch
}

// onlyUnknownTemplates reports whether a decode error says no more than that some data sets
// had no template: goflow2 then still returns every other set, decoded.
func onlyUnknownTemplates(err error) bool {
	var fe *netflow.FlowError
	for _, e := range flatten(err) {
		if !errors.As(e, &fe) || !errors.Is(fe.Err, netflow.ErrorTemplateNotFound) {
			return false
		}
	}
	return true
}

// flatten unwraps the decoder's wrappers down to the errors it joined.
func flatten(err error) []error {
	for {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			var out []error
			for _, e := range j.Unwrap() {
				out = append(out, flatten(e)...)
			}
			return out
		}
		next := errors.Unwrap(err)
		if next == nil {
			return []error{err}
		}
		if _, ok := err.(*netflow.FlowError); ok {
			return []error{err}
		}
		err = next
	}
}

// checkRestart reads the header's observation domain and sequence number (and the v9
// uptime) and, when they went back, forgets the templates and sampling rate of that domain.
func (d *Decoder) checkRestart(e *exporter, payload []byte, version uint16) (domain uint32) {
	var seq, uptime uint32
	switch {
	case version == 9 && len(payload) >= 20:
		uptime = binary.BigEndian.Uint32(payload[4:])
		seq = binary.BigEndian.Uint32(payload[12:])
		domain = binary.BigEndian.Uint32(payload[16:])
	case version == 10 && len(payload) >= 16:
		seq = binary.BigEndian.Uint32(payload[8:])
		domain = binary.BigEndian.Uint32(payload[12:])
	default:
		return 0
	}
	e.mu.Lock()
	st := e.domainLocked(version, domain, maxDomains)
	restarted := false
	if st.seen {
		back := st.sequence - seq // how far the sequence went back, modulo 2^32
		if seq < st.sequence && back < 1<<31 && (back > restartWindow || seq < 16 && st.sequence > 64) {
			restarted = true
		}
		// v9 uptime is in milliseconds; going back by more than 10 s is a reboot.
		if version == 9 && uptime < st.uptime && st.uptime-uptime > 10_000 {
			restarted = true
		}
	}
	st.seen, st.sequence, st.uptime = true, seq, uptime
	if restarted {
		st.sampling = 0
	}
	e.mu.Unlock()
	if restarted {
		e.templates.dropDomain(version, domain)
		e.restarts.Add(1)
	}
	return domain
}

// addRecords turns the data records of a set into reports, reading each field in place.
// This is the one part of NetFlow v9/IPFIX decoding done here rather than by goflow2: its
// DecodeDataSetUsingFields boxes every field's bytes in an interface{}, one allocation per
// field, which was a third of the whole path's CPU time (bench/flow.txt). Records are read
// while the set holds at least a record's minimum size; a record cut short ends the set.
func (b *Batch) addRecords(t *dataTemplate, data []byte, rate uint32) {
	for len(data) >= t.minSize {
		var k collector.FlowKey
		var inBytes, inPackets, outBytes, outPackets uint64
		var haveIn, haveOut bool
		recordRate := rate
		for _, f := range t.fields {
			n := int(f.Length)
			if f.Length == 0xffff {
				if len(data) < 1 {
					return
				}
				n, data = int(data[0]), data[1:]
				if n == 255 {
					if len(data) < 2 {
						return
					}
					n, data = int(binary.BigEndian.Uint16(data)), data[2:]
				}
			}
			if n > len(data) {
				return
			}
			v := data[:n]
			data = data[n:]
			if f.PenProvided {
				continue
			}
			switch f.Type {
			case fieldInBytes:
				inBytes, haveIn = beUint(v), true
			case fieldInPackets:
				inPackets, haveIn = beUint(v), true
			case fieldOutBytes:
				outBytes, haveOut = beUint(v), true
			case fieldOutPackets:
				outPackets, haveOut = beUint(v), true
			case fieldProtocol:
				k.Protocol = uint8(beUint(v))
			case fieldSrcPort:
				k.SrcPort = uint16(beUint(v))
			case fieldDstPort:
				k.DstPort = uint16(beUint(v))
			case fieldSrcIPv4, fieldSrcIPv6:
				k.SrcIP = addrOf(v)
			case fieldDstIPv4, fieldDstIPv6:
				k.DstIP = addrOf(v)
			case fieldSamplingInterval, fieldSamplerRandom:
				if r := beUint(v); r > 1 && r <= 1<<32-1 {
					recordRate = uint32(r)
				}
			}
		}
		if !haveIn && haveOut {
			inBytes, inPackets = outBytes, outPackets
		}
		b.add(k, inPackets, inBytes, recordRate)
	}
}

// samplingRate reads the sampling rate an options record announces, if any.
func samplingRate(values []netflow.DataField) (uint32, bool) {
	var interval, space, other uint64
	var haveInterval, haveSpace bool
	for _, f := range values {
		v, ok := f.Value.([]byte)
		if !ok || f.PenProvided {
			continue
		}
		switch f.Type {
		case fieldPacketInterval:
			interval, haveInterval = beUint(v), true
		case fieldPacketSpace:
			space, haveSpace = beUint(v), true
		case fieldSamplingInterval, fieldSamplerRandom:
			other = beUint(v)
		}
	}
	rate := other
	if haveInterval && interval > 0 {
		rate = interval
		if haveSpace {
			rate = (interval + space) / interval
		}
	} else if haveSpace {
		return 0, false
	}
	if rate == 0 || rate > 1<<32-1 {
		return 0, false
	}
	return uint32(rate), true
}
