package events

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// TestStreamFeedIDs covers events published with feed seqs: a change's events share its id and
// only the last carries the id line; a client behind the ring is served by the backfill, one
// the backfill cannot serve gets a reset, and one ahead of this broker skips what it saw.
func TestStreamFeedIDs(t *testing.T) {
	b := NewBroker(4)
	b.SetLastID(10)
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var asked [][2]uint64
	b.SetBackfill(func(_ context.Context, after, upto uint64) ([]Event, bool, error) {
		asked = append(asked, [2]uint64{after, upto})
		if after < 5 {
			return nil, true, nil
		}
		var out []Event
		for id := after + 1; id <= upto; id++ {
			out = append(out, NewEvent(id, "from.feed", at, nil, false))
		}
		return out, false, nil
	})
	srv := httptest.NewServer(http.HandlerFunc(b.ServeSSE))
	t.Cleanup(srv.Close)
	t.Cleanup(b.Close)

	live := connect(t, srv.URL, "")
	b.PublishAt(NewEvent(11, "site.deleted", at, nil, true), NewEvent(11, "path.deleted", at, nil, true), NewEvent(11, "path.deleted", at, nil, false))
	for i, want := range []string{"", "", "11"} {
		if f := live.next(t); f.ID != want {
			t.Errorf("event %d of change 11: id line %q, want %q", i, f.ID, want)
		}
	}
	for id := uint64(12); id <= 14; id++ {
		b.PublishAt(NewEvent(id, "site.created", at, nil, false))
	}
	// The ring (4 events) holds 11's last event and 12-14: 11 is partial, so 10 is asked of the
	// feed, which answers 11 to 14.
	s := connect(t, srv.URL, "10")
	for id := 11; id <= 14; id++ {
		if f := s.next(t); f.ID != strconv.Itoa(id) || f.Event != "from.feed" {
			t.Errorf("resume after 10: %+v, want %d from the feed", f, id)
		}
	}
	// 12 is in the ring: no feed read.
	n := len(asked)
	s = connect(t, srv.URL, "12")
	if f := s.next(t); f.ID != "13" || f.Event != "site.created" || len(asked) != n {
		t.Errorf("resume after 12: %+v (feed asked %v), want 13 from the ring", f, asked[n:])
	}
	// Too far behind for the feed: a reset with the newest id.
	s = connect(t, srv.URL, "3")
	if f := s.next(t); f.Event != TypeReset || f.ID != "14" {
		t.Errorf("resume after 3: %+v, want reset 14", f)
	}
	// Ahead of this broker (seen on another replica): 15 and 16 are skipped, 17 is sent.
	s = connect(t, srv.URL, "16")
	for id := uint64(15); id <= 17; id++ {
		b.PublishAt(NewEvent(id, "site.created", at, nil, false))
	}
	if f := s.next(t); f.ID != "17" {
		t.Errorf("client ahead at 16 got %+v first, want 17", f)
	}
}
