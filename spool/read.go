package spool

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/patronus-sdwan/patronus/storage/history"
)

// Flush is the points of one flush, read back from the log: the sums of the deltas between
// two cuts, per policy and per path, stamped with the later cut's time, policies first (by
// id), then paths (by id). Instance is left for the caller.
type Flush struct {
	At     time.Time
	Points []history.PolicyDelta
	// End is the log position just past the flush's cut: Commit(End) once the points are
	// confirmed.
	End int64
}

// Cut appends a flush boundary stamped at with the active flows per policy, and returns once
// it is fsynced, so that ReadFlushes can hand out the flush it ends.
func (s *Spool) Cut(ctx context.Context, at time.Time, activeFlows map[int64]int64) error {
	c := cut{at: at.UnixNano(), activeFlows: activeFlows}
	return s.appendRecord(ctx, func(b []byte) []byte { return encodeCut(b, c) }, true)
}

// ReadFlushes returns the flushes whose cut was fsynced since the previous call (after Open,
// those past the checkpoint), oldest first. Deltas after the last cut wait for the next one.
func (s *Spool) ReadFlushes() ([]Flush, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	s.syncMu.Lock()
	limit := s.syncedPos
	s.syncMu.Unlock()
	s.mu.Lock()
	segs := slices.Clone(s.segments)
	s.mu.Unlock()

	var out []Flush
	for s.readPos < limit {
		i := slices.IndexFunc(segs, func(g segment) bool { return s.readPos < g.start+g.size })
		if i < 0 {
			break
		}
		seg := segs[i]
		if s.readPos < seg.start { // deleted by MaxBytes before it was read
			s.readPos = seg.start
		}
		end := min(seg.start+seg.size, limit)
		data, err := readRange(filepath.Join(s.cfg.Dir, segmentName(seg.start)), s.readPos-seg.start, end-s.readPos)
		if errors.Is(err, os.ErrNotExist) {
			// Deleted by MaxBytes meanwhile: look again at the segments that are left.
			s.mu.Lock()
			segs = slices.Clone(s.segments)
			s.mu.Unlock()
			if slices.Contains(segs, seg) {
				return out, fmt.Errorf("spool: segment %s is missing", segmentName(seg.start))
			}
			continue
		}
		if err != nil {
			return out, err
		}
		for off := 0; off < len(data); {
			payload, n, err := parseFrame(data[off:])
			if err == nil && n == 0 {
				err = errCorrupt // a frame cut short below the synced end
			}
			if err == nil {
				err = s.apply(payload, s.readPos+int64(n), &out)
			}
			if err != nil {
				// Damage inside the log: what follows in this segment cannot be framed.
				s.log.Error("spool: corrupt record; skipping the rest of its segment", "segment", segmentName(seg.start),
					"offset", s.readPos-seg.start, "skipped_bytes", seg.start+seg.size-s.readPos, "err", err)
				s.readPos = seg.start + seg.size
				break
			}
			off += n
			s.readPos += int64(n)
		}
	}
	return out, nil
}

// seriesKey is the series a delta is summed in: a policy's (pathID 0) or a path's.
type seriesKey struct{ policyID, pathID int64 }

// apply adds one record to the flush being read, or closes it at a cut.
func (s *Spool) apply(payload []byte, end int64, out *[]Flush) error {
	switch payload[0] {
	case kindDeltas, kindSeriesDeltas:
		return decodeDeltas(payload[0], payload[1:], func(d Delta) {
			k := seriesKey{policyID: d.PolicyID, pathID: d.PathID}
			a := s.acc[k]
			if a == nil {
				a = &Delta{PolicyID: d.PolicyID, PathID: d.PathID}
				s.acc[k] = a
			}
			a.Packets = addSat(a.Packets, d.Packets)
			a.Bytes = addSat(a.Bytes, d.Bytes)
		})
	case kindCut:
		c, err := decodeCut(payload[1:])
		if err != nil {
			return err
		}
		at := time.Unix(0, c.at).UTC()
		f := Flush{At: at, End: end, Points: make([]history.PolicyDelta, 0, len(s.acc))}
		for _, a := range s.acc {
			if a.Packets == 0 && a.Bytes == 0 {
				continue
			}
			p := history.PolicyDelta{PolicyID: a.PolicyID, PathID: a.PathID, Packets: a.Packets, Bytes: a.Bytes, Time: at}
			if a.PathID == 0 { // active flows are counted per policy
				p.ActiveFlows = c.activeFlows[a.PolicyID]
			}
			f.Points = append(f.Points, p)
		}
		slices.SortFunc(f.Points, func(a, b history.PolicyDelta) int {
			return cmp.Or(cmp.Compare(a.PathID, b.PathID), cmp.Compare(a.PolicyID, b.PolicyID))
		})
		clear(s.acc)
		*out = append(*out, f)
		return nil
	}
	return fmt.Errorf("%w: unknown kind %q", errCorrupt, payload[0])
}

func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func readRange(path string, off, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("spool: read %s: %w", filepath.Base(path), err)
	}
	return buf, nil
}

const checkpointFile = "checkpoint"

// Commit durably records that history confirmed everything before log position end, and
// deletes the segments that lie wholly before it.
func (s *Spool) Commit(end int64) error {
	s.ckMu.Lock()
	if end <= s.checkpoint {
		s.ckMu.Unlock()
		return nil
	}
	b := binary.LittleEndian.AppendUint64(nil, uint64(end))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	tmp := filepath.Join(s.cfg.Dir, checkpointFile+".tmp")
	err := writeSynced(tmp, b)
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.cfg.Dir, checkpointFile))
	}
	if err == nil {
		err = syncDir(s.cfg.Dir)
	}
	if err != nil {
		s.ckMu.Unlock()
		return fmt.Errorf("spool: checkpoint: %w", err)
	}
	s.checkpoint = end
	s.ckMu.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.segments) > 1 && s.segments[0].start+s.segments[0].size <= end {
		if err := os.Remove(filepath.Join(s.cfg.Dir, segmentName(s.segments[0].start))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("spool: %w", err)
		}
		s.segments = s.segments[1:]
	}
	return nil
}

// Checkpoint returns the log position up to which history has confirmed the spool.
func (s *Spool) Checkpoint() int64 {
	s.ckMu.Lock()
	defer s.ckMu.Unlock()
	return s.checkpoint
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readCheckpoint returns the stored checkpoint; 0 when there is none. A damaged checkpoint
// is read as 0: replaying from the start rewrites the same points, which doubles nothing.
func (s *Spool) readCheckpoint() (int64, error) {
	b, err := os.ReadFile(filepath.Join(s.cfg.Dir, checkpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("spool: checkpoint: %w", err)
	}
	if len(b) != 12 || crc32.Checksum(b[:8], crcTable) != binary.LittleEndian.Uint32(b[8:]) {
		s.log.Warn("spool: damaged checkpoint; replaying the whole spool (points are overwritten, not doubled)")
		return 0, nil
	}
	return int64(binary.LittleEndian.Uint64(b)), nil
}
