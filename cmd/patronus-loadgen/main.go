// Command patronus-loadgen drives traffic reports at a running Patronus server over HTTP, as
// a fleet of edge routers would, and prints a progress line each second and a summary at the
// end: batches, reports per second, batch latency percentiles and errors.
//
//	patronus-loadgen --url http://127.0.0.1:8080 --token $TOKEN --batch 1000 \
//	    --concurrency 4 --duration 30s --flows 100000 --policies 20 --gzip
//
// Reports are spread over --flows flows, of which a --churn share is replaced by new flows as
// the run goes on. With --policies N, the ids of up to N of the server's policies are put in
// three reports out of four; the fourth is left for the server to classify.
//
// With --mode netflow it sends NetFlow v9 or IPFIX datagrams to a UDP listener instead
// (PATRONUS_NETFLOW_LISTEN), template first, at --record-rate flow records per second:
//
//	patronus-loadgen --mode netflow --netflow-target 127.0.0.1:2055 --netflow-version 10 \
//	    --record-rate 200000 --duration 30s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "patronus-loadgen:", err)
		os.Exit(1)
	}
}

// run parses the flags, drives the load until the duration is over or ctx is cancelled, and
// prints the summary to stdout and progress to stderr. It fails when no batch succeeded.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.mode == "netflow" {
		sum, err := generateNetFlow(ctx, cfg, stderr)
		if err != nil {
			return err
		}
		sum.print(stdout)
		if sum.Datagrams == 0 {
			return fmt.Errorf("no datagram was sent (%d errors; first: %s)", sum.SendErrors, sum.FirstError)
		}
		return nil
	}
	sum, err := generate(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	sum.print(stdout)
	if sum.Refused != nil {
		return fmt.Errorf("stopped at the first refused batch: %w", sum.Refused)
	}
	if sum.Batches == 0 {
		return fmt.Errorf("no batch was accepted (%d errors; first: %s)", sum.Errors, sum.FirstError)
	}
	return nil
}

// config is what the flags set.
type config struct {
	url         string
	token       string
	batch       int
	concurrency int
	duration    time.Duration
	flows       int
	churn       float64
	policies    int
	gzip        bool
	rate        float64
	progress    time.Duration
	seed        uint64

	mode             string
	netflowTarget    string
	netflowVersion   int
	recordRate       float64
	templateInterval time.Duration
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("patronus-loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	fs.StringVar(&c.url, "url", "http://127.0.0.1:8080", "base URL of the Patronus server")
	fs.StringVar(&c.token, "token", os.Getenv("PATRONUS_TOKEN"), "bearer token of the operator role or higher (default $PATRONUS_TOKEN)")
	fs.IntVar(&c.batch, "batch", 1000, "reports per batch, 1 to 10000")
	fs.IntVar(&c.concurrency, "concurrency", 4, "batches in flight at once")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long to send")
	fs.IntVar(&c.flows, "flows", 10000, "distinct flows live at a time")
	fs.Float64Var(&c.churn, "churn", 0.01, "share of reports, 0 to 1, that start a new flow in place of an old one")
	fs.IntVar(&c.policies, "policies", 0, "spread reports over the ids of up to this many of the server's policies (0: let the server classify all)")
	fs.BoolVar(&c.gzip, "gzip", false, "send batches gzip-compressed")
	fs.Float64Var(&c.rate, "rate", 0, "batches per second in all, 0 for as fast as the server answers")
	fs.DurationVar(&c.progress, "progress", time.Second, "interval of the progress line on stderr, 0 for none")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the generated traffic")
	fs.StringVar(&c.mode, "mode", "http", "http: traffic batches to the REST API; netflow: NetFlow v9/IPFIX datagrams over UDP")
	fs.StringVar(&c.netflowTarget, "netflow-target", "127.0.0.1:2055", "netflow mode: host:port of the server's PATRONUS_NETFLOW_LISTEN")
	fs.IntVar(&c.netflowVersion, "netflow-version", 10, "netflow mode: 9 (NetFlow v9) or 10 (IPFIX)")
	fs.Float64Var(&c.recordRate, "record-rate", 100_000, "netflow mode: flow records per second, 0 for as fast as the socket takes them")
	fs.DurationVar(&c.templateInterval, "template-interval", 5*time.Second, "netflow mode: how often the template is sent again")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.mode == "netflow" {
		switch {
		case fs.NArg() > 0:
			return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
		case c.netflowVersion != 9 && c.netflowVersion != 10:
			return c, fmt.Errorf("--netflow-version %d: must be 9 or 10", c.netflowVersion)
		case c.recordRate < 0:
			return c, fmt.Errorf("--record-rate %g: must not be negative", c.recordRate)
		case c.templateInterval <= 0:
			return c, fmt.Errorf("--template-interval %s: must be positive", c.templateInterval)
		case c.duration <= 0:
			return c, fmt.Errorf("--duration %s: must be positive", c.duration)
		case c.flows < 1:
			return c, fmt.Errorf("--flows %d: must be at least 1", c.flows)
		}
		return c, nil
	}
	if c.mode != "http" {
		return c, fmt.Errorf("--mode %q: must be http or netflow", c.mode)
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case c.batch < 1 || c.batch > 10000:
		return c, fmt.Errorf("--batch %d: must be 1 to 10000", c.batch)
	case c.concurrency < 1:
		return c, fmt.Errorf("--concurrency %d: must be at least 1", c.concurrency)
	case c.duration <= 0:
		return c, fmt.Errorf("--duration %s: must be positive", c.duration)
	case c.flows < 1:
		return c, fmt.Errorf("--flows %d: must be at least 1", c.flows)
	case c.churn < 0 || c.churn > 1:
		return c, fmt.Errorf("--churn %g: must be 0 to 1", c.churn)
	case c.policies < 0:
		return c, fmt.Errorf("--policies %d: must not be negative", c.policies)
	case c.rate < 0:
		return c, fmt.Errorf("--rate %g: must not be negative", c.rate)
	case c.token == "":
		return c, errors.New("--token is required")
	}
	return c, nil
}
