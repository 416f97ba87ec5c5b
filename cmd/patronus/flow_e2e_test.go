package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/patronus-sdwan/patronus/api/apigen"
)

// pcapFlow is one flow of the generated capture: count packets of IP length ipLen each.
type pcapFlow struct {
	src, dst     string
	sport, dport uint16
	tcp          bool
	count        int
	payload      int
}

// writeCapture writes the flows to an Ethernet pcap file, packets a millisecond apart,
// interleaved or (sequential) one flow after the other, and returns the IP length of each
// flow's packets.
func writeCapture(t *testing.T, path string, flows []pcapFlow, sequential bool) []int {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	var order []int // the flow of each packet in turn
	if sequential {
		for i, fl := range flows {
			for range fl.count {
				order = append(order, i)
			}
		}
	} else {
		for n := 0; len(order) < totalPackets(flows); n++ {
			for i, fl := range flows {
				if n < fl.count {
					order = append(order, i)
				}
			}
		}
	}
	ipLens := make([]int, len(flows))
	sent := make([]int, len(flows))
	ts := time.Unix(1_700_000_000, 0)
	for _, i := range order {
		fl, n := flows[i], sent[i]
		sent[i]++
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: net.ParseIP(fl.src).To4(), DstIP: net.ParseIP(fl.dst).To4()}
		var l4 gopacket.SerializableLayer
		if fl.tcp {
			ip.Protocol = layers.IPProtocolTCP
			tcp := &layers.TCP{SrcPort: layers.TCPPort(fl.sport), DstPort: layers.TCPPort(fl.dport), ACK: true, PSH: true, Seq: uint32(1 + n*fl.payload), Window: 512}
			_ = tcp.SetNetworkLayerForChecksum(ip)
			l4 = tcp
		} else {
			ip.Protocol = layers.IPProtocolUDP
			udp := &layers.UDP{SrcPort: layers.UDPPort(fl.sport), DstPort: layers.UDPPort(fl.dport)}
			_ = udp.SetNetworkLayerForChecksum(ip)
			l4 = udp
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			eth, ip, l4, gopacket.Payload(make([]byte, fl.payload))); err != nil {
			t.Fatal(err)
		}
		data := buf.Bytes()
		ipLens[i] = len(data) - 14
		ts = ts.Add(time.Millisecond)
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(data), Length: len(data)}, data); err != nil {
			t.Fatal(err)
		}
	}
	return ipLens
}

func totalPackets(flows []pcapFlow) int {
	n := 0
	for _, fl := range flows {
		n += fl.count
	}
	return n
}

