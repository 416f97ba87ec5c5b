package api

import (
	"net/http"
	"net/netip"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/collector/flowexport"
)

// ExporterLister lists the flow exporters seen by the UDP listeners.
type ExporterLister interface {
	Exporters() []flowexport.ExporterInfo
}

// ListExporters answers the flow exporters seen, each attributed to the site whose endpoint
// has its address. With no listener configured the list is empty.
func (s *Server) ListExporters(c *gin.Context) {
	out := apigen.ExporterList{Items: []apigen.Exporter{}}
	if s.cfg.Exporters == nil {
		c.JSON(http.StatusOK, out)
		return
	}
	exporters := s.cfg.Exporters.Exporters()
	var sites map[netip.Addr]string
	if len(exporters) > 0 {
		var err error
		if sites, err = s.store.Endpoints().SitesByAddress(c.Request.Context()); err != nil {
			writeError(c, err)
			return
		}
	}
	for _, e := range exporters {
		item := apigen.Exporter{
			Address: e.Address.String(), Protocol: apigen.ExporterProtocol(e.Protocol), Version: e.Version,
			FirstSeen: e.FirstSeen, LastSeen: e.LastSeen,
			Datagrams: counterOut(e.Datagrams), FlowRecords: counterOut(e.FlowRecords),
			DecodeErrors: counterOut(e.DecodeErrors), UnknownTemplates: counterOut(e.UnknownTemplates),
			Restarts: counterOut(e.Restarts), Templates: e.Templates, SamplingRate: int64(max(e.SamplingRate, 1)),
		}
		if id, ok := sites[e.Address]; ok {
			if u, err := uuid.Parse(id); err == nil {
				item.SiteID = &u
			}
		}
		out.Items = append(out.Items, item)
	}
	c.JSON(http.StatusOK, out)
}
