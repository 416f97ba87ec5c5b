// Package flowexport takes flow exports straight from routers: NetFlow v5, v9 and IPFIX on one
// UDP socket, sFlow v5 on another. Datagrams are decoded with goflow2's decoders
// (github.com/netsampler/goflow2/v2/decoders: headers, sets, templates, options, sFlow
// samples), except the fields of NetFlow v9/IPFIX data records, which are read in place
// (goflow2 boxes each field in an interface{}, a third of the path's time; see
// bench/flow.txt); each flow record becomes a traffic report like
// one posted to the REST ingest (5-tuple, packets, bytes, classified against the policies), and
// the reports of one datagram are recorded into the collector as one batch.
//
// # Templates
//
// NetFlow v9 and IPFIX templates are kept per exporter address and observation domain (source
// id in v9), at most MaxTemplates per exporter, and expire TemplateTTL after they were last
// announced. Data records whose template is not (or no longer) known are not guessed: their
// sets are counted as unknown-template sets on the exporter and in
// patronus_flow_unknown_templates_total. An exporter restart (its sequence number going back,
// or for v9 its uptime going back) drops the templates and sampling rate of that observation
// domain, since a restarted exporter may reuse template ids for other layouts.
//
// # Sampling
//
// Counts are scaled by the exporter's sampling rate, so that a policy's packets and bytes
// estimate the traffic that crossed the router, not the traffic that was sampled:
//   - NetFlow v5: the header's sampling interval (its low 14 bits).
//   - NetFlow v9 and IPFIX: an options data record of the observation domain carrying
//     samplingInterval (34), samplerRandomInterval (50) or, in IPFIX, samplingPacketInterval
//     (305) with samplingPacketSpace (306), the rate then being (interval+space)/interval; a
//     data record carrying field 34 or 50 itself uses its own value. The rate stays in use until
//     the exporter announces another or restarts.
//   - sFlow: each flow sample's sampling_rate; one sample counts as sampling_rate packets and
//     sampling_rate times the sampled packet's IP length in bytes.
//
// A rate of 0 or 1 means unsampled. Bytes are IP bytes (IP header included, link layer not),
// which is what NetFlow's IN_BYTES/octetDeltaCount count.
//
// # Bounds
//
// Every queue and table is bounded: datagrams wait in a queue of QueueSize per listener and are
// dropped (and counted) when it is full, so the socket reader never blocks on decoding; at most
// MaxExporters exporters are kept (the least recently seen is forgotten first); templates are
// bounded per exporter. A datagram that does not decode is counted as a decode error and none
// of its records is recorded.
package flowexport
