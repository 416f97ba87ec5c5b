package api

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// tokenUseWindow is the least time between two writes of one token's last_used_at: a token
// that authenticates every millisecond costs one UPDATE a minute, and last_used_at is exact
// to within this window.
const tokenUseWindow = time.Minute

// tokenUseRetry is how long the recorder waits after a failed write before the next one, so
// an unreachable database is not asked again for every token in turn.
const tokenUseRetry = 10 * time.Second

// tokenUseFinalWrite bounds the last write on shutdown.
const tokenUseFinalWrite = 5 * time.Second

// tokenUseRecorder records when stored tokens authenticate, off the request path: a request
// only notes the use in memory (a map lookup under a mutex); one goroutine writes the noted
// uses, one UPDATE per token, at most one per token per tokenUseWindow. A slow or unreachable
// database slows that goroutine alone: uses noted meanwhile coalesce by token, and the map of
// waiting uses is bounded (maxAuthEntries tokens; past it new uses are dropped until it drains).
type tokenUseRecorder struct {
	mark func(ctx context.Context, id int64, at time.Time) error
	log  *slog.Logger

	mu      sync.Mutex
	now     func() time.Time    // the clock of the window; tests move it
	noted   map[int64]time.Time // when each token's last use was noted for writing
	pending map[int64]time.Time // uses waiting to be written: the latest use of each token
	dropped int64               // uses not noted because pending was full
	wake    chan struct{}

	stop context.CancelFunc
	done chan struct{}
}

func newTokenUseRecorder(mark func(ctx context.Context, id int64, at time.Time) error, log *slog.Logger) *tokenUseRecorder {
	return &tokenUseRecorder{mark: mark, log: log, now: time.Now,
		noted: map[int64]time.Time{}, pending: map[int64]time.Time{}, wake: make(chan struct{}, 1)}
}

// used notes that token id authenticated a request now. It never waits for the database.
func (r *tokenUseRecorder) used(id int64) {
	if id == 0 { // the configured admin token is not stored
		return
	}
	r.mu.Lock()
	now := r.now()
	if at, ok := r.noted[id]; ok && now.Sub(at) < tokenUseWindow {
		r.mu.Unlock()
		return
	}
	if _, waiting := r.pending[id]; !waiting && len(r.pending) >= maxAuthEntries {
		r.dropped++
		r.mu.Unlock()
		return
	}
	if len(r.noted) >= maxAuthEntries {
		r.sweepLocked(now)
	}
	r.noted[id] = now
	r.pending[id] = now
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// sweepLocked forgets the notes older than the window, which no longer hold back a write; if
// every note is recent, it forgets them all (a token may then be written twice in a window).
func (r *tokenUseRecorder) sweepLocked(now time.Time) {
	for id, at := range r.noted {
		if now.Sub(at) >= tokenUseWindow {
			delete(r.noted, id)
		}
	}
	if len(r.noted) >= maxAuthEntries {
		clear(r.noted)
	}
}

// start runs the writer until close.
func (r *tokenUseRecorder) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.stop, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		r.run(ctx)
	}()
}

// close stops the writer after a last write of what is waiting, bounded by tokenUseFinalWrite.
func (r *tokenUseRecorder) close() {
	if r.stop == nil {
		return
	}
	r.stop()
	<-r.done
}

func (r *tokenUseRecorder) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), tokenUseFinalWrite)
			r.write(final)
			cancel()
			return
		case <-r.wake:
			if !r.write(ctx) {
				sleepCtx(ctx, tokenUseRetry) // cut short by shutdown, whose final write retries
			}
		}
	}
}

// write writes every waiting use. It reports false when a write failed; the uses not
// written wait for the next attempt, unless a later use of the same token replaced them.
func (r *tokenUseRecorder) write(ctx context.Context) bool {
	r.mu.Lock()
	batch := r.pending
	r.pending = make(map[int64]time.Time, len(batch))
	r.mu.Unlock()
	for id, at := range batch {
		if err := r.mark(ctx, id, at); err != nil {
			r.log.Debug("token use not recorded yet; will retry", "token_id", id, "err", err)
			r.requeue(batch)
			return false
		}
		delete(batch, id)
	}
	return true
}

// requeue puts back the uses a failed write did not record, and wakes the writer for its
// retry.
func (r *tokenUseRecorder) requeue(batch map[int64]time.Time) {
	r.mu.Lock()
	for id, at := range batch {
		if later, ok := r.pending[id]; !ok || later.Before(at) {
			r.pending[id] = at
		}
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// sleepCtx waits d, or less if ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
