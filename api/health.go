package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

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
				res = checkResult{Status: "fail", Error: err.Error()}
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
	status := http.StatusOK
	for _, r := range body.Checks {
		if r.Status != "ok" {
			status = http.StatusServiceUnavailable
			body.Status = "unavailable"
		}
	}
	c.JSON(status, body)
}

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
