// Package spool is the durable log between traffic ingest and history: every acknowledged
// batch's per-policy and per-path deltas are appended to it and fsynced (group commit) before the batch is
// answered, and the history flusher reads its points from it, advancing a durable checkpoint
// only once the history store confirmed them. On start-up what lies past the checkpoint is
// replayed.
//
// The log is a directory of segment files, each named for the log position (a byte offset
// over the whole log) of its first record. Records are framed with their length and a CRC-32C
// checksum; a torn record at the tail, left by a crash in the middle of a write, is cut off
// when the spool is opened. A flush appends a cut record carrying its timestamp and the
// active flows, so the points of a flush are the sums of the records between two cuts: a
// replay after a crash recomputes the same points with the same timestamps, which the history
// stores overwrite instead of adding (InfluxDB by series and time, SQL by upsert).
package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults for Config.
const (
	DefaultMaxBytes     = 1 << 30
	DefaultSegmentBytes = 8 << 20
	DefaultSyncInterval = 100 * time.Millisecond
)

// Sync modes.
const (
	// SyncStrict acknowledges an append only after it is fsynced; concurrent appends share
	// one fsync (group commit).
	SyncStrict = "strict"
	// SyncRelaxed acknowledges an append once it is written to the operating system and
	// fsyncs every SyncInterval: a crash of the machine (not of the process) can lose what
	// was acknowledged in the last interval.
	SyncRelaxed = "relaxed"
)

// ErrUnavailable is returned by appends once the spool cannot write: the disk is full, or an
// fsync failed (after which nothing written since the last good fsync can be trusted).
var ErrUnavailable = errors.New("traffic spool unavailable")

// Config configures a Spool.
type Config struct {
	// Dir holds the segments and the checkpoint; it is created if missing.
	Dir string
	// MaxBytes bounds the segments on disk; past it the oldest segments are deleted and
	// counted. Default DefaultMaxBytes.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment is started. Default DefaultSegmentBytes.
	SegmentBytes int64
	// Sync is SyncStrict (the default) or SyncRelaxed.
	Sync string
	// SyncInterval is how often SyncRelaxed fsyncs. Default DefaultSyncInterval.
	SyncInterval time.Duration
	// Logger receives recovery and overflow reports; nil means slog.Default().
	Logger *slog.Logger
}

// Stats are the spool's counters, for /metrics.
type Stats struct {
	// Bytes is the size of the segments on disk.
	Bytes int64
	// Segments is how many segment files there are.
	Segments int
	// BytesWritten counts the bytes appended since start.
	BytesWritten int64
	// Syncs counts the fsyncs of appends; with group commit, fewer than Appends.
	Syncs int64
	// Appends counts the records appended.
	Appends int64
	// DroppedBytes and DroppedSegments count what MaxBytes made the spool delete unread.
	DroppedBytes    int64
	DroppedSegments int64
	// ReplayedBytes is how much lay past the checkpoint at start-up.
	ReplayedBytes int64
	// TruncatedBytes is what recovery cut off a torn or corrupt tail at start-up.
	TruncatedBytes int64
}

// segment is one file of the log.
type segment struct {
	start int64 // log position of its first byte
	size  int64
}

// Spool is the durable log. Append, Cut, ReadFlushes and Commit are safe for concurrent use.
type Spool struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex // the active segment and the segment list
	f        *os.File
	segments []segment // oldest first; the last is the active one
	writePos int64     // end of the log
	failed   error
	failure  atomic.Pointer[error] // failed, for readers that must not take mu
	payload  []byte
	frame    []byte
	stats    Stats

	syncMu    sync.Mutex
	synced    sync.Cond // broadcast when syncedPos moves or the spool fails
	syncedPos int64
	kick      chan struct{}
	done      chan struct{}
	stopped   sync.WaitGroup

	readMu  sync.Mutex // the reader's state below
	readPos int64
	acc     map[seriesKey]*Delta // deltas read since the last cut
	accEnd  int64

	ckMu       sync.Mutex
	checkpoint int64

	lock      *os.File // holds the directory's lock while the spool is open
	closeOnce sync.Once
}

