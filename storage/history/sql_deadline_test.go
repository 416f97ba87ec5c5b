package history_test

import (
	"context"
	"net"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/history"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// silenceableProxy forwards TCP to target until silenced; from then on it swallows every byte
// in both directions and keeps the connections open, as a network gone silent does.
type silenceableProxy struct {
	ln     net.Listener
	silent atomic.Bool
}

func newSilenceableProxy(t *testing.T, target string) *silenceableProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &silenceableProxy{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go p.pipe(c, up)
			go p.pipe(up, c)
		}
	}()
	return p
}

func (p *silenceableProxy) pipe(from, to net.Conn) {
	defer from.Close()
	defer to.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 && !p.silent.Load() {
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestSQLHistoryHasStatementDeadlines: with the network to PostgreSQL gone silent, the SQL
// history store's reads and writes (database/sql, outside GORM's deadline callbacks) fail as
// unavailable soon after the statement deadline instead of hanging.
func TestSQLHistoryHasStatementDeadlines(t *testing.T) {
	ctx := context.Background()
	raw := storagetest.PostgresSchemaURL(t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := storage.Open(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if err := direct.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	proxy := newSilenceableProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	db, err := storage.OpenWith(ctx, u.String(), storage.Options{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := history.NewSQLHistory(db)
	now := time.Now().Truncate(time.Second)
	delta := []history.PolicyDelta{{PolicyID: 1, Instance: "a", Time: now, Packets: 1, Bytes: 1}}
	if err := h.WriteDeltas(ctx, delta); err != nil {
		t.Fatalf("write before the silence: %v", err)
	}
	proxy.silent.Store(true)
	start := time.Now()
	_, err = h.QueryPolicy(ctx, 1, now.Add(-time.Hour), now.Add(time.Minute), time.Minute)
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("a query over a silent network took %s with a 300 ms deadline", took)
	}
	if _, ok := storage.AsUnavailable(err); !ok {
		t.Fatalf("query over a silent network: %v, want it unavailable", err)
	}
	start = time.Now()
	err = h.WriteDeltas(ctx, delta)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a write over a silent network took %s with a 4 × 300 ms deadline", took)
	}
	if err == nil {
		t.Fatal("a write over a silent network succeeded")
	}
}
