package main

import (
	"net"
	"net/url"
	"sync"
	"testing"
)

// Modes of a dbProxy.
const (
	proxyForward   = iota // pass traffic both ways
	proxyRefuse           // close every connection, new and open: a server that is down
	proxyBlackhole        // accept and hold connections but pass nothing: a silent network
)

// dbProxy is a TCP proxy between the service and the test PostgreSQL that a test can cut,
// so outages are made without touching the machine's shared server.
type dbProxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  int
	conns map[net.Conn]struct{}
}

// newDBProxy starts a proxy to the server of the postgres URL dbURL, forwarding, and returns
// it with the URL that goes through it.
func newDBProxy(t *testing.T, dbURL string) (*dbProxy, string) {
	t.Helper()
	parsed, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dbProxy{t: t, ln: ln, target: parsed.Host, conns: map[net.Conn]struct{}{}}
	var wg sync.WaitGroup
	wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.setMode(proxyRefuse)
		wg.Wait()
	})
	parsed.Host = ln.Addr().String()
	return p, parsed.String()
}

// setMode switches the proxy; refusing and blackholing end the traffic of open connections
// too (refusing closes them, blackholing stops copying).
func (p *dbProxy) setMode(mode int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
	if mode == proxyForward {
		return
	}
	for c := range p.conns {
		if mode == proxyRefuse {
			c.Close()
			delete(p.conns, c)
		}
	}
}

func (p *dbProxy) currentMode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

func (p *dbProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		if mode == proxyRefuse {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		if mode == proxyBlackhole {
			continue // held open, never answered, closed by a later refuse or the cleanup
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[up] = struct{}{}
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

// pipe copies src to dst while the proxy forwards; in blackhole mode it stops copying and
// holds both ends.
func (p *dbProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.currentMode() == proxyBlackhole {
				return // the bytes are dropped; the peer waits
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}
