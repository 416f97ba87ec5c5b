package storage

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgxlisten"
)

// DefaultFeedPollInterval is how often a tailer reads the feed when nothing woke it.
const DefaultFeedPollInterval = time.Second

// tailBatch is how many changes one read of the feed takes.
const tailBatch = 500

// TailerConfig configures a Tailer.
type TailerConfig struct {
	// Store reads the feed.
	Store *Store
	// DB is where the listener connects (PostgreSQL only).
	DB *DB
	// PollInterval is the fallback read interval; DefaultFeedPollInterval when 0.
	PollInterval time.Duration
	// NoNotify turns LISTEN off, so only the poll and in-process wake-ups drive the tailer
	// (for measuring the poll-only bound).
	NoNotify bool
	// Apply applies one change; changes come in seq order, each once per tailer.
	Apply func(ctx context.Context, c Change)
	// Reset is called when the tailer fell behind the retained feed (pruned changes it never
	// applied): the caller reloads what it derives from the feed. head is the seq it resumes
	// after.
	Reset func(ctx context.Context, head int64)
	// Logger receives read and listener errors.
	Logger *slog.Logger
}

// Tailer reads the change feed after the last seq it applied and applies each new change. It
// is woken by NOTIFY (PostgreSQL), by Wake (in-process, after a local commit) and by a poll.
type Tailer struct {
	cfg     TailerConfig
	wake    chan struct{}
	applied atomic.Int64

	runMu sync.Mutex // one catch-up at a time

	waitMu   sync.Mutex
	advanced chan struct{} // closed and replaced whenever applied grows

	listening atomic.Bool
}

// NewTailer returns a tailer; Start makes it run.
func NewTailer(cfg TailerConfig) *Tailer {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultFeedPollInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Tailer{cfg: cfg, wake: make(chan struct{}, 1), advanced: make(chan struct{})}
}

// Head reads the feed's newest seq and makes the tailer start after it: what was recorded
// before is already reflected in the state the caller loads next. Call it before loading that
// state and before Run.
func (t *Tailer) Head(ctx context.Context) (int64, error) {
	head, _, err := t.cfg.Store.Changes().Head(ctx)
	if err != nil {
		return 0, err
	}
	t.applied.Store(head)
	return head, nil
}

// Run tails the feed until ctx ends.
func (t *Tailer) Run(ctx context.Context) {
	var wg sync.WaitGroup
	if t.cfg.Store.Dialect == DialectPostgres && !t.cfg.NoNotify && t.cfg.DB != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.listen(ctx)
		}()
	}
	defer wg.Wait()
	tick := time.NewTicker(t.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.wake:
		case <-tick.C:
		}
		if err := t.CatchUp(ctx); err != nil && ctx.Err() == nil {
			t.cfg.Logger.Warn("read the change feed", "err", err)
		}
	}
}

// Wake makes the tailer read the feed now; it never blocks.
func (t *Tailer) Wake() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Applied returns the seq of the newest change applied.
func (t *Tailer) Applied() int64 { return t.applied.Load() }

// Listening says the NOTIFY listener is connected.
func (t *Tailer) Listening() bool { return t.listening.Load() }

// WaitApplied waits until the change with this seq (and every one before) is applied.
func (t *Tailer) WaitApplied(ctx context.Context, seq int64) error {
	for {
		t.waitMu.Lock()
		ch := t.advanced
		t.waitMu.Unlock()
		if t.applied.Load() >= seq {
			return nil
		}
		t.Wake()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for change %d to apply: %w", seq, ctx.Err())
		}
	}
}

// CatchUp reads and applies every change after the last applied one, now. If the changes
// after it were pruned, it calls Reset and resumes after the feed's head.
func (t *Tailer) CatchUp(ctx context.Context) error {
	t.runMu.Lock()
	defer t.runMu.Unlock()
	last := t.applied.Load()
	head, pruned, err := t.cfg.Store.Changes().Head(ctx)
	if err != nil {
		return err
	}
	if last < pruned {
		t.cfg.Logger.Warn("fell behind the retained change feed; reloading", "applied", last, "pruned_through", pruned)
		if t.cfg.Reset != nil {
			t.cfg.Reset(ctx, head)
		}
		t.advance(head)
		last = head
	}
	for {
		batch, err := t.cfg.Store.Changes().After(ctx, last, tailBatch)
		if err != nil {
			return err
		}
		for _, c := range batch {
			if t.cfg.Apply != nil {
				t.cfg.Apply(ctx, c)
			}
			last = c.Seq
			t.advance(last)
		}
		if len(batch) < tailBatch {
			return nil
		}
	}
}

func (t *Tailer) advance(seq int64) {
	t.applied.Store(seq)
	t.waitMu.Lock()
	close(t.advanced)
	t.advanced = make(chan struct{})
	t.waitMu.Unlock()
}

// listen holds a connection of its own LISTENing on the feed channel (jackc/pgxlisten, which
// reconnects); every notification wakes the tailer, and so does every (re)connect, which is
// the catch-up from the last applied seq.
func (t *Tailer) listen(ctx context.Context) {
	var schema string
	if err := t.cfg.Store.db.WithContext(ctx).Raw("SELECT current_schema()").Row().Scan(&schema); err != nil {
		t.cfg.Logger.Warn("feed listener: read the schema; polling only", "err", err)
		return
	}
	l := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.Connect(ctx, t.cfg.DB.url)
		},
		LogError: func(ctx context.Context, err error) {
			t.listening.Store(false)
			if ctx.Err() != nil {
				return // shutting down
			}
			t.cfg.Logger.Warn("feed listener", "err", err)
		},
		ReconnectDelay: time.Second,
	}
	l.Handle(FeedChannel(schema), backlogWaker{t})
	_ = l.Listen(ctx) // returns when ctx ends
	t.listening.Store(false)
}

// backlogWaker wakes the tailer on every notification and on every (re)connect.
type backlogWaker struct{ t *Tailer }

func (b backlogWaker) HandleNotification(context.Context, *pgconn.Notification, *pgx.Conn) error {
	b.t.Wake()
	return nil
}

func (b backlogWaker) HandleBacklog(context.Context, string, *pgx.Conn) error {
	b.t.listening.Store(true)
	b.t.Wake()
	return nil
}
