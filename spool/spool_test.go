package spool

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage/history"
)

func openTest(t *testing.T, dir string, cfg Config) *Spool {
	t.Helper()
	cfg.Dir = dir
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustAppend(t *testing.T, s *Spool, deltas ...Delta) {
	t.Helper()
	if err := s.Append(context.Background(), deltas); err != nil {
		t.Fatal(err)
	}
}

func mustCut(t *testing.T, s *Spool, at time.Time, flows map[int64]int64) {
	t.Helper()
	if err := s.Cut(context.Background(), at, flows); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, s *Spool) []Flush {
	t.Helper()
	f, err := s.ReadFlushes()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFlushesAreSumsBetweenCuts checks the points of a flush, and that a reopened spool
// replays exactly what was not committed, with the same timestamps.
func TestFlushesAreSumsBetweenCuts(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Config{})
	t1 := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	t2 := t1.Add(10 * time.Second)
	mustAppend(t, s, Delta{PolicyID: 1, Packets: 2, Bytes: 200}, Delta{PolicyID: 2, Packets: 1, Bytes: 50})
	mustAppend(t, s, Delta{PolicyID: 1, Packets: 3, Bytes: 300})
	mustCut(t, s, t1, map[int64]int64{1: 4, 3: 9})
	mustAppend(t, s, Delta{PolicyID: 2, Packets: 5, Bytes: 500})
	mustCut(t, s, t2, nil)
	mustAppend(t, s, Delta{PolicyID: 1, Packets: 7, Bytes: 700}) // after the last cut: waits for the next one
	flushes := mustRead(t, s)
	if len(flushes) != 2 {
		t.Fatalf("%d flushes, want 2", len(flushes))
	}
	f1, f2 := flushes[0], flushes[1]
	if !f1.At.Equal(t1) || len(f1.Points) != 2 || f1.Points[0].PolicyID != 1 || f1.Points[0].Packets != 5 ||
		f1.Points[0].Bytes != 500 || f1.Points[0].ActiveFlows != 4 || f1.Points[1].Packets != 1 || !f1.Points[1].Time.Equal(t1) {
		t.Fatalf("first flush %+v", f1)
	}
	if !f2.At.Equal(t2) || len(f2.Points) != 1 || f2.Points[0].PolicyID != 2 || f2.Points[0].Packets != 5 || f2.End <= f1.End {
		t.Fatalf("second flush %+v", f2)
	}
	if len(mustRead(t, s)) != 0 {
		t.Fatal("flushes read twice")
	}
	if err := s.Commit(f1.End); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openTest(t, dir, Config{})
	defer s.Close()
	replay := mustRead(t, s)
	if len(replay) != 1 || !replay[0].At.Equal(t2) || replay[0].Points[0].Packets != 5 {
		t.Fatalf("replay %+v, want the uncommitted second flush again", replay)
	}
	mustCut(t, s, t2.Add(10*time.Second), nil)
	if f := mustRead(t, s); len(f) != 1 || len(f[0].Points) != 1 || f[0].Points[0].Packets != 7 {
		t.Fatalf("the delta after the last cut: %+v", f)
	}
}

// TestTornTailIsCutOff appends garbage after the last record, as a crash in the middle of a
// write leaves it: the spool opens, keeps every whole record and appends after them.
func TestTornTailIsCutOff(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Config{})
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mustAppend(t, s, Delta{PolicyID: 1, Packets: 1, Bytes: 1})
	mustCut(t, s, at, nil)
	mustAppend(t, s, Delta{PolicyID: 1, Packets: 10, Bytes: 10})
	s.Close()
	seg := filepath.Join(dir, segmentName(0))
	whole, _ := os.ReadFile(seg)
	// A frame header that promises more than follows, then a frame with a bad checksum.
	torn := append(appendFrame(nil, encodeDeltas(nil, []Delta{{PolicyID: 1, Packets: 100, Bytes: 100}}))[:12:12], 0)
	if err := os.WriteFile(seg, append(whole, torn...), 0o640); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, Config{})
	defer s.Close()
	if st := s.Stats(); st.TruncatedBytes != int64(len(torn)) || st.Bytes != int64(len(whole)) {
		t.Fatalf("stats %+v, want %d bytes cut off, %d kept", st, len(torn), len(whole))
	}
	mustAppend(t, s, Delta{PolicyID: 1, Packets: 1000, Bytes: 1000})
	mustCut(t, s, at.Add(time.Second), nil)
	f := mustRead(t, s)
	if len(f) != 2 || f[0].Points[0].Packets != 1 || f[1].Points[0].Packets != 1010 {
		t.Fatalf("flushes %+v", f)
	}
	// A flipped bit inside a record is caught by its checksum too.
	data, _ := os.ReadFile(seg)
	data[frameHeader+2] ^= 1
	if _, n, err := parseFrame(data); err == nil || n != 0 {
		t.Fatal("a damaged record passed its checksum")
	}
}

