package collector

import (
	"errors"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/spool"
	"github.com/patronus-sdwan/patronus/storage/history"
)

// TestPathTraffic: a report with a path id counts against its policy and its path, each in
// its own series; unknown paths are refused with every other problem, naming the report;
// unclassified traffic is the delta of policy 0.
func TestPathTraffic(t *testing.T) {
	c := New(Config{})
	if err := c.SetPolicies([]Policy{policy(1, 1, proto(6))}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetPaths([]int64{7, 8}); err != nil {
		t.Fatal(err)
	}
	tcp := flow(t, "10.0.0.1", "10.0.0.2", 1000, 443, 6)
	udp := flow(t, "10.0.0.1", "10.0.0.2", 1000, 53, 17)
	reports := []Report{
		{Flow: tcp, Packets: 2, Bytes: 200, PathID: 7},
		{Flow: udp, Packets: 3, Bytes: 300, PathID: 7}, // unclassified, on path 7
		{Flow: tcp, Packets: 1, Bytes: 100, PathID: 8},
		{Flow: tcp, Packets: 4, Bytes: 400}, // no path
	}

	t.Run("UnknownPath", func(t *testing.T) {
		bad := append([]Report{}, reports...)
		bad[1].PathID, bad[3].PolicyID = 99, ptr(int64(5))
		errs := c.CheckBatch(bad)
		if len(errs) != 2 || errs[0].Field != "reports[1].path_id" || errs[0].Message != "unknown path 99" ||
			errs[1].Field != "reports[3].policy_id" {
			t.Fatalf("CheckBatch = %v, want report 1's unknown path 99 and report 3's unknown policy", errs)
		}
		if _, err := c.RecordBatch(bad); err == nil {
			t.Fatal("a batch naming an unknown path was recorded")
		}
	})

	var persisted []spool.Delta
	res, err := c.RecordBatchDurably(reports, func(d []spool.Delta) error { persisted = d; return nil })
	if err != nil || res.Unclassified != 1 {
		t.Fatalf("RecordBatchDurably = %+v, %v", res, err)
	}
	wantPersisted := []spool.Delta{{PolicyID: 1, Packets: 7, Bytes: 700}, {PolicyID: Unclassified, Packets: 3, Bytes: 300},
		{PathID: 7, Packets: 5, Bytes: 500}, {PathID: 8, Packets: 1, Bytes: 100}}
	if len(persisted) != len(wantPersisted) {
		t.Fatalf("persisted %+v, want %+v", persisted, wantPersisted)
	}
	for i := range wantPersisted {
		if persisted[i] != wantPersisted[i] {
			t.Errorf("persisted[%d] = %+v, want %+v", i, persisted[i], wantPersisted[i])
		}
	}

	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// A path deleted before the flush still gets its last delta.
	if err := c.SetPaths([]int64{7}); err != nil {
		t.Fatal(err)
	}
	got := c.TakeDeltas(now)
	want := []history.PolicyDelta{
		{PolicyID: Unclassified, Packets: 3, Bytes: 300, ActiveFlows: 1, Time: now},
		{PolicyID: 1, Packets: 7, Bytes: 700, ActiveFlows: 1, Time: now},
		{PathID: 7, Packets: 5, Bytes: 500, Time: now},
		{PathID: 8, Packets: 1, Bytes: 100, Time: now},
	}
	if len(got) != len(want) {
		t.Fatalf("TakeDeltas = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("delta %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if got := c.TakeDeltas(now); len(got) != 0 {
		t.Fatalf("second TakeDeltas = %+v, want nothing", got)
	}
	if c.KnowsPath(8) || !c.KnowsPath(7) {
		t.Error("KnowsPath does not follow SetPaths")
	}
	if err := c.SetPaths([]int64{0}); err == nil {
		t.Error("SetPaths accepted path id 0")
	}
	var ve ValidationErrors
	if _, err := c.RecordBatch([]Report{{Flow: tcp, Packets: 1, Bytes: 1, PathID: 8}}); !errors.As(err, &ve) {
		t.Errorf("a report on the deleted path 8: err %v, want a validation error", err)
	}
}
