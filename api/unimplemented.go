package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/patronus-sdwan/patronus/api/apigen"
)

// notImplemented answers 501 for operations whose handlers are not written yet. Each handler
// file that lands removes its operations from this file; it must end up empty.
func notImplemented(c *gin.Context) {
	writeProblem(c, Problem{Type: problemTypeBase + "not-implemented", Title: "Not implemented", Status: http.StatusNotImplemented,
		Detail: "this operation is not implemented yet", Instance: c.Request.URL.Path, RequestID: requestID(c)})
}

// ClearCaches is not implemented yet.
func (s *Server) ClearCaches(c *gin.Context) { notImplemented(c) }

// ListCaches is not implemented yet.
func (s *Server) ListCaches(c *gin.Context) { notImplemented(c) }

// ClearCache is not implemented yet.
func (s *Server) ClearCache(c *gin.Context, _ apigen.CacheName) { notImplemented(c) }

// GetPathMetrics is not implemented yet.
func (s *Server) GetPathMetrics(c *gin.Context, _ apigen.PathID) { notImplemented(c) }

// ReplacePathMetrics is not implemented yet.
func (s *Server) ReplacePathMetrics(c *gin.Context, _ apigen.PathID) { notImplemented(c) }

// GetRoutingDecision is not implemented yet.
func (s *Server) GetRoutingDecision(c *gin.Context, _ apigen.GetRoutingDecisionParams) {
	notImplemented(c)
}
