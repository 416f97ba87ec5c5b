package flowexport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ListenConfig says where the flow listeners listen and how many goroutines serve them.
type ListenConfig struct {
	// NetFlowAddr is the UDP address of NetFlow v5/v9 and IPFIX, e.g. ":2055"; empty is off.
	NetFlowAddr string
	// SFlowAddr is the UDP address of sFlow v5, e.g. ":6343"; empty is off.
	SFlowAddr string
	// Sockets is how many SO_REUSEPORT sockets each listener opens (the kernel spreads
	// exporters over them); default the number of cores.
	Sockets int
	// Workers is how many goroutines decode; default the number of cores.
	Workers int
	// QueueSize is how many datagrams wait between the sockets and the workers, spread over
	// one queue per worker; a datagram arriving at a full queue is dropped and counted. Each
	// exporter's datagrams go to one worker, so they are decoded in the order they arrived
	// (templates before the data that follows them, sequence numbers in order).
	QueueSize int
	// ReadBuffer is each socket's receive buffer in bytes (SO_RCVBUF); default 4 MiB.
	ReadBuffer int
	// Logger receives start and error reports; nil means slog.Default().
	Logger *slog.Logger
}

// Listeners are the UDP sockets of the flow exports with their decode workers.
type Listeners struct {
	dec     *Decoder
	cfg     ListenConfig
	log     *slog.Logger
	netflow []*net.UDPConn
	sflow   []*net.UDPConn
	queues  []chan *datagram
	free    sync.Pool
}

type datagram struct {
	protocol Protocol // NetFlow for the NetFlow socket (v5, v9 and IPFIX), SFlow
	src      netip.Addr
	data     []byte
}

// Listen opens the configured sockets at once, so that a busy port fails start-up.
func Listen(dec *Decoder, cfg ListenConfig) (*Listeners, error) {
	cores := runtime.GOMAXPROCS(0)
	if cfg.Sockets <= 0 {
		cfg.Sockets = cores
	}
	if cfg.Workers <= 0 {
		cfg.Workers = cores
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = 4 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	l := &Listeners{dec: dec, cfg: cfg, log: cfg.Logger}
	for range cfg.Workers {
		l.queues = append(l.queues, make(chan *datagram, max(1, cfg.QueueSize/cfg.Workers)))
	}
	l.free.New = func() any { return &datagram{data: make([]byte, 0, 2048)} }
	var err error
	if cfg.NetFlowAddr != "" {
		if l.netflow, err = openReusePort(cfg.NetFlowAddr, cfg.Sockets, cfg.ReadBuffer); err != nil {
			return nil, fmt.Errorf("netflow listener: %w", err)
		}
	}
	if cfg.SFlowAddr != "" {
		if l.sflow, err = openReusePort(cfg.SFlowAddr, cfg.Sockets, cfg.ReadBuffer); err != nil {
			l.closeAll()
			return nil, fmt.Errorf("sflow listener: %w", err)
		}
	}
	return l, nil
}

// openReusePort opens n UDP sockets on one address with SO_REUSEPORT. The first fixes the
// port when addr asks for any (":0"), the others bind to the same.
func openReusePort(addr string, n, readBuffer int) ([]*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	var conns []*net.UDPConn
	for i := range n {
		pc, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			for _, c := range conns {
				_ = c.Close()
			}
			return nil, err
		}
		conn := pc.(*net.UDPConn)
		_ = conn.SetReadBuffer(readBuffer) // best effort: the kernel caps it at rmem_max
		conns = append(conns, conn)
		if i == 0 {
			addr = conn.LocalAddr().String()
		}
	}
	return conns, nil
}

// NetFlowAddr is the address the NetFlow socket listens on, nil when it is off.
func (l *Listeners) NetFlowAddr() *net.UDPAddr {
	if len(l.netflow) == 0 {
		return nil
	}
	return l.netflow[0].LocalAddr().(*net.UDPAddr)
}

// SFlowAddr is the address the sFlow socket listens on, nil when it is off.
func (l *Listeners) SFlowAddr() *net.UDPAddr {
	if len(l.sflow) == 0 {
		return nil
	}
	return l.sflow[0].LocalAddr().(*net.UDPAddr)
}

// Run reads and decodes datagrams until ctx is done, then closes the sockets and returns
// once the queued datagrams are decoded. Call it once.
func (l *Listeners) Run(ctx context.Context) {
	var readers, workers sync.WaitGroup
	for _, c := range l.netflow {
		readers.Go(func() { l.read(c, NetFlow) })
	}
	for _, c := range l.sflow {
		readers.Go(func() { l.read(c, SFlow) })
	}
	for _, q := range l.queues {
		workers.Go(func() { l.work(q) })
	}
	l.log.Info("flow listeners started", "netflow", l.cfg.NetFlowAddr, "sflow", l.cfg.SFlowAddr,
		"sockets", l.cfg.Sockets, "workers", l.cfg.Workers, "queue", l.cfg.QueueSize)
	<-ctx.Done()
	l.closeAll()
	readers.Wait()
	for _, q := range l.queues {
		close(q)
	}
	workers.Wait()
}

func (l *Listeners) closeAll() {
	for _, c := range append(l.netflow, l.sflow...) {
		_ = c.Close()
	}
}

// read moves datagrams from one socket to the queue, never waiting on a full queue.
func (l *Listeners) read(conn *net.UDPConn, p Protocol) {
	buf := make([]byte, 65536)
	for {
		n, src, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.log.Warn("flow listener read", "protocol", p, "err", err)
			continue
		}
		d := l.free.Get().(*datagram)
		d.protocol = p
		d.src = src.Addr().Unmap()
		d.data = append(d.data[:0], buf[:n]...)
		select {
		case l.queues[queueOf(d.src, len(l.queues))] <- d:
		default:
			l.dec.metrics.queueDrops[p].Inc()
			l.free.Put(d)
		}
	}
}

// queueOf picks the queue of an exporter address (FNV-1a of its bytes).
func queueOf(a netip.Addr, n int) int {
	if n == 1 {
		return 0
	}
	h := uint32(2166136261)
	for _, c := range a.As16() {
		h = (h ^ uint32(c)) * 16777619
	}
	return int(h % uint32(n))
}

// work decodes the datagrams of one queue until it is closed.
func (l *Listeners) work(q chan *datagram) {
	b := NewBatch()
	for d := range q {
		src := d.src
		if d.protocol == SFlow {
			l.dec.SFlow(b, src, d.data)
		} else {
			l.dec.NetFlow(b, src, d.data)
		}
		l.free.Put(d)
	}
}
