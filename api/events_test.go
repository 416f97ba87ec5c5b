package api

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/api/events"
	"github.com/patronus-sdwan/patronus/storage"
)

// sseEvent is one message of the event stream: its id: and event: fields and its data: line
// decoded.
type sseEvent struct {
	ID uint64
	// IDLine says the event had an id field; the events of one change share its seq and only
	// the last of them sends it, so a client cut off mid-change resumes before all of them.
	IDLine bool
	Type   string
	Data   struct {
		ID   uint64         `json:"id"`
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
}

// sseStream is an open GET /api/v1/events read by a goroutine into C, which closes at the
// end of the stream.
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	C      chan sseEvent
	cancel context.CancelFunc
}

// openStream subscribes to the event stream as a viewer, sending lastEventID when it is not
// empty; the stream is closed when the test ends.
func (a *testAPI) openStream(lastEventID string) *sseStream {
	a.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req := a.newRequest(http.MethodGet, "/api/v1/events", a.viewer, nil).WithContext(ctx)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	checkRequest(a.t, req, nil)
	// The shared client's timeout would cut the stream; the test's context ends it instead.
	resp, err := (&http.Client{Transport: a.client.Transport}).Do(req)
	if err != nil {
		cancel()
		a.t.Fatalf("GET /api/v1/events: %v", err)
	}
	s := &sseStream{t: a.t, resp: resp, C: make(chan sseEvent, 1024), cancel: cancel}
	a.t.Cleanup(s.close)
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		a.t.Fatalf("GET /api/v1/events: %d %s", resp.StatusCode, body)
	}
	for header, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache"} {
		if got := resp.Header.Get(header); got != want {
			a.t.Errorf("%s = %q, want %q", header, got, want)
		}
	}
	if resp.Header.Get(headerRequestID) == "" {
		a.t.Error("the event stream has no X-Request-ID")
	}
	go s.read()
	return s
}

// read parses the stream (fields, blank-line dispatch, comments) into C.
func (s *sseStream) read() {
	defer close(s.C)
	sc := bufio.NewScanner(s.resp.Body)
	var ev sseEvent
	var data string
	for sc.Scan() {
		line := sc.Text()
		field, value, _ := strings.Cut(line, ": ")
		switch field {
		case "id":
			ev.ID, _ = strconv.ParseUint(value, 10, 64)
			ev.IDLine = true
		case "event":
			ev.Type = value
		case "data":
			data = value
		case "":
			if data != "" {
				if err := json.Unmarshal([]byte(data), &ev.Data); err != nil {
					s.t.Errorf("event data %q: %v", data, err)
				}
				s.C <- ev
			}
			ev, data = sseEvent{}, ""
		}
	}
}

// next returns the next event, failing the test if none comes within a few seconds.
func (s *sseStream) next() sseEvent {
	s.t.Helper()
	select {
	case ev, ok := <-s.C:
		if !ok {
			s.t.Fatal("the event stream ended")
		}
		if !ev.IDLine {
			ev.ID = ev.Data.ID
		}
		if ev.ID != ev.Data.ID || ev.Type != ev.Data.Type {
			s.t.Errorf("SSE fields id %d event %s, data %d %s", ev.ID, ev.Type, ev.Data.ID, ev.Data.Type)
		}
		return ev
	case <-time.After(10 * time.Second):
		s.t.Fatal("no event within 10s")
	}
	return sseEvent{}
}

// ended waits for the stream to end, failing the test if it does not within a few seconds.
func (s *sseStream) ended() {
	s.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-s.C:
			if !ok {
				return
			}
			s.t.Errorf("unexpected event %s %d before the end of the stream", ev.Type, ev.ID)
		case <-timeout:
			s.t.Fatal("the event stream did not end within 10s")
		}
	}
}

func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

