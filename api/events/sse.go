package events

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrBadLastEventID means the Last-Event-ID header is not a decimal event id.
var ErrBadLastEventID = errors.New("Last-Event-ID must be a decimal event id")

// ParseLastEventID reads the request's Last-Event-ID header: ok is false when there is none
// (or it is empty, which the SSE specification uses to mean none).
func ParseLastEventID(r *http.Request) (id uint64, ok bool, err error) {
	raw := strings.TrimSpace(r.Header.Get("Last-Event-ID"))
	if raw == "" {
		return 0, false, nil
	}
	id, err = strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%w: %q", ErrBadLastEventID, raw)
	}
	return id, true, nil
}

// StreamWriteTimeout is the most time one write of an event stream may take.
const StreamWriteTimeout = 30 * time.Second

// retryMillis is the reconnection delay the stream asks EventSource clients to use.
const retryMillis = 2000

// ServeSSE streams events to the client as Server-Sent Events until the request's context
// ends or the broker closes. It honours Last-Event-ID (a malformed one gets a plain 400; the
// API answers that case itself with ParseLastEventID before calling Stream).
func (b *Broker) ServeSSE(w http.ResponseWriter, r *http.Request) {
	last, hasLast, err := ParseLastEventID(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_ = b.Stream(r.Context(), w, last, hasLast)
}

// Stream writes the event stream to w: response headers, a retry hint, the replay for
// lastEventID (see Subscribe), then every new event, each as
//
//	id: <id>
//	event: <type>
//	data: <the Event as JSON>
//
// flushed at once, with a ": keepalive" comment whenever the stream was idle for the
// heartbeat interval. A subscriber that falls too far behind is resubscribed from the last id
// it was sent, so it gets the missed events from the buffer or a reset event. Stream returns
// when ctx ends (nil), the broker closes (nil) or a write fails (the error).
func (b *Broker) Stream(ctx context.Context, w http.ResponseWriter, lastEventID uint64, hasLast bool) error {
	rc := http.NewResponseController(w)
	// A stream has no write deadline as a whole, but each write has one: a client that stops
	// reading loses its stream after StreamWriteTimeout instead of holding it for good.
	extend := func() { _ = rc.SetWriteDeadline(time.Now().Add(StreamWriteTimeout)) }
	extend()
	sub := b.Subscribe(lastEventID, hasLast)
	defer func() { sub.Cancel() }()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // proxies such as nginx would otherwise hold events back
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "retry: %d\n\n", retryMillis)

	sent := sub.Start // the id the client will resume from (the last one whose id line it got)
	var skip uint64   // events up to this id were seen elsewhere (a client ahead of this replica)
	write := func(ev Event) {
		if ev.ID <= skip && ev.Type != TypeReset {
			return
		}
		if ev.more {
			fmt.Fprintf(bw, "event: %s\ndata: %s\n\n", ev.Type, ev.encoded)
		} else {
			fmt.Fprintf(bw, "id: %d\nevent: %s\ndata: %s\n\n", ev.ID, ev.Type, ev.encoded)
			sent = ev.ID // the client resumes after whole changes only
		}
	}
	// fill reads what the broker left to the backfill: the missed events, or a reset.
	fill := func(sub *Subscription, last uint64) error {
		if !sub.backfill {
			return nil
		}
		evs, reset, err := b.backfill(ctx, last, sub.Start)
		switch {
		case err != nil:
			return err
		case reset:
			sub.Replay = []Event{b.resetEvent(sub.Start, last)}
		default:
			sub.Replay = evs
			skip = max(skip, last)
		}
		return nil
	}
	if err := fill(sub, lastEventID); err != nil {
		return err
	}
	flush := func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	for _, ev := range sub.Replay {
		write(ev)
	}
	if err := flush(); err != nil {
		return err
	}
	heartbeat := time.NewTicker(b.heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-heartbeat.C:
			extend()
			fmt.Fprint(bw, ": keepalive\n\n")
		case ev, open := <-sub.C:
			extend()
			if !open {
				if !sub.Overflowed() || b.isClosed() {
					return flush()
				}
				sub = b.Subscribe(sent, true)
				if err := fill(sub, sent); err != nil {
					return err
				}
				for _, ev := range sub.Replay {
					write(ev)
				}
				break
			}
			write(ev)
			// Write what else is already waiting, then flush once.
			for more := true; more; {
				select {
				case ev, open := <-sub.C:
					if open {
						write(ev)
					} else {
						more = false
					}
				default:
					more = false
				}
			}
			heartbeat.Reset(b.heartbeat)
		}
		if err := flush(); err != nil {
			return err
		}
	}
}
