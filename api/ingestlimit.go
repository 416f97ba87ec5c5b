package api

import (
	"fmt"
	"io"
	"sync"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
)

// Defaults of IngestLimits.
const (
	DefaultMaxIngestRequests = 32
	DefaultMaxIngestBytes    = 32 << 20
)

// ingestChunk is the step in which an ingest request takes bytes from the shared budget.
const ingestChunk = 64 << 10

// IngestLimits bound what traffic ingest may hold at once, so that clients with a valid token
// cannot make memory grow without bound (30 stalled gzip uploads expanding to 15 MiB each
// once took the process from 91 MB to 835 MB). Past either bound a request is answered 503
// with Retry-After at once; it never waits for room.
type IngestLimits struct {
	// MaxRequests is how many ingest requests are served at once; DefaultMaxIngestRequests
	// when 0.
	MaxRequests int
	// MaxBytes is how many body bytes (after decompression) all ingest requests together may
	// hold; DefaultMaxIngestBytes when 0. A body is read in fixed-size chunks, so what it
	// holds is what it was charged, and the garbage collector lets the heap reach twice what
	// is live: the memory this bounds is about three times this (measured: 31 MiB over the
	// baseline for 32 MiB with 30 stalled uploads; 133 to 225 MiB when the body was read
	// into a buffer that doubled as it grew).
	MaxBytes int64
}

// ingestLimiter enforces IngestLimits.
type ingestLimiter struct {
	slots    chan struct{}
	bytes    *semaphore.Weighted
	maxBytes int64
	refused  *prometheus.CounterVec
}

func newIngestLimiter(l IngestLimits, reg prometheus.Registerer) (*ingestLimiter, error) {
	if l.MaxRequests <= 0 {
		l.MaxRequests = DefaultMaxIngestRequests
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxIngestBytes
	}
	il := &ingestLimiter{
		slots: make(chan struct{}, l.MaxRequests), bytes: semaphore.NewWeighted(l.MaxBytes), maxBytes: l.MaxBytes,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patronus_ingest_refused_busy_total",
			Help: "Ingest requests answered 503 because a bound was reached: requests (concurrent requests) or bytes (body bytes held).",
		}, []string{"bound"}),
	}
	il.refused.WithLabelValues("requests")
	il.refused.WithLabelValues("bytes")
	return il, reg.Register(il.refused)
}

// ctxIngestBudget holds the request's *ingestBudget.
const ctxIngestBudget = "patronus.ingest_budget"

// middleware takes a slot for each ingest request, after authentication, and gives the
// request a byte budget its body reader draws from; both are returned when it ends.
func (il *ingestLimiter) middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.FullPath() != trafficRoute {
			c.Next()
			return
		}
		select {
		case il.slots <- struct{}{}:
		default:
			il.refused.WithLabelValues("requests").Inc()
			refuse(c, newError(errBusy, "%d ingest requests are being served; retry shortly", cap(il.slots)))
			return
		}
		b := &ingestBudget{il: il}
		defer func() {
			b.release()
			<-il.slots
		}()
		c.Set(ctxIngestBudget, b)
		c.Next()
	}
}

// trafficRoute is the ingest route.
const trafficRoute = "/api/v1/traffic"

// ingestBudget is one request's share of the byte budget.
type ingestBudget struct {
	il   *ingestLimiter
	mu   sync.Mutex
	held int64
}

// errIngestBytes is what a budgeted reader returns when the shared budget has no room.
type errIngestBytes struct{ max int64 }

func (e errIngestBytes) Error() string {
	return fmt.Sprintf("ingest requests hold %d MiB of bodies at once, the most allowed; retry shortly", e.max>>20)
}

func (e errIngestBytes) Unwrap() error { return errBusy }

// reader returns r drawing on the budget: each read first takes room for what it may return.
func (b *ingestBudget) reader(r io.Reader) io.Reader {
	if b == nil {
		return r
	}
	return &budgetReader{b: b, r: r}
}

func (b *ingestBudget) grow(n int64) bool {
	if !b.il.bytes.TryAcquire(n) {
		b.il.refused.WithLabelValues("bytes").Inc()
		return false
	}
	b.mu.Lock()
	b.held += n
	b.mu.Unlock()
	return true
}

func (b *ingestBudget) release() {
	b.mu.Lock()
	held := b.held
	b.held = 0
	b.mu.Unlock()
	if held > 0 {
		b.il.bytes.Release(held)
	}
}

// budgetReader reads at most ingestChunk at a time and takes room in the budget before
// reading past what it holds.
type budgetReader struct {
	b    *ingestBudget
	r    io.Reader
	used int64
	room int64
}

func (br *budgetReader) Read(p []byte) (int, error) {
	if len(p) > ingestChunk {
		p = p[:ingestChunk]
	}
	if br.used+int64(len(p)) > br.room {
		if !br.b.grow(ingestChunk) {
			return 0, errIngestBytes{max: br.b.il.maxBytes}
		}
		br.room += ingestChunk
	}
	n, err := br.r.Read(p)
	br.used += int64(n)
	return n, err
}

// ingestBudgetOf is the request's budget; nil when no limiter runs.
func ingestBudgetOf(c *gin.Context) *ingestBudget {
	if v, ok := c.Get(ctxIngestBudget); ok {
		return v.(*ingestBudget)
	}
	return nil
}

// chunkPool holds the ingestChunk-sized buffers readChunked reads into.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, ingestChunk); return &b }}

// readChunked reads r to its end in pooled buffers of ingestChunk bytes and returns the bytes
// in one slice, with a function that gives the buffers back once the slice is no longer used.
// Unlike a buffer that doubles as it grows, a body still being read holds only about its
// size, with no garbage: a stalled upload costs what the byte budget charged it.
func readChunked(r io.Reader) (data []byte, release func(), err error) {
	var chunks []*[]byte
	release = func() {
		for _, c := range chunks {
			chunkPool.Put(c)
		}
		chunks = nil
	}
	total, last := 0, 0
	for {
		c := chunkPool.Get().(*[]byte)
		chunks = append(chunks, c)
		n, rerr := fill(r, *c)
		total, last = total+n, n
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, release, rerr
		}
	}
	if len(chunks) == 1 {
		return (*chunks[0])[:last], release, nil
	}
	data = make([]byte, 0, total)
	for _, c := range chunks[:len(chunks)-1] {
		data = append(data, *c...)
	}
	data = append(data, (*chunks[len(chunks)-1])[:last]...)
	release() // the chunks were copied
	return data, func() {}, nil
}

// fill reads into p until it is full, r ends (io.EOF) or fails; unlike io.ReadFull it passes
// r's own errors through unchanged (a truncated gzip stream's io.ErrUnexpectedEOF among them).
func fill(r io.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
