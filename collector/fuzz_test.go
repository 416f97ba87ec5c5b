package collector

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(`{"reports":[` + validReport + `]}`))
	f.Add([]byte(`{"reports":[{"flow":{"src_ip":"::ffff:1.2.3.4","dst_ip":"fe80::1","protocol":0},"packets":0,"bytes":0,"policy_id":null}]}`))
	f.Add([]byte(`{"reports":[{"flow":{"src\u005fip":"1.2.3.4","dst_ip":"\u0032.2.2.2","protocol":255,"src_port":65535},"packets":18446744073709551615,"bytes":1}]}`))
	f.Add([]byte(`{"reports":[{"flow":{"src_ip":"1.2.3.4","dst_ip":"2.2.2.2","protocol":6,"src_port":1,"dst_port":2},"packets":9223372036854775807,"bytes":9223372036854775808}]}`))
	f.Add([]byte(`{"reports":[]}`))
	f.Add([]byte(` {"reports" : [ ` + validReport + ` , ` + validReport + ` ] } `))
	f.Add([]byte(`{"reports":[{"packets":1e3}]}`))
	f.Add([]byte(`{"reports":[{"flow":{"src_ip":"\ud83d\ude00"}}]}`))
	f.Add([]byte(`{"reports":[` + strings.Replace(validReport, `"bytes":1800`, `"bytes":-0.5e-3`, 1) + `]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		const limit = 20
		reports, err := DecodeBatch(bytes.NewReader(body), limit)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v is not a ValidationError", err)
			}
			if ve.Message == "" || (ve.Index >= 0 && !strings.HasPrefix(ve.Field, "reports[")) {
				t.Fatalf("unhelpful error %+v", ve)
			}
			var all ValidationErrors
			if errors.As(err, &all) {
				for _, e := range all {
					if e.Kind != InvalidValue && reports != nil {
						t.Fatal("reports returned beside malformed JSON")
					}
				}
				if len(all) > MaxValidationErrors {
					t.Fatalf("%d errors, over the bound", len(all))
				}
			} else if reports != nil {
				t.Fatal("reports returned with an error")
			}
			if len(reports) > limit {
				t.Fatalf("%d reports, over the limit", len(reports))
			}
			return
		}
		if len(reports) > limit {
			t.Fatalf("%d reports, over the limit", len(reports))
		}
		for i, r := range reports {
			if !r.Flow.SrcIP.IsValid() || !r.Flow.DstIP.IsValid() || r.Flow != r.Flow.Normalize() {
				t.Fatalf("report %d has a bad flow %+v", i, r.Flow)
			}
			if r.PolicyID != nil && *r.PolicyID <= 0 {
				t.Fatalf("report %d has policy %d", i, *r.PolicyID)
			}
			if r.Packets > MaxCount || r.Bytes > MaxCount {
				t.Fatalf("report %d has counts %d/%d beyond the int64 range", i, r.Packets, r.Bytes)
			}
		}
		again, err := DecodeBatch(bytes.NewReader(AppendBatchJSON(nil, reports)), limit)
		if err != nil || !reflect.DeepEqual(again, reports) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, reports, again)
		}
		// Whatever the scanner accepts, encoding/json accepts too and reads the same.
		std, err := decodeStdlibStrict(body)
		if err != nil {
			t.Fatalf("accepted here but encoding/json says %v", err)
		}
		if !reflect.DeepEqual(std, reports) {
			t.Fatalf("encoding/json reads\n%+v\nwe read\n%+v", std, reports)
		}
	})
}

// decodeStdlibStrict decodes with encoding/json, rejecting trailing data too.
func decodeStdlibStrict(body []byte) ([]Report, error) {
	reports, err := decodeStdlib(body)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var skip json.RawMessage
	if err := dec.Decode(&skip); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	if len(reports) == 0 {
		reports = []Report{}
	}
	return reports, nil
}

// fuzzBytes hands out the fuzzer's bytes as the values that build policies and flows.
type fuzzBytes struct{ b []byte }

func (f *fuzzBytes) byte() byte {
	if len(f.b) == 0 {
		return 0
	}
	c := f.b[0]
	f.b = f.b[1:]
	return c
}

func (f *fuzzBytes) u16() uint16 { return uint16(f.byte())<<8 | uint16(f.byte()) }

// addr makes an address from few bytes, so that policies and flows often overlap.
func (f *fuzzBytes) addr() netip.Addr {
	kind := f.byte()
	switch kind % 4 {
	case 0:
		return netip.AddrFrom4([4]byte{10, f.byte() % 4, f.byte(), f.byte()})
	case 1:
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, f.byte() % 4, 14: f.byte(), 15: f.byte()})
	case 2:
		return netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 10, 13: f.byte() % 4, 14: f.byte(), 15: f.byte()})
	default:
		return netip.AddrFrom4([4]byte{f.byte(), f.byte(), f.byte(), f.byte()})
	}
}

func (f *fuzzBytes) cidr() string {
	if f.byte()%3 == 0 {
		return ""
	}
	a := f.addr()
	return netip.PrefixFrom(a, int(f.byte())%(a.BitLen()+1)).String()
}

func (f *fuzzBytes) ports() []PortRange {
	var rs []PortRange
	for range f.byte() % 3 {
		from := f.u16() % 2048
		rs = append(rs, PortRange{From: from, To: from + f.u16()%512})
	}
	return rs
}

func (f *fuzzBytes) flow() FlowKey {
	return FlowKey{SrcIP: f.addr(), DstIP: f.addr(), SrcPort: f.u16() % 2600, DstPort: f.u16() % 2600, Protocol: f.byte() % 3}
}

func FuzzClassify(f *testing.F) {
	f.Add([]byte{3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
	f.Add(bytes.Repeat([]byte{7, 0, 1, 255, 24, 2, 1, 0, 80, 0, 10}, 12))
	f.Add(bytes.Repeat([]byte{1, 2, 2, 9, 9, 100, 0, 1, 5}, 30))
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzBytes{b: data}
		policies := make([]Policy, int(in.byte())%70+1)
		for i := range policies {
			p := Policy{ID: int64(i + 1), Priority: int(in.byte() % 8), Enabled: in.byte()%5 != 0}
			if v := in.byte(); v%3 != 0 {
				p.Protocol = ptr(int(v % 3))
			}
			p.SrcCIDR, p.DstCIDR = in.cidr(), in.cidr()
			p.SrcPorts, p.DstPorts = in.ports(), in.ports()
			policies[i] = p
		}
		c := New(Config{})
		if err := c.SetPolicies(policies); err != nil {
			t.Fatalf("SetPolicies: %v", err)
		}
		for range 16 {
			k := in.flow()
			got, gotOK := c.Classify(k)
			want, wantOK := referenceMatch(policies, k)
			if got != want || gotOK != wantOK {
				t.Fatalf("flow %+v: Classify = %d, %v; reference = %d, %v\npolicies %+v", k, got, gotOK, want, wantOK, policies)
			}
		}
	})
}
