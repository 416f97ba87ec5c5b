// Command testsummary reads `go test -json` on stdin and prints what a person needs from a
// full test run: a line per package, the output of every failed test, the skipped tests with
// their reason, and how many tests really ran against PostgreSQL and InfluxDB (they log a
// "storagetest: using ..." line through storagetest.Require). Under CI=true a run in which
// no test reached one of the services fails: the integration tests must not vanish unseen.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
)

// event is one line of `go test -json` (a test2json TestEvent or a BuildEvent).
type event struct {
	Action     string
	Package    string
	Test       string
	Elapsed    float64
	Output     string
	ImportPath string
}

type key struct{ pkg, test string }

// services are the markers storagetest.Require logs, and the names to report them under.
var services = []struct{ marker, name string }{
	{"storagetest: using PostgreSQL", "PostgreSQL"},
	{"storagetest: using InfluxDB", "InfluxDB"},
}

func main() {
	output := map[key]*strings.Builder{}
	used := make([]map[key]bool, len(services))
	for i := range used {
		used[i] = map[key]bool{}
	}
	counts := map[string]int{} // pass, fail, skip over tests (subtests included)
	perPkg := map[string]map[string]int{}
	var skipped []string
	failedPkgs := 0

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	for in.Scan() {
		line := in.Bytes()
		var ev event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			fmt.Println(string(line))
			continue
		}
		switch ev.Action {
		case "build-output":
			fmt.Print(ev.Output)
			continue
		case "build-fail":
			continue
		}
		k := key{ev.Package, ev.Test}
		switch ev.Action {
		case "output":
			b := output[k]
			if b == nil {
				b = &strings.Builder{}
				output[k] = b
			}
			b.WriteString(ev.Output)
			for i, s := range services {
				if ev.Test != "" && strings.Contains(ev.Output, s.marker) {
					used[i][k] = true
				}
			}
		case "pass", "fail", "skip":
			if ev.Test == "" { // the package is done
				c := perPkg[ev.Package]
				status := map[string]string{"pass": "ok  ", "fail": "FAIL", "skip": "?   "}[ev.Action]
				if ev.Action == "fail" {
					failedPkgs++
					if b := output[k]; b != nil {
						fmt.Print(b.String())
					}
				}
				if ev.Action == "skip" && c["pass"]+c["fail"] == 0 {
					fmt.Printf("%s %s [no tests]\n", status, ev.Package)
				} else {
					fmt.Printf("%s %s %.1fs (%d passed, %d failed, %d skipped)\n", status, ev.Package,
						ev.Elapsed, c["pass"], c["fail"], c["skip"])
				}
				delete(output, k)
				continue
			}
			counts[ev.Action]++
			if perPkg[ev.Package] == nil {
				perPkg[ev.Package] = map[string]int{}
			}
			perPkg[ev.Package][ev.Action]++
			switch ev.Action {
			case "fail":
				fmt.Printf("--- FAIL: %s %s (%.2fs)\n", ev.Package, ev.Test, ev.Elapsed)
				if b := output[k]; b != nil {
					fmt.Print(indent(b.String()))
				}
			case "skip":
				skipped = append(skipped, fmt.Sprintf("%s %s: %s", ev.Package, ev.Test, skipReason(output[k])))
			}
			delete(output, k)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary: reading go test output:", err)
		os.Exit(2)
	}

	slices.Sort(skipped)
	if len(skipped) > 0 {
		fmt.Printf("\nskipped tests (%d):\n", len(skipped))
		for _, s := range skipped {
			fmt.Println("  " + s)
		}
	}
	fmt.Printf("\ntests: %d passed, %d failed, %d skipped\n", counts["pass"], counts["fail"], counts["skip"])
	missing := false
	for i, s := range services {
		fmt.Printf("tests that ran against the real %s: %d\n", s.name, len(used[i]))
		if len(used[i]) == 0 && os.Getenv("CI") == "true" {
			fmt.Printf("FAIL: CI=true but no test reached %s\n", s.name)
			missing = true
		}
	}
	if counts["fail"] > 0 || failedPkgs > 0 || missing {
		os.Exit(1)
	}
}

// skipReason is the last line a skipped test logged, usually its t.Skip message.
func skipReason(b *strings.Builder) string {
	if b == nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l != "" && !strings.HasPrefix(l, "--- SKIP") && !strings.HasPrefix(l, "=== ") {
			return l
		}
	}
	return ""
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" && !strings.HasPrefix(l, "=== ") {
			b.WriteString("    " + l)
		}
	}
	return b.String()
}
