package storage

import (
	"time"
)

// Site is a location of the SD-WAN: a branch, a data centre, a cloud region.
type Site struct {
	ID          string `gorm:"primaryKey"`
	Name        string `gorm:"uniqueIndex"`
	Location    string
	Description string
	// Version increases on every update; the API exposes it as the ETag for If-Match.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Endpoint is a WAN-facing interface of a site.
type Endpoint struct {
	ID        string `gorm:"primaryKey"`
	SiteID    string
	Name      string
	Interface string
	Address   string
	WANKind   string `gorm:"column:wan_kind"`
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Path statuses.
const (
	PathUp       = "up"
	PathDegraded = "degraded"
	PathDown     = "down"
)

// Path is a tunnel between a local and a remote endpoint.
type Path struct {
	ID               int64 `gorm:"primaryKey"`
	Name             string
	LocalEndpointID  string
	RemoteEndpointID string
	Status           string
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// PathMetrics is the latest measurement of a path; one row per path.
type PathMetrics struct {
	PathID        int64 `gorm:"primaryKey;autoIncrement:false"`
	LatencyMs     float64
	JitterMs      float64
	PacketLossPct float64
	BandwidthMbps float64
	MTU           int `gorm:"column:mtu"`
	Score         int
	MeasuredAt    time.Time
	UpdatedAt     time.Time
}

// TableName pins the table name so GORM does not pluralise "metrics".
func (PathMetrics) TableName() string { return "path_metrics" }

// PortRange is an inclusive range of TCP/UDP ports.
type PortRange struct {
	From uint16 `json:"from"`
	To   uint16 `json:"to"`
}

// Policy actions.
const (
	ActionPreferPath = "prefer_path"
	ActionDrop       = "drop"
)

// Policy is a routing policy: traffic matching its criteria is counted against it and
// steered by its action. Lower Priority wins.
type Policy struct {
	ID       int64 `gorm:"primaryKey"`
	Name     string
	Priority int
	Enabled  bool
	// Protocol is the IP protocol number; nil matches any protocol.
	Protocol *int
	// SrcCIDR and DstCIDR are prefixes; empty matches any address.
	SrcCIDR  string      `gorm:"column:src_cidr"`
	DstCIDR  string      `gorm:"column:dst_cidr"`
	SrcPorts []PortRange `gorm:"serializer:json"`
	DstPorts []PortRange `gorm:"serializer:json"`
	// ActionType is ActionPreferPath or ActionDrop.
	ActionType string
	// PathID is the preferred path; the database sets it to NULL when the path is deleted.
	PathID    *int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// AuditEntry is a change of the feed as the audit log shows it: who did what to which
// resource. Its ID is the change's seq.
type AuditEntry struct {
	ID           int64 `gorm:"primaryKey;column:seq"`
	Time         time.Time
	Actor        string
	Action       string
	ResourceKind string
	ResourceID   string
	Details      map[string]any `gorm:"serializer:json"`
}

// TableName is the change feed, which is the audit log.
func (AuditEntry) TableName() string { return "changes" }

// Roles of API tokens, in increasing power.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
	RoleAdmin    = "admin"
)

// APIToken is a bearer token; only the SHA-256 of its secret is stored.
type APIToken struct {
	ID         int64 `gorm:"primaryKey"`
	Name       string
	Role       string
	Hash       string `gorm:"uniqueIndex"`
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// PolicyStat is a row of the SQL history table policy_stats.
type PolicyStat struct {
	ID          int64 `gorm:"primaryKey"`
	PolicyID    int64
	Timestamp   time.Time
	Instance    string
	Packets     int64
	Bytes       int64
	ActiveFlows int64
}
