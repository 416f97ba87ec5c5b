package flowexport

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
)

// errTooManyTemplates is what AddTemplate returns for a new template past the bound; the
// decoder then fails the datagram, which is counted as a decode error.
var errTooManyTemplates = errors.New("too many templates for one exporter")

// errEmptyTemplate refuses a template whose records would take no bytes: goflow2's data set
// loop would never end on one (it loops while the set has at least a record's size left).
var errEmptyTemplate = errors.New("template describes records of zero bytes")

// templateStore is one exporter's templates, keyed by version, observation domain and template
// id: it implements goflow2's netflow.NetFlowTemplateSystem with a bound and an expiry.
type templateStore struct {
	mu        sync.Mutex
	templates map[uint64]storedTemplate
	max       int
	ttl       time.Duration
	now       func() time.Time
}

type storedTemplate struct {
	template any           // as goflow2 decoded it
	data     *dataTemplate // for a data template: what GetTemplate hands out
	expires  int64         // unix nanoseconds
}

// dataTemplate is what GetTemplate returns for a data template instead of goflow2's own
// TemplateRecord: goflow2 does not know the type, so it hands the data set back undecoded
// (a RawFlowSet, without error) and Batch.addRecords reads it in place.
type dataTemplate struct {
	fields  []netflow.Field
	minSize int // at least 1: AddTemplate refuses empty templates
}

func newTemplateStore(max int, ttl time.Duration, now func() time.Time) *templateStore {
	return &templateStore{templates: make(map[uint64]storedTemplate), max: max, ttl: ttl, now: now}
}

func templateKey(version uint16, domain uint32, id uint16) uint64 {
	return uint64(version)<<48 | uint64(domain)<<16 | uint64(id)
}

// AddTemplate stores or refreshes a template; a refresh restarts its expiry.
func (s *templateStore) AddTemplate(version uint16, domain uint32, id uint16, template any) error {
	if recordSize(template) == 0 {
		return errEmptyTemplate
	}
	key := templateKey(version, domain, id)
	now := s.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.templates[key]; !ok && len(s.templates) >= s.max {
		s.expireLocked(now)
		if len(s.templates) >= s.max {
			return fmt.Errorf("%w (%d)", errTooManyTemplates, s.max)
		}
	}
	st := storedTemplate{template: template, expires: now + s.ttl.Nanoseconds()}
	if t, ok := template.(netflow.TemplateRecord); ok {
		st.data = &dataTemplate{fields: t.Fields, minSize: recordSize(template)}
	}
	s.templates[key] = st
	return nil
}

// GetTemplate returns a template not yet expired (a *dataTemplate for a data template),
// or netflow.ErrorTemplateNotFound.
func (s *templateStore) GetTemplate(version uint16, domain uint32, id uint16) (any, error) {
	key := templateKey(version, domain, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.templates[key]
	if !ok {
		return nil, netflow.ErrorTemplateNotFound
	}
	if s.now().UnixNano() >= t.expires {
		delete(s.templates, key)
		return nil, netflow.ErrorTemplateNotFound
	}
	if t.data != nil {
		return t.data, nil
	}
	return t.template, nil
}

// RemoveTemplate forgets a template (IPFIX template withdrawal).
func (s *templateStore) RemoveTemplate(version uint16, domain uint32, id uint16) (any, error) {
	key := templateKey(version, domain, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.templates[key]
	if !ok {
		return nil, netflow.ErrorTemplateNotFound
	}
	delete(s.templates, key)
	return t.template, nil
}

// GetTemplates returns a copy of the templates not yet expired.
func (s *templateStore) GetTemplates() netflow.FlowBaseTemplateSet {
	now := s.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(netflow.FlowBaseTemplateSet, len(s.templates))
	for k, t := range s.templates {
		if now < t.expires {
			out[k] = t.template
		}
	}
	return out
}

// dropDomain forgets every template of one observation domain, after the exporter restarted.
func (s *templateStore) dropDomain(version uint16, domain uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.templates {
		if uint16(k>>48) == version && uint32(k>>16) == domain {
			delete(s.templates, k)
		}
	}
}

// count is the number of templates not yet expired; it removes the expired ones.
func (s *templateStore) count() int {
	now := s.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	return len(s.templates)
}

func (s *templateStore) expireLocked(now int64) {
	for k, t := range s.templates {
		if now >= t.expires {
			delete(s.templates, k)
		}
	}
}

// recordSize is the least number of bytes one record of a template takes: its fixed-length
// fields plus one length byte per variable-length field.
func recordSize(template any) int {
	var fieldSets [][]netflow.Field
	switch t := template.(type) {
	case netflow.TemplateRecord:
		fieldSets = [][]netflow.Field{t.Fields}
	case netflow.NFv9OptionsTemplateRecord:
		fieldSets = [][]netflow.Field{t.Scopes, t.Options}
	case netflow.IPFIXOptionsTemplateRecord:
		fieldSets = [][]netflow.Field{t.Scopes, t.Options}
	default:
		return 0
	}
	n := 0
	for _, fields := range fieldSets {
		for _, f := range fields {
			if f.Length == 0xffff {
				n++
			} else {
				n += int(f.Length)
			}
		}
	}
	return n
}
