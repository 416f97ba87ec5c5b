// Package events is the in-process broker behind the Server-Sent Events stream: writers
// publish typed events, each gets an id, a bounded ring buffer keeps the latest ones so a
// client that reconnects with Last-Event-ID can catch up, and slow subscribers are cut loose
// instead of slowing publishers down.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Event types.
const (
	TypeSiteCreated   = "site.created"
	TypeSiteUpdated   = "site.updated"
	TypeSiteDeleted   = "site.deleted"
	TypePathDeleted   = "path.deleted"
	TypePolicyUpdated = "policy.updated"
	TypeStatsReset    = "stats.reset"
	TypeCacheCleared  = "cache.cleared"
	// TypeReset tells a subscriber that it missed events no longer buffered: it should reload
	// its state. Its id is the newest event's, so reconnecting with it resumes from there.
	TypeReset = "reset"
)

// Defaults of NewBroker.
const (
	DefaultBufferSize       = 1024
	DefaultSubscriberBuffer = 256
	DefaultHeartbeat        = 15 * time.Second
)

// Event is one change notification; it is written to the stream as its JSON.
type Event struct {
	ID   uint64    `json:"id"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	Data any       `json:"data,omitempty"`

	encoded []byte // the JSON above, made once at publish time
	// more says the next event has the same id (one change publishing several events): the
	// stream sends the id line only on the last of them, so a client cut off in the middle
	// resumes before the whole group.
	more bool
}

// NewEvent makes an event with the given id for replay from outside the broker (the change
// feed): more says the next event belongs to the same id.
func NewEvent(id uint64, typ string, t time.Time, data any, more bool) Event {
	ev := Event{ID: id, Type: lineBreaks.Replace(typ), Time: t.UTC(), Data: data, more: more}
	ev.encoded = encode(ev)
	return ev
}

// Backfill returns the events with ids in (after, upto], oldest first, from wherever they are
// kept (the change feed); reset says they are no longer all kept (or after is unknown).
type Backfill func(ctx context.Context, after, upto uint64) (evs []Event, reset bool, err error)

// Broker fans published events out to subscribers. Its methods are safe for concurrent use.
type Broker struct {
	now       func() time.Time
	subBuffer int
	heartbeat time.Duration

	mu     sync.Mutex
	ring   []Event // the last len(ring) events, oldest at start
	start  int
	count  int
	lastID uint64
	subs   map[*Subscription]struct{}
	closed bool

	backfill Backfill

	dropped atomic.Uint64
}

// Option configures a Broker.
type Option func(*Broker)

// WithClock sets the clock that stamps events (and seeds the first id); tests pass a fixed one.
func WithClock(now func() time.Time) Option { return func(b *Broker) { b.now = now } }

// WithSubscriberBuffer sets how many events a subscriber may have unread before it is cut
// loose (see Subscription.C).
func WithSubscriberBuffer(n int) Option { return func(b *Broker) { b.subBuffer = max(n, 1) } }

// WithBackfill sets where Stream reads the events a reconnecting client missed that the ring
// buffer no longer holds.
func WithBackfill(f Backfill) Option { return func(b *Broker) { b.backfill = f } }

// WithHeartbeat sets how often ServeSSE writes a keepalive comment on an idle stream.
func WithHeartbeat(d time.Duration) Option { return func(b *Broker) { b.heartbeat = d } }

// NewBroker returns a broker that keeps the last bufferSize events for replay (values below 1
// mean DefaultBufferSize). Ids start just above the broker's start time in microseconds, so
// ids of a restarted server are larger than any of the previous one: a client reconnecting
// across a restart with an old id gets a reset, not a wrong replay.
func NewBroker(bufferSize int, opts ...Option) *Broker {
	if bufferSize < 1 {
		bufferSize = DefaultBufferSize
	}
	b := &Broker{
		now:       time.Now,
		subBuffer: DefaultSubscriberBuffer,
		heartbeat: DefaultHeartbeat,
		ring:      make([]Event, bufferSize),
		subs:      map[*Subscription]struct{}{},
	}
	for _, o := range opts {
		o(b)
	}
	b.lastID = uint64(max(b.now().UnixMicro(), 0))
	return b
}

// Publish stamps an event of type typ with the next id and the current time, keeps it for
// replay and hands it to every subscriber without waiting: a subscriber whose buffer is full
// is dropped (its channel closes). data must encode as JSON; if it does not, the event carries
// an error message instead. Line breaks in typ are removed, since they would end the field.
func (b *Broker) Publish(typ string, data any) Event {
	typ = lineBreaks.Replace(typ)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastID++
	ev := Event{ID: b.lastID, Type: typ, Time: b.now().UTC(), Data: data}
	ev.encoded = encode(ev)
	b.publishLocked(ev)
	return ev
}

// PublishAt publishes events made by NewEvent with given ids (the events of one change feed
// seq), which must not be below the last one, at once: no subscriber starts in the middle of
// them.
func (b *Broker) PublishAt(evs ...Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ev := range evs {
		b.lastID = max(b.lastID, ev.ID)
		b.publishLocked(ev)
	}
}

// SetLastID sets the id the next subscriber starts after (the feed's head at start-up).
func (b *Broker) SetLastID(id uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lastID = id
}

func (b *Broker) publishLocked(ev Event) {
	b.ring[(b.start+b.count)%len(b.ring)] = ev
	if b.count < len(b.ring) {
		b.count++
	} else {
		b.start = (b.start + 1) % len(b.ring)
	}
	for s := range b.subs {
		select {
		case s.ch <- ev:
		default:
			s.overflowed.Store(true)
			b.dropLocked(s)
			b.dropped.Add(1)
		}
	}
}

// lineBreaks removes line breaks from event types. It is built once: building a Replacer
// costs far more than using one, and a site deletion publishes an event per removed path.
var lineBreaks = strings.NewReplacer("\r", "", "\n", "")

func encode(ev Event) []byte {
	raw, err := json.Marshal(ev)
	if err != nil {
		ev.Data = map[string]string{"error": fmt.Sprintf("event data not encodable: %v", err)}
		raw, _ = json.Marshal(ev)
	}
	return raw
}

// Subscription is one subscriber's view of the stream: first Replay, then C.
type Subscription struct {
	// Replay holds the events published after the subscriber's last id that are still
	// buffered, oldest first; or, when Reset, one TypeReset event.
	Replay []Event
	// Reset says the subscriber missed events that are no longer buffered (or its last id is
	// unknown to this broker) and should reload its state.
	Reset bool
	// Start is the id of the newest event when the subscription began: Replay ends with it
	// (when not empty) and C starts after it.
	Start uint64
	// C delivers the events published after the subscription, in id order. It is closed when
	// the subscription is cancelled, the broker closes, or the subscriber fell more than the
	// subscriber buffer behind (Overflowed); in that last case, subscribing again with the last
	// id received replays what was missed, or resets.
	C <-chan Event

	ch         chan Event
	broker     *Broker
	overflowed atomic.Bool
	backfill   bool // the missed events are to be read with the broker's Backfill
}

// Overflowed says C was closed because the subscriber did not keep up.
func (s *Subscription) Overflowed() bool { return s.overflowed.Load() }

// Cancel ends the subscription and closes C; calling it again does nothing.
func (s *Subscription) Cancel() {
	s.broker.mu.Lock()
	defer s.broker.mu.Unlock()
	s.broker.dropLocked(s)
}

func (b *Broker) dropLocked(s *Subscription) {
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.ch)
	}
}

// Subscribe registers a subscriber. With hasLast, lastEventID is the id of the last event
// the subscriber saw: Replay then holds what it missed, or a reset event if that is more than
// the buffer holds. Without it, the subscriber starts with the next event.
func (b *Broker) Subscribe(lastEventID uint64, hasLast bool) *Subscription {
	s := &Subscription{ch: make(chan Event, b.subBuffer), broker: b}
	s.C = s.ch
	b.mu.Lock()
	defer b.mu.Unlock()
	s.Start = b.lastID
	if hasLast && lastEventID != b.lastID {
		oldest := b.lastID + 1 // the id of the oldest buffered event
		if b.count > 0 {
			oldest = b.ring[b.start].ID
		}
		if b.backfill != nil && (b.count == 0 || lastEventID < oldest || lastEventID > b.lastID) {
			s.backfill = true // Stream asks the feed
		} else if lastEventID > b.lastID || lastEventID+1 < oldest {
			s.Reset = true
			s.Replay = []Event{b.resetEventLocked(b.lastID, lastEventID)}
		} else {
			for i := 0; i < b.count; i++ {
				if ev := b.ring[(b.start+i)%len(b.ring)]; ev.ID > lastEventID {
					s.Replay = append(s.Replay, ev)
				}
			}
		}
	}
	if b.closed {
		close(s.ch)
	} else {
		b.subs[s] = struct{}{}
	}
	return s
}

// resetEvent is the reset a subscriber gets for missed events no longer kept.
func (b *Broker) resetEvent(id, lastEventID uint64) Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.resetEventLocked(id, lastEventID)
}

func (b *Broker) resetEventLocked(id, lastEventID uint64) Event {
	ev := Event{ID: id, Type: TypeReset, Time: b.now().UTC(), Data: map[string]any{
		"reason":        "missed events are no longer kept; reload state",
		"last_event_id": lastEventID,
	}}
	ev.encoded = encode(ev)
	return ev
}

// Close ends every subscription and makes later ones end after their replay; call it when
// the server shuts down (http.Server.RegisterOnShutdown), since Shutdown does not cancel
// open streams. Publish keeps working.
func (b *Broker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		b.dropLocked(s)
	}
}

// Stats describe the broker for monitoring.
type Stats struct {
	// Subscribers is the number of open subscriptions.
	Subscribers int
	// Dropped counts subscriptions cut loose for falling behind.
	Dropped uint64
	// LastID is the id of the newest event.
	LastID uint64
}

// Stats returns the broker's current numbers.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{Subscribers: len(b.subs), Dropped: b.dropped.Load(), LastID: b.lastID}
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// SetBackfill sets where Stream reads the events a reconnecting client missed that the ring
// buffer no longer holds (see WithBackfill).
func (b *Broker) SetBackfill(f Backfill) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backfill = f
}
