package api

import (
	"cmp"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/spool"
)

// TrafficSpool is the durable log ingest batches are appended to before they are
// acknowledged; *spool.Spool implements it.
type TrafficSpool interface {
	Append(ctx context.Context, deltas []spool.Delta) error
}

// IngestTraffic records a batch of traffic reports, all or nothing. The body is decoded and
// validated by collector.DecodeBatch, not by the spec middleware: validating 10,000 reports
// against the schema costs far more than recording them.
func (s *Server) IngestTraffic(c *gin.Context, params apigen.IngestTrafficParams) {
	if s.cfg.Collector == nil {
		writeError(c, errors.New("ingest traffic: no collector is configured"))
		return
	}
	reports, err := readTraffic(c, params, func(r []collector.Report) collector.ValidationErrors {
		return s.checkReports(c.Request.Context(), r)
	})
	if err = deferredInputError(c, err); err != nil {
		s.cfg.Collector.ObserveRejected()
		writeError(c, err)
		return
	}
	res, err := s.recordTraffic(c.Request.Context(), reports) // counts its own rejections
	if err != nil {
		writeError(c, trafficError(err))
		return
	}
	c.JSON(http.StatusOK, apigen.TrafficResult{
		Accepted:     int64(res.Accepted),
		Classified:   int64(res.Accepted - res.Unclassified),
		Unclassified: int64(res.Unclassified),
	})
}

// readTraffic reads and decodes the batch of an ingest request, decompressing it if needed.
func readTraffic(c *gin.Context, params apigen.IngestTrafficParams, check func([]collector.Report) collector.ValidationErrors) ([]collector.Report, error) {
	if mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type")); err != nil || mt != "application/json" {
		return nil, fieldErrors(errUnsupportedMedia, []FieldError{{Field: "Content-Type", Message: "must be application/json"}})
	}
	body := io.Reader(c.Request.Body)
	if params.ContentEncoding != nil && *params.ContentEncoding == apigen.IngestTrafficParamsContentEncodingGzip {
		gz, err := openGzip(body)
		if err != nil {
			return nil, bodyReadError(err)
		}
		defer closeGzip(gz)
		body = &decompressedLimit{r: gz, left: maxTrafficBodyBytes + 1}
	}
	body = ingestBudgetOf(c).reader(body) // bounds the bytes all ingest requests hold at once
	data, release, err := readChunked(body)
	defer release()
	if err != nil {
		if errors.Is(err, errBusy) {
			return nil, err
		}
		return nil, trafficError(fmt.Errorf("read traffic batch: %w", err))
	}
	reports, err := collector.DecodeBatchBytes(data, collector.MaxBatchReports)
	if errors.Is(err, errBusy) {
		return nil, err
	}
	var decodeErrs collector.ValidationErrors
	if errors.As(err, &decodeErrs) || (err == nil && reports != nil) {
		// Every value was read: add what the decoder cannot see (policy ids, both addresses of
		// a flow), so the client learns every problem at once.
		errs := append(decodeErrs, familyErrors(reports)...)
		if check != nil {
			errs = append(errs, check(reports)...)
		}
		slices.SortStableFunc(errs, func(a, b *collector.ValidationError) int { return cmp.Compare(a.Index, b.Index) })
		if len(errs) > collector.MaxValidationErrors {
			errs = errs[:collector.MaxValidationErrors]
		}
		if len(errs) > 0 {
			err = errs
		}
	}
	if err != nil {
		return nil, trafficError(err)
	}
	if len(reports) == 0 {
		return nil, fieldError("reports", "must hold at least 1 report")
	}
	return reports, nil
}

