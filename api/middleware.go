package api

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Context keys set by the middleware.
const (
	ctxRequestID = "patronus.request_id"
	ctxLogger    = "patronus.logger"
	ctxPrincipal = "patronus.principal"
)

// headerRequestID carries the request id in both directions.
const headerRequestID = "X-Request-ID"

// Body size limits: inventory writes are small; a traffic batch of 10,000 reports is ~1.5 MB.
const (
	maxBodyBytes        = 1 << 20
	maxTrafficBodyBytes = 16 << 20
)

// requestIDMiddleware takes the client's X-Request-ID when it is sane, or makes one, and
// echoes it on the response.
func requestIDMiddleware(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(headerRequestID)
		if !validRequestID(id) {
			id = newRequestID()
		}
		c.Set(ctxRequestID, id)
		c.Set(ctxLogger, log.With("request_id", id))
		c.Header(headerRequestID, id)
		c.Next()
	}
}

// newRequestID makes a random request id.
func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}

func requestID(c *gin.Context) string { return c.GetString(ctxRequestID) }

func loggerFrom(c *gin.Context) *slog.Logger {
	if l, ok := c.Get(ctxLogger); ok {
		return l.(*slog.Logger)
	}
	return slog.Default()
}

// recoveryMiddleware turns a panic into a logged 500 problem; no panic reaches the client as a
// dropped connection.
func recoveryMiddleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			rec := recover()
			if rec == nil {
				return
			}
			if rec == http.ErrAbortHandler {
				panic(rec)
			}
			loggerFrom(c).Error("panic in handler", "panic", fmt.Sprint(rec), "path", c.Request.URL.Path, "stack", string(debug.Stack()))
			if c.Writer.Written() {
				c.Abort()
				return
			}
			writeError(c, fmt.Errorf("panic: %v", rec))
		}()
		c.Next()
	}
}

// quietRoutes are logged at debug level: probes and scrapes arrive every few seconds and
// say nothing about what clients do.
var quietRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// accessLogMiddleware logs one line per request once it is answered: at info level, debug for
// the quiet routes, error for 5xx. The line has the method, the route (the spec's path
// template), the path, the status, the duration, the request id (from the request's logger)
// and the token's name when one was accepted; never the token, any header or the query.
func accessLogMiddleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		status := c.Writer.Status()
		route := routeTemplate(c.FullPath())
		level := slog.LevelInfo
		switch {
		case status >= 500:
			level = slog.LevelError
		case quietRoutes[route]:
			level = slog.LevelDebug
		}
		log := loggerFrom(c)
		ctx := c.Request.Context()
		if !log.Enabled(ctx, level) {
			return
		}
		attrs := []any{"method", c.Request.Method, "route", route, "path", c.Request.URL.Path, "status", status,
			"duration_ms", float64(time.Since(start).Microseconds()) / 1000, "bytes", max(c.Writer.Size(), 0)}
		if p := principalOf(c); p.Name != "" {
			attrs = append(attrs, "actor", p.Name)
		}
		log.Log(ctx, level, "request", attrs...)
	}
}

// routeTemplate writes gin's route (/api/v1/sites/:site_id) as the spec's path template
// (/api/v1/sites/{site_id}); a request that matched no route is "unmatched".
func routeTemplate(fullPath string) string {
	if fullPath == "" {
		return "unmatched"
	}
	if !strings.Contains(fullPath, ":") {
		return fullPath
	}
	parts := strings.Split(fullPath, "/")
	for i, p := range parts {
		if name, ok := strings.CutPrefix(p, ":"); ok {
			parts[i] = "{" + name + "}"
		}
	}
	return strings.ReplaceAll(strings.Join(parts, "/"), `\:`, ":") // gin escapes a literal colon
}

// bodyLimitMiddleware caps request bodies; reading past the cap fails with errTooLarge.
func bodyLimitMiddleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		limit := int64(maxBodyBytes)
		if c.FullPath() == "/api/v1/traffic" {
			limit = maxTrafficBodyBytes
		}
		if c.Request.ContentLength > limit {
			writeError(c, tooLargeError(limit, fmt.Sprintf("the body is %d bytes; the limit is %d", c.Request.ContentLength, limit)))
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
		c.Next()
	}
}

// readBody reads the whole request body, translating the size limit into errTooLarge.
func readBody(c *gin.Context) ([]byte, error) {
	body, err := io.ReadAll(c.Request.Body)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, tooLargeError(tooLarge.Limit, fmt.Sprintf("the body is over the limit of %d bytes", tooLarge.Limit))
	}
	if err != nil {
		return nil, newError(errBadRequest, "reading the body: %v", err)
	}
	return body, nil
}

// tooLargeError is a 413 naming the body, like every other input error names its field.
func tooLargeError(limit int64, detail string) error {
	return &apiError{kind: errTooLarge, detail: detail,
		fields: []FieldError{{Field: "body", Message: fmt.Sprintf("over the limit of %d bytes", limit)}}}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// refuse answers a request that is not let in (no or a bad token, too many attempts, the
// server busy) without reading its body; writeError closes the connection for these kinds.
func refuse(c *gin.Context, err error) { writeError(c, err) }

// unreadBodyKinds are the error kinds answered before the body is read.
var unreadBodyKinds = []error{errUnauthenticated, errTooManyRequests, errBusy}

// closeUnread prepares the answer to a request whose body will not be read: the server
// would otherwise read up to 256 KB of the unread body before answering, or before reusing
// the connection, and a client that announces a body and then falls silent would hold both
// until the read timeout. It says Connection: close, and once the answer is written, ends
// the read side (see afterUnread).
func closeUnread(c *gin.Context, err error) bool {
	for _, k := range unreadBodyKinds {
		if errors.Is(err, k) {
			c.Header("Connection", "close")
			return true
		}
	}
	return false
}

// afterUnread passes the read deadline: the response is flushed before the server closes
// the request body, and with the deadline gone that close reads nothing, so the connection
// ends at once.
func afterUnread(c *gin.Context) {
	if err := http.NewResponseController(c.Writer).SetReadDeadline(time.Now()); err != nil && !errors.Is(err, http.ErrNotSupported) {
		loggerFrom(c).Debug("end the read side of a refused request", "err", err)
	}
}
