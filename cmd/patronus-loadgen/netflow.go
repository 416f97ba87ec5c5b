package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/patronus-sdwan/patronus/collector/flowexport"
)

// flowSummary is what a NetFlow/IPFIX run sent.
type flowSummary struct {
	Elapsed    time.Duration
	Datagrams  int64
	Templates  int64
	Records    int64
	Packets    uint64
	Bytes      uint64
	SendErrors int64
	FirstError string
	cfg        config
}

func (s *flowSummary) print(w io.Writer) {
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Records) / s.Elapsed.Seconds()
	}
	fmt.Fprintf(w, "patronus-loadgen: %s of %s to %s, target %.0f records/s\n",
		s.Elapsed.Round(time.Millisecond), map[int]string{9: "NetFlow v9", 10: "IPFIX"}[s.cfg.netflowVersion], s.cfg.netflowTarget, s.cfg.recordRate)
	fmt.Fprintf(w, "datagrams: %d sent (%d templates), %d send errors\n", s.Datagrams, s.Templates, s.SendErrors)
	fmt.Fprintf(w, "records:   %d sent (%.0f records/s)\n", s.Records, rate)
	fmt.Fprintf(w, "traffic:   %d packets, %d bytes\n", s.Packets, s.Bytes)
	if s.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", s.FirstError)
	}
}

// generateNetFlow sends NetFlow v9 or IPFIX datagrams to the target as one exporter would:
// the template first and again every --template-interval, then data datagrams of as many
// records as fit 1,400 bytes, paced to --record-rate records per second (0: as fast as the
// socket takes them). Flows are the HTTP mode's, --flows of them, round and round.
func generateNetFlow(ctx context.Context, cfg config, progress io.Writer) (*flowSummary, error) {
	conn, err := net.Dial("udp", cfg.netflowTarget)
	if err != nil {
		return nil, fmt.Errorf("--netflow-target: %w", err)
	}
	defer conn.Close()
	enc := &flowexport.Encoder{Version: uint16(cfg.netflowVersion), Domain: 1, TemplateID: 256}
	per := enc.RecordsPerDatagram(1400)
	sum := &flowSummary{cfg: cfg}
	send := func(b []byte) {
		if _, err := conn.Write(b); err != nil {
			sum.SendErrors++
			if sum.FirstError == "" {
				sum.FirstError = err.Error()
			}
			return
		}
		sum.Datagrams++
	}
	start := time.Now()
	deadline := start.Add(cfg.duration)
	lastTemplate := time.Time{}
	lastProgress := start
	var next uint32
	batch := make([]flowexport.EncodedFlow, per)
	for {
		now := time.Now()
		if now.After(deadline) || ctx.Err() != nil {
			break
		}
		if now.Sub(lastTemplate) >= cfg.templateInterval {
			send(enc.Template())
			sum.Templates++
			lastTemplate = now
		}
		if cfg.recordRate > 0 {
			due := int64(cfg.recordRate * now.Sub(start).Seconds())
			if sum.Records+int64(per) > due {
				time.Sleep(time.Duration(float64(per) / cfg.recordRate * float64(time.Second) / 4))
				continue
			}
		}
		for i := range batch {
			n := next % uint32(cfg.flows)
			next++
			packets := uint64(1 + n%10)
			batch[i] = flowexport.EncodedFlow{Flow: flowKey(n), Packets: packets, Bytes: packets * (64 + uint64(n%1400))}
			sum.Packets += batch[i].Packets
			sum.Bytes += batch[i].Bytes
		}
		dg, err := enc.Data(batch)
		if err != nil {
			return nil, err
		}
		send(dg)
		sum.Records += int64(per)
		if cfg.progress > 0 && now.Sub(lastProgress) >= cfg.progress {
			fmt.Fprintf(progress, "%6.1fs  %d datagrams  %d records  %.0f records/s\n",
				now.Sub(start).Seconds(), sum.Datagrams, sum.Records, float64(sum.Records)/now.Sub(start).Seconds())
			lastProgress = now
		}
	}
	sum.Elapsed = time.Since(start)
	return sum, nil
}
