package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	patronus "github.com/patronus-sdwan/patronus"
)

// Check is one dependency that readiness depends on.
type Check struct {
	// Name identifies the dependency in the /readyz body: "database", "influxdb".
	Name string
	// Probe returns nil when the dependency can serve requests.
	Probe func(ctx context.Context) error
	// Detail, when set, returns one word shown beside the status (for InfluxDB, the read
	// path: "influxql", "flux-aggregatewindow"); it must not hold addresses or secrets.
	Detail func() string
}

// checkResult is one dependency's state in the /readyz body.
type checkResult struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// readinessBody is the /readyz response.
type readinessBody struct {
	Status string                 `json:"status"`
	Checks map[string]checkResult `json:"checks"`
}

// GetHealth answers while the process runs.
func (s *Server) GetHealth(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readinessProblem is the /readyz answer when a dependency fails: a problem whose detail
// names the failing dependencies in words, with the checks beside it. Why a check failed
// (addresses, users, driver text) goes to the log only.
type readinessProblem struct {
	Problem
	Checks map[string]checkResult `json:"checks"`
}

// GetReadiness probes every dependency in parallel under one deadline and answers 503 naming
// the ones that failed.
func (s *Server) GetReadiness(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	body := readinessBody{Status: "ready", Checks: make(map[string]checkResult, len(s.checks))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, chk := range s.checks {
		wg.Go(func() {
			res := checkResult{Status: "ok"}
			if err := s.probe(ctx, c, chk); err != nil {
				res = checkResult{Status: "fail", Error: "unavailable"}
				readinessLog.Do(func() { loggerFrom(c).Warn("readiness check failed", "check", chk.Name, "err", err) })
			}
			if chk.Detail != nil {
				res.Detail = chk.Detail()
			}
			mu.Lock()
			body.Checks[chk.Name] = res
			mu.Unlock()
		})
	}
	wg.Wait()
	var failed []string
	for _, chk := range s.checks {
		if body.Checks[chk.Name].Status != "ok" {
			failed = append(failed, chk.Name+": unavailable")
		}
	}
	if len(failed) == 0 {
		c.JSON(http.StatusOK, body)
		return
	}
	c.Header("Retry-After", "5")
	c.Header("Content-Type", problemContentType)
	c.Status(http.StatusServiceUnavailable)
	out, err := json.Marshal(readinessProblem{
		Problem: Problem{Type: problemTypeBase + "unavailable", Title: "Service unavailable", Status: http.StatusServiceUnavailable,
			Detail: strings.Join(failed, ", "), Instance: problemInstance(c), RequestID: requestID(c)},
		Checks: body.Checks,
	})
	if err == nil {
		_, _ = c.Writer.Write(out)
	}
}

// readinessLog spaces out the log lines of failed readiness checks, which probes repeat.
var readinessLog = rate.Sometimes{Interval: 10 * time.Second}

// probe runs one check. It runs on a goroutine of its own, out of the recovery middleware's
// reach, so a panicking probe is caught here and counts as a failed check instead of ending
// the process.
func (s *Server) probe(ctx context.Context, c *gin.Context, chk Check) (err error) {
	defer func() {
		if rec := recover(); rec != nil {
			loggerFrom(c).Error("panic in readiness probe", "check", chk.Name, "panic", fmt.Sprint(rec), "stack", string(debug.Stack()))
			err = errors.New("the probe panicked")
		}
	}()
	return chk.Probe(ctx)
}

// GetOpenAPISpec serves openapi.yaml as compiled into the binary.
func (s *Server) GetOpenAPISpec(c *gin.Context) {
	c.Data(http.StatusOK, "application/yaml", patronus.OpenAPI)
}

// GetDocs serves the API documentation page.
func (s *Server) GetDocs(c *gin.Context) { s.docs(c) }

// GetDocsAsset serves the documentation page's scripts and styles.
func (s *Server) GetDocsAsset(c *gin.Context, _ string) { s.docs(c) }