// softflowd runs Debian's softflowd on a capture, exporting to collector with NetFlow
// version (9 or 10): it reads the file when asked for statistics, exports every flow on
// expire-all, then stops at the end of the capture (PITFALLS.md).
func softflowd(t *testing.T, capture, collector string, version int, extra ...string) {
	t.Helper()
	if _, err := exec.LookPath("softflowd"); err != nil {
		t.Fatal("softflowd is not installed: .ci/with-services installs it (apt-get install softflowd)")
	}
	ctl := filepath.Join(t.TempDir(), "softflowd.ctl")
	args := append([]string{"-d", "-r", capture, "-n", collector, "-v", strconv.Itoa(version), "-c", ctl}, extra...)
	cmd := exec.Command("softflowd", args...)
	out := &syncedOutput{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	ctlcmd := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			b, err := exec.Command("softflowctl", "-c", ctl, what).CombinedOutput()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("softflowctl %s: %v: %s (softflowd: %s)", what, err, b, out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	ctlcmd("statistics")
	ctlcmd("expire-all")
	// Having exported everything, softflowd ends by itself at the capture's end; shutdown
	// is for a softflowd that does not.
	select {
	case <-done:
		return
	case <-time.After(5 * time.Second):
		_ = exec.Command("softflowctl", "-c", ctl, "shutdown").Run()
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("softflowd did not stop: %s", out.String())
	}
}

// freeUDPAddr returns a loopback UDP address nothing listens on.
func freeUDPAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().String()
}

// TestSoftflowdToHistory exports a generated capture with softflowd, as NetFlow v9 and as
// IPFIX, to a running Patronus: each policy's live counters and its history equal the
// capture's packets and IP bytes exactly, and softflowd is listed as an exporter. With
// softflowd sampling 1 packet in 100 (it declares so in its options records: v9
// SAMPLING_INTERVAL 100, IPFIX samplingPacketInterval 1 and samplingPacketSpace 99), the
// sampled packets scaled by 100 give the capture's totals again.
func TestSoftflowdToHistory(t *testing.T) {
	mixed := []pcapFlow{
		{src: "10.1.0.1", dst: "192.0.2.10", sport: 40001, dport: 443, tcp: true, count: 40, payload: 1000},
		{src: "10.1.0.2", dst: "192.0.2.11", sport: 40002, dport: 53, count: 25, payload: 60},
		{src: "10.2.0.1", dst: "192.0.2.12", sport: 40003, dport: 5060, count: 30, payload: 333},
		{src: "10.2.0.2", dst: "192.0.2.12", sport: 40004, dport: 5061, tcp: true, count: 7, payload: 1400},
		{src: "172.16.0.1", dst: "192.0.2.13", sport: 40005, dport: 80, tcp: true, count: 11, payload: 10},
	}
	// Sampled: softflowd takes every 100th packet of the capture, whatever its flow; with
	// the flows one after the other and multiples of 100 packets long, each flow has
	// exactly a hundredth of its packets sampled.
	sampled := []pcapFlow{
		{src: "10.1.0.1", dst: "192.0.2.10", sport: 40001, dport: 443, count: 3000, payload: 500},
		{src: "10.2.0.1", dst: "192.0.2.12", sport: 40003, dport: 5060, count: 2000, payload: 200},
		{src: "172.16.0.1", dst: "192.0.2.13", sport: 40005, dport: 80, count: 1000, payload: 100},
	}
	for _, tc := range []struct {
		name    string
		version int
		flows   []pcapFlow
		rate    int
	}{
		{"v9", 9, mixed, 1}, {"ipfix", 10, mixed, 1},
		{"v9-sampled-1-in-100", 9, sampled, 100}, {"ipfix-sampled-1-in-100", 10, sampled, 100},
	} {
		t.Run(tc.name, func(t *testing.T) { softflowdCase(t, tc.version, tc.flows, tc.rate) })
	}
}

func softflowdCase(t *testing.T, version int, flows []pcapFlow, rate int) {
	capture := filepath.Join(t.TempDir(), "flows.pcap")
	ipLens := writeCapture(t, capture, flows, rate > 1)
	nfAddr := freeUDPAddr(t)
	base := serveFlows(t, "flow-e2e", "--netflow-listen", nfAddr)
	ids := map[string]int64{}
	for i, cidr := range []string{"10.1.0.0/16", "10.2.0.0/16"} {
		var p apigen.Policy
		call(t, http.MethodPost, base+"/api/v1/policies", map[string]any{
			"name": "flow-" + cidr, "priority": 10 + i, "match": map[string]any{"src_cidr": cidr},
			"action": map[string]any{"type": "drop"},
		}, &p, http.StatusCreated)
		ids[cidr] = p.ID
	}
	want := map[int64][2]int64{}
	var unclassified [2]int64
	for i, fl := range flows {
		id, ok := ids[policyPrefixOf(fl.src)]
		if !ok {
			unclassified = [2]int64{unclassified[0] + int64(fl.count), unclassified[1] + int64(fl.count*ipLens[i])}
			continue
		}
		tot := want[id]
		want[id] = [2]int64{tot[0] + int64(fl.count), tot[1] + int64(fl.count*ipLens[i])}
	}
	if len(want) == 0 {
		t.Fatal("no flow of the capture matches a policy")
	}

	var extra []string
	if rate > 1 {
		extra = []string{"-s", strconv.Itoa(rate)}
	}
	softflowd(t, capture, nfAddr, version, extra...)

	deadline := time.Now().Add(20 * time.Second)
	for got := historyTotals(t, base); !sameTotals(got, want); got = historyTotals(t, base) {
		if time.Now().After(deadline) {
			t.Fatalf("history totals %v, want the capture's %v", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for id, w := range want {
		var st apigen.PolicyStats
		call(t, http.MethodGet, fmt.Sprintf("%s/api/v1/policies/%d/stats", base, id), nil, &st, http.StatusOK)
		if st.PacketsMatched != w[0] || st.BytesMatched != w[1] {
			t.Errorf("policy %d live: %d packets %d bytes, want %d and %d", id, st.PacketsMatched, st.BytesMatched, w[0], w[1])
		}
	}
	var g apigen.GlobalStats
	call(t, http.MethodGet, base+"/api/v1/stats", nil, &g, http.StatusOK)
	if g.UnclassifiedPackets != unclassified[0] || g.UnclassifiedBytes != unclassified[1] {
		t.Errorf("unclassified %d packets %d bytes, want %d and %d", g.UnclassifiedPackets, g.UnclassifiedBytes, unclassified[0], unclassified[1])
	}
	var ex apigen.ExporterList
	call(t, http.MethodGet, base+"/api/v1/exporters", nil, &ex, http.StatusOK)
	wantProto := apigen.ExporterProtocolNetflow
	if version == 10 {
		wantProto = apigen.ExporterProtocolIpfix
	}
	if len(ex.Items) != 1 || ex.Items[0].Protocol != wantProto || ex.Items[0].Version != version || ex.Items[0].SamplingRate != int64(rate) ||
		ex.Items[0].FlowRecords != int64(len(flows)) || ex.Items[0].DecodeErrors != 0 || ex.Items[0].UnknownTemplates != 0 {
		t.Errorf("exporters %+v, want softflowd with %d flow records at 1 in %d", ex.Items, len(flows), rate)
	}
}

// syncedOutput collects a child process's output for failure messages.
type syncedOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *syncedOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *syncedOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// policyPrefixOf is the /16 of an IPv4 address, the key of the test's policies.
func policyPrefixOf(addr string) string {
	return netip.PrefixFrom(netip.MustParseAddr(addr), 16).Masked().String()
}

// TestPmacctSFlowToHistory exports a generated capture as sFlow with pmacct's sfprobe
// (Debian's pmacct: pmacctd reading the capture, sampling every packet, one raw-header
// flow sample each) to a running Patronus: each policy's live counters and history equal
// the capture's packets and IP bytes. pmacctd drops the samples still buffered when it
// reaches the end of the capture, so the capture ends with packets of a flow no policy
// matches, and only their count is left unchecked.
func TestPmacctSFlowToHistory(t *testing.T) {
	if _, err := exec.LookPath("pmacctd"); err != nil {
		t.Fatal("pmacctd is not installed: .ci/with-services installs it (apt-get install pmacct)")
	}
	flows := []pcapFlow{
		{src: "10.1.0.1", dst: "192.0.2.10", sport: 40001, dport: 443, tcp: true, count: 40, payload: 1000},
		{src: "10.1.0.2", dst: "192.0.2.11", sport: 40002, dport: 53, count: 25, payload: 60},
		{src: "10.2.0.1", dst: "192.0.2.12", sport: 40003, dport: 5060, count: 30, payload: 333},
		{src: "10.2.0.2", dst: "192.0.2.12", sport: 40004, dport: 5061, tcp: true, count: 7, payload: 1400},
	}
	tail := pcapFlow{src: "172.16.0.1", dst: "192.0.2.13", sport: 40005, dport: 80, count: 200, payload: 10}
	dir := t.TempDir()
	capture := filepath.Join(dir, "flows.pcap")
	ipLens := writeCapture(t, capture, append(append([]pcapFlow{}, flows...), tail), true)

	sfAddr := freeUDPAddr(t)
	base := serveFlows(t, "sflow-e2e", "--sflow-listen", sfAddr)
	want := map[int64][2]int64{}
	for i, cidr := range []string{"10.1.0.0/16", "10.2.0.0/16"} {
		var p apigen.Policy
		call(t, http.MethodPost, base+"/api/v1/policies", map[string]any{
			"name": "sflow-" + cidr, "priority": 10 + i, "match": map[string]any{"src_cidr": cidr},
			"action": map[string]any{"type": "drop"},
		}, &p, http.StatusCreated)
		for j, fl := range flows {
			if policyPrefixOf(fl.src) == cidr {
				tot := want[p.ID]
				want[p.ID] = [2]int64{tot[0] + int64(fl.count), tot[1] + int64(fl.count*ipLens[j])}
			}
		}
	}

	conf := filepath.Join(dir, "pmacctd.conf")
	err := os.WriteFile(conf, []byte("daemonize: false\npcap_savefile: "+capture+"\nplugins: sfprobe\n"+
		"sfprobe_receiver: "+sfAddr+"\nsfprobe_agentip: 127.0.0.1\nsampling_rate: 1\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("pmacctd", "-f", conf)
	out := &syncedOutput{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-exited: // it stops by itself at the end of the capture
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("pmacctd did not stop: %s", out.String())
	}

	deadline := time.Now().Add(20 * time.Second)
	for got := historyTotals(t, base); !sameTotals(got, want); got = historyTotals(t, base) {
		if time.Now().After(deadline) {
			t.Fatalf("history totals %v, want the capture's %v (pmacctd: %s)", got, want, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for id, w := range want {
		var st apigen.PolicyStats
		call(t, http.MethodGet, fmt.Sprintf("%s/api/v1/policies/%d/stats", base, id), nil, &st, http.StatusOK)
		if st.PacketsMatched != w[0] || st.BytesMatched != w[1] {
			t.Errorf("policy %d live: %d packets %d bytes, want %d and %d", id, st.PacketsMatched, st.BytesMatched, w[0], w[1])
		}
	}
	var ex apigen.ExporterList
	call(t, http.MethodGet, base+"/api/v1/exporters", nil, &ex, http.StatusOK)
	if len(ex.Items) != 1 || ex.Items[0].Protocol != apigen.ExporterProtocolSflow || ex.Items[0].Version != 5 ||
		ex.Items[0].SamplingRate != 1 || ex.Items[0].DecodeErrors != 0 || ex.Items[0].FlowRecords < int64(totalPackets(flows)) {
		t.Errorf("exporters %+v, want pmacct's sfprobe with at least %d flow records", ex.Items, totalPackets(flows))
	}
}

// serveFlows runs serve in-process on a SQLite database of its own, with a 100 ms flush
// interval and the flow listener flag given, until the test ends; it returns the API's base URL.
func serveFlows(t *testing.T, instance, listenFlag, listenAddr string) string {
	t.Helper()
	addr, dbPath := freeAddr(t), filepath.Join(t.TempDir(), "patronus.db")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--database-url", dbPath,
			"--admin-token", e2eAdminToken, "--flush-interval", "100ms", "--instance", instance,
			"--listen", addr, listenFlag, listenAddr}, io.Discard, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve returned %v", err)
		}
	})
	base := "http://" + addr
	waitFor(t, base+"/healthz", done)
	return base
}
