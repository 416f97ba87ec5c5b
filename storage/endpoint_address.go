package storage

import (
	"context"
	"fmt"
	"net/netip"
)

// SitesByAddress maps every endpoint address to the site of its endpoint, for attributing
// flow exporters to sites. Addresses compare as IP addresses, not as text. Stored addresses
// are unique, but an IPv4-mapped IPv6 address and its IPv4 address are two rows that map to
// one key here: the site of the first created endpoint wins.
func (s *EndpointStore) SitesByAddress(ctx context.Context) (map[netip.Addr]string, error) {
	var rows []struct {
		SiteID  string
		Address string
	}
	err := s.db.WithContext(ctx).Model(&Endpoint{}).Select("site_id", "address").
		Order("created_at, id").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("endpoint sites by address: %w", err)
	}
	out := make(map[netip.Addr]string, len(rows))
	for _, r := range rows {
		a, err := netip.ParseAddr(r.Address)
		if err != nil {
			continue
		}
		a = a.Unmap().WithZone("")
		if _, ok := out[a]; !ok {
			out[a] = r.SiteID
		}
	}
	return out, nil
}