// lockDir takes the spool directory's lock, so that two processes never append to one log.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: directory %s is in use by another process: %w", dir, err)
	}
	return f, nil
}

// Open opens (or creates) the spool in cfg.Dir and recovers it: a torn tail is cut off and
// the reader starts at the checkpoint, so ReadFlushes first returns what was not yet confirmed
// before the last stop.
func Open(cfg Config) (*Spool, error) {
	if cfg.Dir == "" {
		return nil, errors.New("spool: no directory")
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = DefaultSegmentBytes
	}
	cfg.SegmentBytes = min(cfg.SegmentBytes, max(cfg.MaxBytes/4, 4096))
	if cfg.Sync == "" {
		cfg.Sync = SyncStrict
	}
	if cfg.Sync != SyncStrict && cfg.Sync != SyncRelaxed {
		return nil, fmt.Errorf("spool: sync mode %q is not %q or %q", cfg.Sync, SyncStrict, SyncRelaxed)
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = DefaultSyncInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1), done: make(chan struct{}),
		acc: map[seriesKey]*Delta{}, lock: lock}
	s.synced.L = &s.syncMu
	if err := s.recover(); err != nil {
		lock.Close()
		return nil, err
	}
	s.stopped.Go(s.syncLoop)
	return s, nil
}

func segmentName(start int64) string { return fmt.Sprintf("%016x.seg", start) }

// recover lists the segments, reads the checkpoint and validates the last segment.
func (s *Spool) recover() error {
	entries, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".seg") {
			continue
		}
		start, err := strconv.ParseInt(strings.TrimSuffix(name, ".seg"), 16, 64)
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		s.segments = append(s.segments, segment{start: start, size: info.Size()})
	}
	slices.SortFunc(s.segments, func(a, b segment) int { return int(a.start - b.start) })
	ck, err := s.readCheckpoint()
	if err != nil {
		return err
	}
	if len(s.segments) == 0 {
		if err := s.createSegment(ck); err != nil {
			return err
		}
	} else {
		last := &s.segments[len(s.segments)-1]
		good, err := validLength(filepath.Join(s.cfg.Dir, segmentName(last.start)))
		if err != nil {
			return err
		}
		if good < last.size {
			s.log.Warn("spool: cut off a torn or corrupt tail", "segment", segmentName(last.start), "bytes", last.size-good)
			s.stats.TruncatedBytes = last.size - good
			last.size = good
		}
		f, err := os.OpenFile(filepath.Join(s.cfg.Dir, segmentName(last.start)), os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if err := f.Truncate(good); err != nil {
			f.Close()
			return fmt.Errorf("spool: %w", err)
		}
		if _, err := f.Seek(good, 0); err != nil {
			f.Close()
			return fmt.Errorf("spool: %w", err)
		}
		s.f = f
	}
	last := s.segments[len(s.segments)-1]
	s.writePos = last.start + last.size
	s.syncedPos = s.writePos
	first := s.segments[0].start
	ck = min(max(ck, first), s.writePos)
	s.checkpoint, s.readPos, s.accEnd = ck, ck, ck
	s.stats.ReplayedBytes = s.writePos - ck
	if s.stats.ReplayedBytes > 0 {
		s.log.Info("spool: replaying what history has not confirmed", "bytes", s.stats.ReplayedBytes)
	}
	return nil
}

// validLength returns the length of the prefix of a segment file made of whole, valid frames.
func validLength(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	var pos int64
	for {
		_, n, err := parseFrame(data[pos:])
		if err != nil || n == 0 {
			return pos, nil
		}
		pos += int64(n)
	}
}