func TestStreamEvents(t *testing.T) {
	broker := events.NewBroker(64)
	a := newTestAPI(t, storage.DialectSQLite, withConfig(func(c *Config) {
		c.Publish = nil // events go to the broker
		c.Events = broker
	}))
	f := a.seedDeletion()
	stream := a.openStream("")

	// A subscriber sees site.deleted with the audit id of the deletion, then its paths, all
	// with the deletion's feed seq as id, sent on the last of them only.
	del := decodeAs[apigen.SiteDeletionResult](t, a.deleteSite(f.target.ID, "", "", a.admin), http.StatusOK)
	ev := stream.next()
	if ev.Type != "site.deleted" || ev.Data.Data["site_id"] != f.target.ID || ev.Data.Data["audit_id"] != float64(*del.AuditID) ||
		ev.ID != uint64(*del.AuditID) || ev.IDLine {
		t.Fatalf("first event = %+v, want site.deleted of %s with audit id %d as its id, no id line", ev, f.target.ID, *del.AuditID)
	}
	if ev = stream.next(); ev.Type != "policy.updated" || ev.Data.Data["policy_id"] != float64(f.clearedPolicy) || ev.ID != uint64(*del.AuditID) || ev.IDLine {
		t.Errorf("second event = %+v, want policy.updated of %d with id %d, no id line", ev, f.clearedPolicy, *del.AuditID)
	}
	for i, pathID := range f.targetPaths {
		ev = stream.next()
		if ev.Type != "path.deleted" || ev.Data.Data["path_id"] != float64(pathID) || ev.ID != uint64(*del.AuditID) ||
			ev.IDLine != (i == len(f.targetPaths)-1) {
			t.Errorf("event = %+v, want path.deleted of %d, id %d on the last one only", ev, pathID, *del.AuditID)
		}
	}
	lastSeen := ev.ID
	stream.close()

	// While the client is away: a site is created, updated and deleted.
	site := decodeAs[apigen.Site](t, a.do(http.MethodPost, "/api/v1/sites", a.operator, map[string]any{"name": a.name("site")}), http.StatusCreated)
	a.do(http.MethodPatch, "/api/v1/sites/"+site.ID.String(), a.operator, map[string]any{"location": "Lyon"}).problemUnless(t, http.StatusOK)
	gone := decodeAs[apigen.SiteDeletionResult](t, a.deleteSite(site.ID.String(), "", "", a.admin), http.StatusOK)

	// Reconnecting with Last-Event-ID replays exactly what it missed, then goes live.
	stream = a.openStream(strconv.FormatUint(lastSeen, 10))
	var replayed []string
	for i := range 3 {
		ev := stream.next()
		replayed = append(replayed, ev.Type)
		if ev.ID != lastSeen+1+uint64(i) || ev.Data.Data["site_id"] != site.ID.String() {
			t.Errorf("replayed %+v, want id %d about site %s", ev, lastSeen+1+uint64(i), site.ID)
		}
		if ev.Type == "site.deleted" && ev.Data.Data["audit_id"] != float64(*gone.AuditID) {
			t.Errorf("replayed site.deleted has audit id %v, want %d", ev.Data.Data["audit_id"], *gone.AuditID)
		}
	}
	if want := []string{"site.created", "site.updated", "site.deleted"}; !slices.Equal(replayed, want) {
		t.Errorf("replayed %v, want %v", replayed, want)
	}
	live := decodeAs[apigen.Site](t, a.do(http.MethodPost, "/api/v1/sites", a.operator, map[string]any{"name": a.name("site")}), http.StatusCreated)
	if ev := stream.next(); ev.Type != "site.created" || ev.ID != lastSeen+4 || ev.Data.Data["site_id"] != live.ID.String() {
		t.Errorf("live event after the replay = %+v", ev)
	}

	// A client further behind than the buffer is replayed from the change feed.
	behind := a.openStream("0")
	var ids []uint64
	for ev := behind.next(); ; ev = behind.next() {
		if ev.Type == "reset" {
			t.Fatalf("client behind the buffer got %+v, want a replay from the feed", ev)
		}
		if len(ids) == 0 || ids[len(ids)-1] != ev.ID {
			ids = append(ids, ev.ID)
		}
		if ev.ID == lastSeen+4 {
			break
		}
	}
	if want := []uint64{lastSeen, lastSeen + 1, lastSeen + 2, lastSeen + 3, lastSeen + 4}; !slices.Equal(ids, want) {
		t.Errorf("replayed from the feed: ids %v, want %v", ids, want)
	}
	metrics := string(a.do(http.MethodGet, "/metrics", a.viewer, nil).Body)
	if !strings.Contains(metrics, "patronus_event_subscribers 2\n") {
		t.Errorf("/metrics does not count 2 open streams:\n%s", grepLines(metrics, "patronus_event"))
	}

	// One behind the retained feed gets one reset, carrying the newest id.
	if _, err := a.store.Changes().Prune(context.Background(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	pruned := a.openStream("0")
	if ev := pruned.next(); ev.Type != "reset" || ev.ID != lastSeen+4 {
		t.Errorf("first event for a client behind the retained feed = %+v, want reset with id %d", ev, lastSeen+4)
	}
	pruned.close()

	// Refused before streaming: a malformed Last-Event-ID, no token.
	for _, last := range []string{"abc", "-1", "99999999999999999999"} {
		req := a.newRequest(http.MethodGet, "/api/v1/events", a.viewer, nil)
		req.Header.Set("Last-Event-ID", last)
		if p := a.send(req, false).problem(t, http.StatusBadRequest); !slices.Equal(p.fields(), []string{"Last-Event-ID"}) {
			t.Errorf("Last-Event-ID %q: problem names %v", last, p.fields())
		}
	}
	a.do(http.MethodGet, "/api/v1/events", "", nil).problem(t, http.StatusUnauthorized)

	// Closing the broker (as shutdown does) ends every stream; the requests are counted but
	// their hours-long durations stay out of the latency histogram.
	broker.Close()
	stream.ended()
	behind.ended()
	metrics = string(a.do(http.MethodGet, "/metrics", a.viewer, nil).Body)
	if !strings.Contains(metrics, `patronus_http_requests_total{method="GET",route="/api/v1/events",status="200"}`) {
		t.Errorf("/metrics does not count the event streams:\n%s", grepLines(metrics, "/api/v1/events"))
	}
	if strings.Contains(metrics, `patronus_http_request_duration_seconds_count{method="GET",route="/api/v1/events"}`) {
		t.Errorf("event streams are in the latency histogram:\n%s", grepLines(metrics, "/api/v1/events"))
	}
}

// grepLines returns the lines of text that contain substr.
func grepLines(text, substr string) string {
	var out []string
	for line := range strings.Lines(text) {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}
