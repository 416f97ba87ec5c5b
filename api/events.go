package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/api/events"
)

// eventsRoute is the one long-lived route: the middlewares leave it out of the latency
// histogram, where a stream's hours would drown every real request.
const eventsRoute = "/api/v1/events"

// StreamEvents streams change events as Server-Sent Events until the client leaves or the
// broker closes (at shutdown), first replaying what a reconnecting client missed.
func (s *Server) StreamEvents(c *gin.Context, _ apigen.StreamEventsParams) {
	last, hasLast, err := events.ParseLastEventID(c.Request)
	if err != nil {
		writeError(c, fieldErrors(errBadRequest, []FieldError{{Field: "Last-Event-ID", Message: "must be the decimal id of an event"}}))
		return
	}
	// A stream outlives the read and write deadlines the HTTP server gives ordinary requests
	// (an expired read deadline would end it as a client disconnect); Stream sets a deadline
	// per write instead. A writer that cannot clear its deadlines has none to clear.
	rc := http.NewResponseController(c.Writer)
	for _, set := range []func(time.Time) error{rc.SetWriteDeadline, rc.SetReadDeadline} {
		if err := set(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
			loggerFrom(c).Debug("clear a deadline of an event stream", "err", err)
		}
	}
	if err := s.cfg.Events.Stream(c.Request.Context(), c.Writer, last, hasLast); err != nil {
		loggerFrom(c).Debug("event stream ended", "err", err)
	}
}

// registerEventMetrics exposes the broker's subscriber numbers.
func registerEventMetrics(reg prometheus.Registerer, b *events.Broker) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "patronus_event_subscribers", Help: "Open event streams.",
		}, func() float64 { return float64(b.Stats().Subscribers) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "patronus_event_subscribers_dropped_total", Help: "Event streams cut loose for falling behind (they resume from the replay buffer).",
		}, func() float64 { return float64(b.Stats().Dropped) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
