package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/collector/flowexport"
)

// TestNetFlowMode sends IPFIX and NetFlow v9 at a set rate to real flow listeners: every
// record sent is decoded and counted, with the packets and bytes sent.
func TestNetFlowMode(t *testing.T) {
	for _, version := range []int{9, 10} {
		coll := collector.New(collector.Config{})
		dec := flowexport.NewDecoder(coll, flowexport.DecoderConfig{})
		l, err := flowexport.Listen(dec, flowexport.ListenConfig{NetFlowAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { l.Run(ctx) })
		cfg, err := parseFlags([]string{"--mode", "netflow", "--netflow-target", l.NetFlowAddr().String(),
			"--netflow-version", map[int]string{9: "9", 10: "10"}[version], "--record-rate", "20000", "--duration", "500ms",
			"--flows", "300", "--progress", "0"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := generateNetFlow(context.Background(), cfg, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Records < 5000 || sum.Records > 12000 || sum.SendErrors != 0 || sum.Templates < 1 {
			t.Errorf("v%d: sent %+v, want about 10,000 records at 20,000/s for 0.5 s", version, sum)
		}
		deadline := time.Now().Add(5 * time.Second)
		for coll.Totals().Packets < sum.Packets && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		wg.Wait()
		if tot := coll.Totals(); tot.Packets != sum.Packets || tot.Bytes != sum.Bytes {
			t.Errorf("v%d: counted %d packets %d bytes, sent %d and %d", version, tot.Packets, tot.Bytes, sum.Packets, sum.Bytes)
		}
		ex := dec.Exporters()
		if len(ex) != 1 || ex[0].FlowRecords != uint64(sum.Records) || ex[0].DecodeErrors != 0 || ex[0].UnknownTemplates != 0 {
			t.Errorf("v%d: exporters %+v, want one with %d records", version, ex, sum.Records)
		}
	}
}
