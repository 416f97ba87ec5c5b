package main

import (
	"flag"
	"fmt"
	"math"
	"strconv"

	"github.com/dustin/go-humanize"
)

// byteSize is a flag value of a number of bytes: a whole number, or one with a unit (64MiB,
// 1.5 GiB, 500MB; KiB, MiB and GiB are powers of 1024, kB, MB and GB of 1000), read by
// go-humanize.
type byteSize struct{ n *int64 }

// byteSizeVar defines a byte-size flag on fs, stored in p.
func byteSizeVar(fs *flag.FlagSet, p *int64, name string, value int64, usage string) {
	*p = value
	fs.Var(byteSize{p}, name, usage)
}

func (b byteSize) String() string {
	if b.n == nil {
		return "0"
	}
	return strconv.FormatInt(*b.n, 10)
}

func (b byteSize) Set(s string) error {
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return err
	}
	if n > math.MaxInt64 {
		return fmt.Errorf("%d bytes is too large", n)
	}
	*b.n = int64(n)
	return nil
}

// Get returns the value as a byteSize, which checkValues tells from a plain number.
func (b byteSize) Get() any { return b }