// trafficError turns an error of DecodeBatch or RecordBatch into an API error: malformed JSON
// is a 400, too many reports a 413, anything else about the content a 422 naming the report
// and field; errors reading the body are sorted by bodyReadError.
// familyErrors names the flows whose source and destination are of different address families:
// the spec's FlowKey allows none, and no policy could match one.
func familyErrors(reports []collector.Report) collector.ValidationErrors {
	var errs collector.ValidationErrors
	for i := range reports {
		f := &reports[i].Flow
		if f.SrcIP.IsValid() && f.DstIP.IsValid() && f.SrcIP.Is4() != f.DstIP.Is4() {
			errs = append(errs, &collector.ValidationError{Index: i, Field: fmt.Sprintf("reports[%d].flow.dst_ip", i),
				Message: "must be of the same address family as src_ip (both IPv4 or both IPv6)"})
			if len(errs) >= collector.MaxValidationErrors {
				break
			}
		}
	}
	return errs
}

func trafficError(err error) error {
	if errors.Is(err, errUnavailable) {
		return err // the spool could not take the batch: nothing was recorded
	}
	var many collector.ValidationErrors
	if errors.As(err, &many) {
		kind := errValidation
		fields := make([]FieldError, 0, len(many))
		for _, ve := range many {
			switch ve.Kind {
			case collector.MalformedJSON:
				kind = errBadRequest
			case collector.TooManyReports:
				return trafficError(ve)
			}
			fields = append(fields, FieldError{Field: cmp.Or(ve.Field, "body"), Message: ve.Message})
		}
		return fieldErrors(kind, fields)
	}
	var ve *collector.ValidationError
	if !errors.As(err, &ve) {
		return bodyReadError(err)
	}
	field := ve.Field
	if field == "" {
		field = "body"
	}
	fields := []FieldError{{Field: field, Message: ve.Message}}
	switch ve.Kind {
	case collector.MalformedJSON:
		return fieldErrors(errBadRequest, fields)
	case collector.TooManyReports:
		return &apiError{kind: errTooLarge, detail: fmt.Sprintf("a batch holds at most %d reports", collector.MaxBatchReports), fields: fields}
	}
	return fieldErrors(errValidation, fields)
}

// errDecompressedTooLarge is what decompressedLimit returns past its limit.
var errDecompressedTooLarge = errors.New("decompressed body too large")

// bodyReadError sorts the failures of reading a (possibly compressed) body: over a size limit
// is a 413, a corrupt or truncated gzip stream or a broken upload a 400.
func bodyReadError(err error) error {
	var tooLarge *http.MaxBytesError
	var corrupt flate.CorruptInputError
	switch {
	case errors.As(err, &tooLarge):
		return fieldErrors(errTooLarge, []FieldError{{Field: "body", Message: fmt.Sprintf("over the limit of %d bytes", tooLarge.Limit)}})
	case errors.Is(err, errDecompressedTooLarge):
		return fieldErrors(errTooLarge, []FieldError{{Field: "body", Message: fmt.Sprintf("over the limit of %d bytes decompressed", maxTrafficBodyBytes)}})
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum), errors.As(err, &corrupt),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fieldErrors(errBadRequest, []FieldError{{Field: "body", Message: "not a valid gzip stream: " + rootCause(err)}})
	}
	return fieldErrors(errBadRequest, []FieldError{{Field: "body", Message: "reading the body: " + rootCause(err)}})
}

// decompressedLimit fails with errDecompressedTooLarge once it has read left bytes; set left
// one over the limit, so that a body of exactly the limit passes. It keeps a small compressed
// body from expanding without bound.
type decompressedLimit struct {
	r    io.Reader
	left int64
}

func (l *decompressedLimit) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left <= 0 {
		return n, errDecompressedTooLarge
	}
	return n, err
}

// gzipReaders reuses gzip readers, whose decompression state is tens of kilobytes.
var gzipReaders sync.Pool

func openGzip(r io.Reader) (*gzip.Reader, error) {
	if gz, ok := gzipReaders.Get().(*gzip.Reader); ok {
		if err := gz.Reset(r); err != nil {
			gzipReaders.Put(gz)
			return nil, err
		}
		return gz, nil
	}
	return gzip.NewReader(r)
}

func closeGzip(gz *gzip.Reader) {
	_ = gz.Close()
	gzipReaders.Put(gz)
}
