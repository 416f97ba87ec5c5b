package collector

import "strconv"

// AppendBatchJSON appends the JSON body of POST /api/v1/traffic for reports to dst, in the
// form DecodeBatch reads. It is for clients such as load generators and tests.
func AppendBatchJSON(dst []byte, reports []Report) []byte {
	dst = append(dst, `{"reports":[`...)
	for i := range reports {
		r := &reports[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '{')
		if r.PolicyID != nil {
			dst = append(dst, `"policy_id":`...)
			dst = strconv.AppendInt(dst, *r.PolicyID, 10)
			dst = append(dst, ',')
		}
		if r.PathID != 0 {
			dst = append(dst, `"path_id":`...)
			dst = strconv.AppendInt(dst, r.PathID, 10)
			dst = append(dst, ',')
		}
		dst = append(dst, `"flow":{"src_ip":"`...)
		dst = r.Flow.SrcIP.AppendTo(dst)
		dst = append(dst, `","dst_ip":"`...)
		dst = r.Flow.DstIP.AppendTo(dst)
		dst = append(dst, `","src_port":`...)
		dst = strconv.AppendUint(dst, uint64(r.Flow.SrcPort), 10)
		dst = append(dst, `,"dst_port":`...)
		dst = strconv.AppendUint(dst, uint64(r.Flow.DstPort), 10)
		dst = append(dst, `,"protocol":`...)
		dst = strconv.AppendUint(dst, uint64(r.Flow.Protocol), 10)
		dst = append(dst, `},"packets":`...)
		dst = strconv.AppendUint(dst, r.Packets, 10)
		dst = append(dst, `,"bytes":`...)
		dst = strconv.AppendUint(dst, r.Bytes, 10)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}