// TestGroupCommit appends from many goroutines at once: every append returns fsynced, and
// they share fsyncs.
func TestGroupCommit(t *testing.T) {
	s := openTest(t, t.TempDir(), Config{})
	defer s.Close()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for range 50 {
				mustAppend(t, s, Delta{PolicyID: int64(g + 1), Packets: 1, Bytes: 1})
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if st.Appends != 800 || st.Syncs == 0 || st.Syncs >= st.Appends {
		t.Fatalf("stats %+v: want 800 appends sharing fewer fsyncs", st)
	}
	t.Logf("800 appends, %d fsyncs", st.Syncs)
	mustCut(t, s, time.Now(), nil)
	f := mustRead(t, s)
	if len(f) != 1 || len(f[0].Points) != 16 || f[0].Points[15].Packets != 50 {
		t.Fatalf("flush %+v", f)
	}
}

// TestMaxBytesDropsOldest fills a small spool with nothing committed: the oldest segments go,
// are counted, and the reader resumes at the oldest one kept.
func TestMaxBytesDropsOldest(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Config{MaxBytes: 64 << 10, SegmentBytes: 16 << 10})
	defer s.Close()
	deltas := make([]Delta, 100)
	for i := range deltas {
		deltas[i] = Delta{PolicyID: int64(i + 1), Packets: 1, Bytes: 1000}
	}
	for i := range 200 {
		mustAppend(t, s, deltas...)
		if i%10 == 9 {
			mustCut(t, s, time.Unix(int64(i), 0), nil)
		}
	}
	st := s.Stats()
	if st.Bytes > 64<<10+16<<10 || st.DroppedBytes == 0 || st.DroppedSegments == 0 {
		t.Fatalf("stats %+v: want at most about 64 KiB kept and the rest counted as dropped", st)
	}
	f := mustRead(t, s)
	if len(f) == 0 || len(f) >= 20 || f[len(f)-1].At.Unix() != 199 {
		t.Fatalf("%d flushes readable; want the newest ones only", len(f))
	}
	if err := s.Commit(f[len(f)-1].End); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Segments != 1 {
		t.Fatalf("after the commit %d segments remain, want only the active one", st.Segments)
	}
}

// TestOneProcessPerDirectory: a second spool on a directory in use is refused.
func TestOneProcessPerDirectory(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Config{})
	if _, err := Open(Config{Dir: dir}); err == nil {
		t.Fatal("a second spool opened the directory in use")
	}
	s.Close()
	s2 := openTest(t, dir, Config{})
	s2.Close()
}

// TestRelaxedSync: appends return before their fsync, which follows within the interval; the
// reader hands out only what is fsynced.
func TestRelaxedSync(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Config{Sync: SyncRelaxed, SyncInterval: 20 * time.Millisecond})
	for range 100 {
		mustAppend(t, s, Delta{PolicyID: 1, Packets: 1, Bytes: 1})
	}
	if st := s.Stats(); st.Syncs > 10 {
		t.Errorf("%d fsyncs for 100 relaxed appends", st.Syncs)
	}
	time.Sleep(60 * time.Millisecond)
	if st := s.Stats(); st.Syncs == 0 {
		t.Fatal("no fsync after several intervals")
	}
	mustCut(t, s, time.Now(), nil)
	if f := mustRead(t, s); len(f) != 1 || f[0].Points[0].Packets != 100 {
		t.Fatalf("flushes %+v", f)
	}
	s.Close()
}

