package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"
)

// settingFailure is the first setting a parse could not read. The checked values keep it
// because the flag package passes on only the text of their errors.
type settingFailure struct {
	flagName, problem string
}

// checkedValue wraps a standard flag value so that a value it cannot read is reported as
// what is expected, in words, with an example.
type checkedValue struct {
	flag.Value
	name   string
	expect string // e.g. `is not a duration; use e.g. 10s or 1m`
	failed *settingFailure
}

func (v *checkedValue) Set(s string) error {
	if err := v.Value.Set(s); err != nil {
		problem := fmt.Sprintf("%q %s", s, v.expect)
		if v.failed.flagName == "" {
			*v.failed = settingFailure{flagName: v.name, problem: problem}
		}
		return errors.New(problem)
	}
	return nil
}

// checkedBool is a checkedValue of a boolean flag, which may be given without a value.
type checkedBool struct{ *checkedValue }

func (checkedBool) IsBoolFlag() bool { return true }

// checkValues wraps every flag of fs; the first value a parse cannot read is kept in failed.
func checkValues(fs *flag.FlagSet, failed *settingFailure) {
	fs.VisitAll(func(f *flag.Flag) {
		g, ok := f.Value.(flag.Getter)
		if !ok {
			return
		}
		cv := &checkedValue{Value: f.Value, name: f.Name, failed: failed}
		switch g.Get().(type) {
		case time.Duration:
			cv.expect = "is not a duration; use e.g. 10s, 1m or 1h30m"
		case int, int64, uint, uint64:
			cv.expect = "is not a whole number; use e.g. " + f.DefValue
		case byteSize:
			cv.expect = "is not a size in bytes; use e.g. 32MiB, 1GiB or " + f.DefValue
		case bool:
			cv.expect = "is not true or false; use true or false"
			f.Value = checkedBool{cv}
			return
		default:
			return
		}
		f.Value = cv
	})
}

// parseError turns an error of parsing the command line or the environment into one line
// naming the setting as it was given (--flag or PATRONUS_VARIABLE) and what it expects.
func parseError(err error, failed *settingFailure, command string) error {
	if failed != nil && failed.flagName != "" {
		name := "--" + failed.flagName
		if strings.Contains(err.Error(), "environment variable") {
			name = envName(failed.flagName)
		}
		return fmt.Errorf("%s: %s", name, failed.problem)
	}
	msg := strings.TrimPrefix(err.Error(), "error parsing commandline arguments: ")
	if flagName, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Errorf("unknown setting --%s; see %s --help", strings.TrimLeft(flagName, "-"), command)
	}
	return fmt.Errorf("%s; see %s --help", msg, command)
}
