package events

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// frame is one block of an SSE stream as a client parses it.
type frame struct {
	ID, Event, Data, Comment, Retry string
}

// stream is a client connection to an SSE endpoint.
type stream struct {
	resp   *http.Response
	frames chan frame
	cancel context.CancelFunc
}

// connect opens the stream, with a Last-Event-ID header unless lastID is empty, and parses it
// into frames in the background; the retry hint, written after subscribing, is read first.
func connect(t *testing.T, url, lastID string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	s := &stream{resp: resp, frames: make(chan frame, 100), cancel: cancel}
	t.Cleanup(s.close)
	if resp.StatusCode != http.StatusOK {
		return s
	}
	go func() {
		defer close(s.frames)
		sc := bufio.NewScanner(resp.Body)
		var f frame
		for sc.Scan() {
			line := sc.Text()
			if line == "" {
				s.frames <- f
				f = frame{}
				continue
			}
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "":
				f.Comment = value
			case "id":
				f.ID = value
			case "event":
				f.Event = value
			case "data":
				f.Data += value
			case "retry":
				f.Retry = value
			default:
				t.Errorf("unexpected field in line %q", line)
			}
		}
	}()
	if f := s.next(t); f.Retry != strconv.Itoa(retryMillis) {
		t.Fatalf("first frame = %+v, want the retry hint", f)
	}
	return s
}

func (s *stream) close() {
	s.cancel()
	_ = s.resp.Body.Close()
}

// next returns the next frame that is not a comment.
func (s *stream) next(t *testing.T) frame {
	t.Helper()
	for {
		select {
		case f, ok := <-s.frames:
			if !ok {
				t.Fatal("stream ended")
			}
			if f.Comment == "" {
				return f
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no frame from the stream")
		}
	}
}

// expectEvent reads the next event and checks its wire form against want.
func (s *stream) expectEvent(t *testing.T, want Event) {
	t.Helper()
	f := s.next(t)
	if f.ID != strconv.FormatUint(want.ID, 10) || f.Event != want.Type {
		t.Fatalf("frame id %q event %q, want %d %q", f.ID, f.Event, want.ID, want.Type)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(f.Data), &got); err != nil {
		t.Fatalf("data %q: %v", f.Data, err)
	}
	wantJSON, _ := json.Marshal(want)
	var wantMap map[string]any
	_ = json.Unmarshal(wantJSON, &wantMap)
	if !reflect.DeepEqual(got, wantMap) {
		t.Fatalf("data = %s, want %s", f.Data, wantJSON)
	}
}

func TestServeSSE(t *testing.T) {
	b := NewBroker(4, WithClock(fixedClock))
	var handlers sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		b.ServeSSE(w, r)
	}))
	t.Cleanup(srv.Close) // after the streams close (cleanups run last-in first-out)

	t.Run("WireFormat", func(t *testing.T) {
		s := connect(t, srv.URL, "")
		if ct := s.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("Content-Type = %q", ct)
		}
		if cc := s.resp.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("Cache-Control = %q", cc)
		}
		deleted := b.Publish(TypeSiteDeleted, map[string]any{
			"site_id": "6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11", "audit_id": 118,
			"deleted": map[string]int{"endpoints": 2, "paths": 3, "path_metrics": 3},
		})
		f := s.next(t)
		wantData := fmt.Sprintf(`{"id":%d,"type":"site.deleted","time":"2025-06-01T12:00:00Z",`+
			`"data":{"audit_id":118,"deleted":{"endpoints":2,"path_metrics":3,"paths":3},"site_id":"6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11"}}`, deleted.ID)
		if f.ID != strconv.FormatUint(deleted.ID, 10) || f.Event != "site.deleted" || f.Data != wantData {
			t.Errorf("frame = %+v, want id %d, event site.deleted, data %s", f, deleted.ID, wantData)
		}
	})

	t.Run("ReplayWithLastEventID", func(t *testing.T) {
		s := connect(t, srv.URL, "")
		seen := b.Publish(TypePolicyUpdated, map[string]int{"policy_id": 7})
		s.expectEvent(t, seen)
		s.close()
		missed := []Event{b.Publish(TypePathDeleted, map[string]int{"path_id": 12}), b.Publish(TypePathDeleted, map[string]int{"path_id": 13})}
		again := connect(t, srv.URL, strconv.FormatUint(seen.ID, 10))
		for _, ev := range missed {
			again.expectEvent(t, ev)
		}
		live := b.Publish(TypeCacheCleared, map[string]int{"removed": 3})
		again.expectEvent(t, live)
	})

	t.Run("ResetWhenTooFarBehind", func(t *testing.T) {
		s := connect(t, srv.URL, "")
		seen := b.Publish(TypeStatsReset, nil)
		s.expectEvent(t, seen)
		s.close()
		var last Event
		for i := range 6 { // more than the buffer of 4
			last = b.Publish(TypeSiteUpdated, i)
		}
		again := connect(t, srv.URL, strconv.FormatUint(seen.ID, 10))
		f := again.next(t)
		if f.Event != TypeReset || f.ID != strconv.FormatUint(last.ID, 10) || !strings.Contains(f.Data, `"type":"reset"`) {
			t.Fatalf("frame after falling behind = %+v, want a reset with id %d", f, last.ID)
		}
		next := b.Publish(TypeSiteCreated, nil)
		again.expectEvent(t, next)
	})

	t.Run("BadLastEventID", func(t *testing.T) {
		s := connect(t, srv.URL, "forty-two")
		if s.resp.StatusCode != http.StatusBadRequest {
			t.Errorf("status = %d, want 400", s.resp.StatusCode)
		}
	})

	t.Run("EndsWithTheRequest", func(t *testing.T) {
		s := connect(t, srv.URL, "")
		s.close()
		handlers.Wait()
		if st := b.Stats(); st.Subscribers != 0 {
			t.Errorf("subscribers after every client left = %d", st.Subscribers)
		}
	})
}

func TestServeSSEHeartbeat(t *testing.T) {
	b := NewBroker(4, WithClock(fixedClock), WithHeartbeat(5*time.Millisecond))
	srv := httptest.NewServer(http.HandlerFunc(b.ServeSSE))
	t.Cleanup(srv.Close) // after the streams close (cleanups run last-in first-out)
	s := connect(t, srv.URL, "")
	for {
		select {
		case f, ok := <-s.frames:
			if !ok {
				t.Fatal("stream ended before a keepalive")
			}
			if f.Comment == "keepalive" && f.ID == "" && f.Event == "" && f.Data == "" {
				return
			}
			t.Fatalf("unexpected frame on an idle stream: %+v", f)
		case <-time.After(10 * time.Second):
			t.Fatal("no keepalive comment")
		}
	}
}

func TestServeSSEEndsOnClose(t *testing.T) {
	b := NewBroker(4, WithClock(fixedClock))
	srv := httptest.NewServer(http.HandlerFunc(b.ServeSSE))
	t.Cleanup(srv.Close) // after the streams close (cleanups run last-in first-out)
	s := connect(t, srv.URL, "")
	b.Close()
	for {
		select {
		case _, ok := <-s.frames:
			if !ok {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatal("stream still open after the broker closed")
		}
	}
}
