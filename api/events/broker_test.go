package events

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

var epoch = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return epoch }

// firstID is the id of a test broker's first event.
var firstID = uint64(epoch.UnixMicro()) + 1

// receive reads n events from ch, failing the test if ch closes first or stays silent (a
// deadlock guard, not a speed assertion).
func receive(t *testing.T, ch <-chan Event, n int) []Event {
	t.Helper()
	var out []Event
	for len(out) < n {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %d of %d events", len(out), n)
			}
			out = append(out, ev)
		case <-time.After(10 * time.Second):
			t.Fatalf("no event after %d of %d", len(out), n)
		}
	}
	return out
}

func ids(evs []Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func consecutive(from uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = from + uint64(i)
	}
	return out
}

func equalIDs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPublishSubscribeOrder(t *testing.T) {
	b := NewBroker(16, WithClock(fixedClock))
	subs := []*Subscription{b.Subscribe(0, false), b.Subscribe(0, false)}
	types := []string{TypeSiteCreated, TypeSiteUpdated, TypeSiteDeleted, TypePathDeleted, TypePolicyUpdated, TypeStatsReset, TypeCacheCleared}
	var published []Event
	for i := range 50 {
		published = append(published, b.Publish(types[i%len(types)], map[string]int{"n": i}))
	}
	if !equalIDs(ids(published), consecutive(firstID, 50)) {
		t.Fatalf("published ids = %v, want consecutive from %d", ids(published), firstID)
	}
	for i, s := range subs {
		if s.Start != firstID-1 || len(s.Replay) != 0 || s.Reset {
			t.Errorf("subscriber %d: start %d, replay %v, reset %v", i, s.Start, s.Replay, s.Reset)
		}
		got := receive(t, s.C, 50)
		for j, ev := range got {
			want := published[j]
			if ev.ID != want.ID || ev.Type != want.Type || !ev.Time.Equal(epoch) || ev.Data.(map[string]int)["n"] != j {
				t.Fatalf("subscriber %d event %d = %+v, want %+v", i, j, ev, want)
			}
		}
	}
	if st := b.Stats(); st.Subscribers != 2 || st.LastID != firstID+49 || st.Dropped != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestReplayAfterLastEventID(t *testing.T) {
	b := NewBroker(8, WithClock(fixedClock))
	var published []Event
	for i := range 5 {
		published = append(published, b.Publish(TypeSiteUpdated, i))
	}
	s := b.Subscribe(published[1].ID, true)
	if s.Reset || !equalIDs(ids(s.Replay), ids(published[2:])) || s.Start != published[4].ID {
		t.Fatalf("replay after %d = %v (reset %v, start %d), want %v", published[1].ID, ids(s.Replay), s.Reset, s.Start, ids(published[2:]))
	}
	if upToDate := b.Subscribe(published[4].ID, true); upToDate.Reset || len(upToDate.Replay) != 0 {
		t.Errorf("subscriber that saw the newest event: replay %v, reset %v", ids(upToDate.Replay), upToDate.Reset)
	}
	next := b.Publish(TypeSiteDeleted, nil)
	if got := receive(t, s.C, 1); got[0].ID != next.ID {
		t.Errorf("live event after replay = %d, want %d", got[0].ID, next.ID)
	}
}

func TestResetWhenTooFarBehind(t *testing.T) {
	b := NewBroker(4, WithClock(fixedClock))
	var published []Event
	for i := range 10 {
		published = append(published, b.Publish(TypePathDeleted, i))
	}
	// The buffer holds events 6..9: a subscriber that saw 5 missed nothing that is gone.
	if s := b.Subscribe(published[5].ID, true); s.Reset || !equalIDs(ids(s.Replay), ids(published[6:])) {
		t.Errorf("replay after the buffer's edge = %v (reset %v)", ids(s.Replay), s.Reset)
	}
	last := published[9].ID
	for name, id := range map[string]uint64{
		"TooOld":        published[4].ID,
		"FromTheFuture": last + 100,     // e.g. ids of another server
		"BeforeStart":   firstID - 1000, // ids of an earlier run
	} {
		s := b.Subscribe(id, true)
		if !s.Reset || len(s.Replay) != 1 || s.Replay[0].Type != TypeReset || s.Replay[0].ID != last || s.Start != last {
			t.Errorf("%s: replay %+v, reset %v, want one reset event with id %d", name, s.Replay, s.Reset, last)
			continue
		}
		var decoded Event
		if err := json.Unmarshal(s.Replay[0].encoded, &decoded); err != nil || decoded.Type != TypeReset || decoded.ID != last {
			t.Errorf("%s: reset event JSON %s: %v", name, s.Replay[0].encoded, err)
		}
	}
}

func TestSlowSubscriberDoesNotBlockPublishers(t *testing.T) {
	b := NewBroker(1024, WithClock(fixedClock), WithSubscriberBuffer(4))
	slow := b.Subscribe(0, false)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 100 {
			b.Publish(TypeSiteUpdated, i)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("publisher blocked on a subscriber that never reads")
	}
	// The slow subscriber keeps what fitted in its buffer, then its channel is closed.
	got := receive(t, slow.C, 4)
	if _, open := <-slow.C; open || !slow.Overflowed() {
		t.Fatalf("slow subscriber's channel open %v, overflowed %v", open, slow.Overflowed())
	}
	if st := b.Stats(); st.Dropped != 1 || st.Subscribers != 0 {
		t.Errorf("stats = %+v", st)
	}
	// Subscribing again from the last event it got replays the rest from the buffer.
	again := b.Subscribe(got[3].ID, true)
	if again.Reset || !equalIDs(ids(again.Replay), consecutive(firstID+4, 96)) {
		t.Errorf("resubscribe replay = %d events (reset %v), want the 96 after %d", len(again.Replay), again.Reset, got[3].ID)
	}
}

func TestConcurrentPublishers(t *testing.T) {
	b := NewBroker(1024, WithClock(fixedClock), WithSubscriberBuffer(1000))
	s := b.Subscribe(0, false)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				b.Publish(TypeStatsReset, g*1000+i)
			}
		})
	}
	got := receive(t, s.C, 800)
	wg.Wait()
	if !equalIDs(ids(got), consecutive(firstID, 800)) {
		t.Fatal("events from concurrent publishers are not delivered in strictly increasing id order without gaps")
	}
}

func TestCancelAndClose(t *testing.T) {
	b := NewBroker(8, WithClock(fixedClock))
	s := b.Subscribe(0, false)
	s.Cancel()
	s.Cancel()
	if _, open := <-s.C; open || s.Overflowed() {
		t.Fatalf("cancelled subscription: channel open %v, overflowed %v", open, s.Overflowed())
	}
	live := b.Subscribe(0, false)
	b.Close()
	if _, open := <-live.C; open {
		t.Fatal("channel open after Close")
	}
	ev := b.Publish(TypeCacheCleared, nil)
	late := b.Subscribe(ev.ID-1, true)
	if len(late.Replay) != 1 || late.Replay[0].ID != ev.ID {
		t.Errorf("replay after Close = %v", ids(late.Replay))
	}
	if _, open := <-late.C; open {
		t.Fatal("subscription after Close is open")
	}
}

func TestPublishSanitises(t *testing.T) {
	b := NewBroker(8, WithClock(fixedClock))
	ev := b.Publish("site.\r\ndeleted", make(chan int))
	if ev.Type != "site.deleted" {
		t.Errorf("type = %q", ev.Type)
	}
	if !strings.Contains(string(ev.encoded), `"error":"event data not encodable`) {
		t.Errorf("unencodable data encoded as %s", ev.encoded)
	}
}
