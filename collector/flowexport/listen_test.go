package flowexport

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestListenersUDP(t *testing.T) {
	c := newTestCollector(t)
	d := NewDecoder(c, DecoderConfig{})
	l, err := Listen(d, ListenConfig{NetFlowAddr: "127.0.0.1:0", SFlowAddr: "127.0.0.1:0", Sockets: 2, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { l.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	nf, err := net.DialUDP("udp", nil, l.NetFlowAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nf.Close()
	e := &Encoder{Version: 10, TemplateID: 400}
	send := func(conn *net.UDPConn, b []byte) {
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	send(nf, e.Template())
	time.Sleep(50 * time.Millisecond) // the template must be decoded before the data
	for range 10 {
		send(nf, mustData(t, e, flow("10.1.0.1", "10.9.0.1", 1, 2, 1, 100)))
	}
	sf, err := net.DialUDP("udp", nil, l.SFlowAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	send(sf, sflowDatagram(t, sflowPacket{src: "10.2.0.1", dst: "10.9.0.1", sport: 1, dport: 2, payload: 72, samplingRate: 10}))

	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		p1, _ := policyCounts(t, c, 1)
		p2, _ := policyCounts(t, c, 2)
		if p1 == 10 && p2 == 10 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if p, by := policyCounts(t, c, 1); p != 10 || by != 1000 {
		t.Errorf("policy 1 over UDP: %d packets %d bytes, want 10 and 1000", p, by)
	}
	if p, by := policyCounts(t, c, 2); p != 10 || by != 1000 {
		t.Errorf("policy 2 over sFlow: %d packets %d bytes, want 10 and 1000", p, by)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(d)
	if n := testutil.ToFloat64(d.metrics.datagrams[IPFIX]); n != 11 {
		t.Errorf("ipfix datagrams metric %v, want 11", n)
	}
	if _, err := reg.Gather(); err != nil {
		t.Error(err)
	}
	if ex := exporterOf(t, d, "127.0.0.1", IPFIX); ex.FlowRecords != 10 {
		t.Errorf("exporter %+v", ex)
	}
}

// TestQueueDropsCounted fills the queue with no worker reading it: the reader must drop and
// count rather than block.
func TestQueueDropsCounted(t *testing.T) {
	d := NewDecoder(newTestCollector(t), DecoderConfig{})
	l, err := Listen(d, ListenConfig{NetFlowAddr: "127.0.0.1:0", Sockets: 1, Workers: 1, QueueSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { l.read(l.netflow[0], NetFlow); close(done) }()
	conn, err := net.DialUDP("udp", nil, l.NetFlowAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range 20 {
		if _, err := conn.Write([]byte{0, 10, 0, 16}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(d.metrics.queueDrops[NetFlow]) < 16 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := testutil.ToFloat64(d.metrics.queueDrops[NetFlow]); n != 16 {
		t.Errorf("queue drops %v, want 16 (20 sent, 4 queued)", n)
	}
	if len(l.queues[0]) != 4 {
		t.Errorf("queue holds %d, want 4", len(l.queues[0]))
	}
	l.closeAll()
	<-done
}

func TestListenBusyPort(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0") // no SO_REUSEPORT: the port is taken
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	addr := netip.MustParseAddrPort(pc.LocalAddr().String())
	if _, err := Listen(NewDecoder(newTestCollector(t), DecoderConfig{}), ListenConfig{NetFlowAddr: addr.String()}); err == nil {
		t.Error("listening on a busy port succeeded")
	}
}