// parseFrame returns the payload of the frame at the start of b and the frame's length;
// n == 0 when b holds no whole frame.
func parseFrame(b []byte) (payload []byte, n int, err error) {
	if len(b) < frameHeader {
		return nil, 0, nil
	}
	size := binary.LittleEndian.Uint32(b)
	if size == 0 || size > maxRecord {
		return nil, 0, errCorrupt
	}
	if len(b) < frameHeader+int(size) {
		return nil, 0, nil
	}
	payload = b[frameHeader : frameHeader+int(size)]
	if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(b[4:]) {
		return nil, 0, errCorrupt
	}
	return payload, frameHeader + int(size), nil
}

// createSegment starts a new active segment at log position start; s.mu is held (or the
// spool is not shared yet).
func (s *Spool) createSegment(start int64) error {
	f, err := os.OpenFile(filepath.Join(s.cfg.Dir, segmentName(start)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := syncDir(s.cfg.Dir); err != nil {
		f.Close()
		return err
	}
	s.f = f
	s.segments = append(s.segments, segment{start: start})
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: sync directory: %w", err)
	}
	return nil
}

// Append writes one acknowledged batch's deltas. In strict mode it returns once they are
// fsynced; an error means the batch must not be acknowledged.
func (s *Spool) Append(ctx context.Context, deltas []Delta) error {
	if len(deltas) == 0 {
		return nil
	}
	return s.appendRecord(ctx, func(b []byte) []byte { return encodeDeltas(b, deltas) }, s.cfg.Sync == SyncStrict)
}

// AppendAsync writes deltas that nobody is waiting on an acknowledgement for (flow exports
// over UDP): it returns once they are written, and the sync loop fsyncs them soon after
// without the caller waiting. A crash of the machine can lose what was not yet fsynced; a
// crash of the process cannot.
func (s *Spool) AppendAsync(deltas []Delta) error {
	if len(deltas) == 0 {
		return nil
	}
	if err := s.appendRecord(context.Background(), func(b []byte) []byte { return encodeDeltas(b, deltas) }, false); err != nil {
		return err
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

// appendRecord writes one record and, if wait, waits until it is fsynced.
func (s *Spool) appendRecord(ctx context.Context, encode func([]byte) []byte, wait bool) error {
	s.mu.Lock()
	if s.failed != nil {
		s.mu.Unlock()
		return s.failed
	}
	payload := encode(s.payload[:0])
	s.payload = payload
	if len(payload) > maxRecord {
		s.mu.Unlock()
		return fmt.Errorf("spool: record of %d bytes is over the limit", len(payload))
	}
	// One write call per record, from reused buffers.
	frame := appendFrame(s.frame[:0], payload)
	s.frame = frame
	if err := s.rotateLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	if _, err := s.f.Write(frame); err != nil {
		// Take the partial frame back, so the next record does not follow a torn one.
		seg := &s.segments[len(s.segments)-1]
		_ = s.f.Truncate(seg.size)
		_, _ = s.f.Seek(seg.size, 0)
		s.mu.Unlock()
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	s.segments[len(s.segments)-1].size += int64(len(frame))
	s.writePos += int64(len(frame))
	end := s.writePos
	s.stats.BytesWritten += int64(len(frame))
	s.stats.Appends++
	s.mu.Unlock()
	if !wait {
		return nil
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	for s.syncedPos < end {
		if err := s.failedErr(); err != nil {
			return err
		}
		s.synced.Wait()
	}
	_ = ctx // an fsync cannot be abandoned half way; waiting for it is bounded by the disk
	return nil
}

// failedErr returns the failure that stops appends, without taking s.mu: waiters hold
// syncMu, and rotation takes syncMu while holding s.mu.
func (s *Spool) failedErr() error {
	if p := s.failure.Load(); p != nil {
		return *p
	}
	return nil
}

// rotateLocked starts a new segment when the active one is full, and deletes the oldest ones
// past MaxBytes.
func (s *Spool) rotateLocked() error {
	active := s.segments[len(s.segments)-1]
	if active.size < s.cfg.SegmentBytes {
		return nil
	}
	// Everything in the old segment becomes durable before the new one is used.
	if err := s.f.Sync(); err != nil {
		return s.failLocked(err)
	}
	if err := s.f.Close(); err != nil {
		return s.failLocked(err)
	}
	s.syncMu.Lock()
	s.syncedPos = max(s.syncedPos, s.writePos)
	s.synced.Broadcast()
	s.syncMu.Unlock()
	if err := s.createSegment(s.writePos); err != nil {
		return s.failLocked(err)
	}
	var total int64
	for _, seg := range s.segments {
		total += seg.size
	}
	for total > s.cfg.MaxBytes && len(s.segments) > 1 {
		old := s.segments[0]
		if err := os.Remove(filepath.Join(s.cfg.Dir, segmentName(old.start))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		s.segments = s.segments[1:]
		total -= old.size
		s.ckMu.Lock()
		unread := min(old.size, max(0, old.start+old.size-s.checkpoint))
		s.ckMu.Unlock()
		if unread > 0 {
			s.stats.DroppedBytes += unread
			s.stats.DroppedSegments++
			s.log.Warn("spool full: dropped the oldest unconfirmed segment", "bytes", unread, "max_bytes", s.cfg.MaxBytes)
		}
	}
	return nil
}

func (s *Spool) failLocked(err error) error {
	if s.failed == nil {
		s.failed = fmt.Errorf("%w: %v", ErrUnavailable, err)
		s.failure.Store(&s.failed)
		s.log.Error("spool: write failed; ingest refused until restart", "err", err)
		s.syncMu.Lock()
		s.synced.Broadcast()
		s.syncMu.Unlock()
	}
	return s.failed
}

// syncLoop fsyncs the active segment: in strict mode whenever appends wait, all of them with
// one fsync; in relaxed mode every SyncInterval.
func (s *Spool) syncLoop() {
	var tick <-chan time.Time
	if s.cfg.Sync == SyncRelaxed {
		t := time.NewTicker(s.cfg.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.done:
			s.syncOnce()
			return
		case <-s.kick:
		case <-tick:
		}
		for s.syncOnce() {
		}
	}
}

// syncOnce fsyncs what was written so far and reports whether more was written meanwhile.
func (s *Spool) syncOnce() (more bool) {
	s.mu.Lock()
	target, f, failed := s.writePos, s.f, s.failed
	s.mu.Unlock()
	s.syncMu.Lock()
	behind := s.syncedPos < target
	s.syncMu.Unlock()
	if failed != nil || !behind {
		return false
	}
	err := f.Sync()
	if err != nil && !errors.Is(err, os.ErrClosed) { // closed: rotation synced it
		s.mu.Lock()
		_ = s.failLocked(err)
		s.mu.Unlock()
		return false
	}
	s.mu.Lock()
	s.stats.Syncs++
	now := s.writePos
	s.mu.Unlock()
	s.syncMu.Lock()
	if err == nil {
		s.syncedPos = max(s.syncedPos, target)
	}
	s.synced.Broadcast()
	s.syncMu.Unlock()
	return now > target
}

// Stats returns the spool's counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Segments = len(s.segments)
	for _, seg := range s.segments {
		st.Bytes += seg.size
	}
	return st
}

// Close fsyncs what was written and closes the active segment. Later calls do nothing.
func (s *Spool) Close() error {
	first := false
	s.closeOnce.Do(func() { first = true })
	if !first {
		return nil
	}
	close(s.done)
	s.stopped.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	if s.failed == nil {
		s.failed = errors.New("spool closed")
		s.failure.Store(&s.failed)
	}
	// Release appends still waiting: what they wrote is synced now (or failed with err).
	s.syncMu.Lock()
	if err == nil {
		s.syncedPos = max(s.syncedPos, s.writePos)
	}
	s.synced.Broadcast()
	s.syncMu.Unlock()
	s.lock.Close()
	return err
}
