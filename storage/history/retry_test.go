package history

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestAsWriteErrorIsTheOneDecision checks the shared retry decision: a store's own
// classification is kept however deeply it is wrapped, and what nobody classified is retried.
func TestAsWriteErrorIsTheOneDecision(t *testing.T) {
	permanent := &WriteError{Status: 400, Err: errors.New("unable to parse")}
	later := &WriteError{Status: 429, Retryable: true, RetryAfter: 3 * time.Second, Err: errors.New("slow down")}
	for name, tc := range map[string]struct {
		err        error
		retryable  bool
		retryAfter time.Duration
	}{
		"Permanent":           {permanent, false, 0},
		"WrappedPermanent":    {fmt.Errorf("flush: %w", permanent), false, 0},
		"RetryAfterKept":      {fmt.Errorf("flush: %w", later), true, 3 * time.Second},
		"Unclassified":        {errors.New("something nobody classified"), true, 0},
		"DeadlineExceeded":    {context.DeadlineExceeded, true, 0},
		"WrappedUnclassified": {fmt.Errorf("write: %w", errors.New("eof")), true, 0},
	} {
		t.Run(name, func(t *testing.T) {
			werr := AsWriteError(tc.err)
			if werr.Retryable != tc.retryable || werr.RetryAfter != tc.retryAfter || !errors.Is(werr, tc.err) && !errors.Is(tc.err, werr) {
				t.Fatalf("AsWriteError(%v) = %+v, want retryable %v after %s", tc.err, werr, tc.retryable, tc.retryAfter)
			}
		})
	}
	// The InfluxDB classifier falls back on the same decision for a failure without an answer.
	if werr := classifyInfluxError(fmt.Errorf("write: %w", context.DeadlineExceeded)); !werr.Retryable {
		t.Fatalf("influx failure without an HTTP answer = %+v, want retryable", werr)
	}
}
