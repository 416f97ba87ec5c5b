package main

import (
	"net"
	"net/http"

	"golang.org/x/net/netutil"
)

// newHTTPServer is the server of the API with the timeouts of the settings: a client that
// sends its headers or body too slowly, or reads its response too slowly, loses its
// connection instead of holding it. Event streams extend their write deadline per write.
func newHTTPServer(l httpLimits, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
}

// limitListener caps the connections open at once: past the cap, Accept waits until one
// closes, so new clients queue in the kernel's listen backlog instead of using up the
// process's file descriptors (20,000 idle connections once ended in "too many open files"
// and a /healthz that no longer answered).
func limitListener(ln net.Listener, l httpLimits) net.Listener {
	return netutil.LimitListener(ln, l.MaxConnections)
}