// FuzzSegment opens a spool whose only segment holds arbitrary bytes: recovery and reading
// never panic, and whatever is read back is whole flushes of non-negative sums.
func FuzzSegment(f *testing.F) {
	good := appendFrame(nil, encodeDeltas(nil, []Delta{{PolicyID: 1, Packets: 2, Bytes: 3}, {PathID: 7, Bytes: 9}}))
	good = appendFrame(good, encodeCut(nil, cut{at: 1e18, activeFlows: map[int64]int64{1: 4}}))
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add(append(append([]byte{}, good...), 0xff, 0, 0, 0, 1, 2, 3, 4))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segmentName(0)), data, 0o640); err != nil {
			t.Fatal(err)
		}
		s, err := Open(Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		flushes, err := s.ReadFlushes()
		if err != nil {
			t.Fatal(err)
		}
		for _, fl := range flushes {
			for _, p := range fl.Points {
				if p.Packets < 0 || p.Bytes < 0 || p.ActiveFlows < 0 {
					t.Fatalf("negative point %+v", p)
				}
			}
		}
		// Appending after recovery works and is read back.
		mustAppend(t, s, Delta{PolicyID: 5, Packets: 1, Bytes: 1})
		mustCut(t, s, time.Unix(1, 0), nil)
		if more := mustRead(t, s); len(more) != 1 {
			t.Fatalf("after recovery: %d flushes", len(more))
		}
	})
}

// TestPathDeltasReplayAfterCrash: path deltas are summed per path beside the policies' (a
// policy and a path with the same id stay apart), and what was not committed when the process
// died (no Close: the files are left as a kill leaves them) is replayed with them.
func TestPathDeltasReplayAfterCrash(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Config{})
	t1 := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	mustAppend(t, s, Delta{PolicyID: 3, Packets: 1, Bytes: 10}, Delta{PathID: 3, Packets: 2, Bytes: 20}, Delta{Packets: 4, Bytes: 40})
	mustAppend(t, s, Delta{PathID: 3, Packets: 5, Bytes: 50}, Delta{PathID: 9, Packets: 1, Bytes: 1})
	mustCut(t, s, t1, map[int64]int64{0: 2, 3: 7})
	want := []history.PolicyDelta{
		{PolicyID: 0, Packets: 4, Bytes: 40, ActiveFlows: 2, Time: t1},
		{PolicyID: 3, Packets: 1, Bytes: 10, ActiveFlows: 7, Time: t1},
		{PathID: 3, Packets: 7, Bytes: 70, Time: t1},
		{PathID: 9, Packets: 1, Bytes: 1, Time: t1},
	}
	check := func(name string, flushes []Flush) {
		t.Helper()
		if len(flushes) != 1 || !reflect.DeepEqual(flushes[0].Points, want) {
			t.Fatalf("%s: flushes %+v, want one with %+v", name, flushes, want)
		}
	}
	check("read", mustRead(t, s))
	// Crash: the lock dies with the process; the files stay as written.
	s.lock.Close()
	s = openTest(t, dir, Config{})
	defer s.Close()
	check("replay", mustRead(t, s))
}

// TestPolicyOnlyRecordsKeepTheOldFormat: a batch without path traffic is written as the
// records of the builds before paths (kind 'D', no path ids), which still decode.
func TestPolicyOnlyRecordsKeepTheOldFormat(t *testing.T) {
	old := encodeDeltas(nil, []Delta{{PolicyID: 1, Packets: 2, Bytes: 3}})
	// The bytes a build before paths wrote for this batch.
	if want := []byte{kindDeltas, 1, 2, 2, 3}; !bytes.Equal(old, want) {
		t.Fatalf("policy-only record %v, want the old format %v", old, want)
	}
	var got []Delta
	if err := decodeDeltas(old[0], old[1:], func(d Delta) { got = append(got, d) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != (Delta{PolicyID: 1, Packets: 2, Bytes: 3}) {
		t.Fatalf("decoded %+v", got)
	}
	mixed := encodeDeltas(nil, []Delta{{PolicyID: 1, Packets: 2, Bytes: 3}, {PathID: 4, Packets: 5, Bytes: 6}})
	if mixed[0] != kindSeriesDeltas {
		t.Fatalf("record with a path has kind %q", mixed[0])
	}
	got = nil
	if err := decodeDeltas(mixed[0], mixed[1:], func(d Delta) { got = append(got, d) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1] != (Delta{PathID: 4, Packets: 5, Bytes: 6}) {
		t.Fatalf("decoded %+v", got)
	}
	bad := encodeDeltas(nil, []Delta{{PolicyID: 1, PathID: 4, Packets: 5, Bytes: 6}})
	if err := decodeDeltas(bad[0], bad[1:], func(Delta) {}); err == nil {
		t.Fatal("a delta of both a policy and a path decoded")
	}
}
