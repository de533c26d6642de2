// Command testreport turns `go test -json` into what `make test` shows:
// go test's usual lines (ok, FAIL, the output of failed tests, build
// errors), with the full JSON kept in a log file, and at the end of the run
// a list of every test that was skipped and why.
//
//	go test -json ./... 2>&1 | testreport -log FILE   # filter; exit status 0
//	testreport -skips FILE...                         # list the skips in the logs
//
// Lines that are not JSON (the go command's own errors) pass through.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output events
}

// Skip is a test that did not run.
type Skip struct {
	Package, Test, Reason string
}

func main() {
	logPath := flag.String("log", "", "write the JSON read from stdin to this file")
	skips := flag.Bool("skips", false, "list the skipped tests of the JSON logs named as arguments")
	flag.Parse()
	if *skips {
		if err := listSkips(os.Stdout, flag.Args()); err != nil {
			fmt.Fprintln(os.Stderr, "testreport:", err)
			os.Exit(1)
		}
		return
	}
	var log io.Writer = io.Discard
	if *logPath != "" {
		f, err := os.Create(*logPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testreport:", err)
			os.Exit(1)
		}
		defer f.Close()
		log = f
	}
	if err := filter(os.Stdout, os.Stdin, log); err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(1)
	}
}

// filter copies in to log and writes to out what go test without -json
// would print.
func filter(out io.Writer, in io.Reader, log io.Writer) error {
	bufs := map[string][]string{} // output of running tests by package + test
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		fmt.Fprintf(log, "%s\n", line)
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(out, "%s\n", line)
			continue
		}
		key := e.Package + " " + e.Test
		switch {
		case e.Action == "build-output":
			fmt.Fprint(out, e.Output)
		case e.Test == "" && e.Action == "output":
			if o := strings.TrimSpace(e.Output); o != "PASS" && o != "FAIL" {
				fmt.Fprint(out, e.Output)
			}
		case e.Test == "" && e.Action == "fail":
			// Tests cut short (a panic, the -timeout): print what they said.
			for k, b := range bufs {
				if strings.HasPrefix(k, e.Package+" ") {
					fmt.Fprint(out, strings.Join(b, ""))
					delete(bufs, k)
				}
			}
		case e.Test != "" && e.Action == "output":
			bufs[key] = append(bufs[key], e.Output)
		case e.Test != "" && e.Action == "fail":
			fmt.Fprint(out, strings.Join(bufs[key], ""))
			delete(bufs, key)
		case e.Test != "" && (e.Action == "pass" || e.Action == "skip"):
			delete(bufs, key)
		}
	}
	return sc.Err()
}

// skipsOf returns the skipped tests in a JSON log, each with its reason (what
// it logged, without the === and --- lines).
func skipsOf(in io.Reader) ([]Skip, error) {
	var out []Skip
	bufs := map[string][]string{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil || e.Test == "" {
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			o := strings.TrimSpace(e.Output)
			if o != "" && !strings.HasPrefix(o, "=== ") && !strings.HasPrefix(o, "--- ") {
				bufs[key] = append(bufs[key], o)
			}
		case "skip":
			out = append(out, Skip{Package: e.Package, Test: e.Test, Reason: strings.Join(bufs[key], "; ")})
			delete(bufs, key)
		case "pass", "fail":
			delete(bufs, key)
		}
	}
	return out, sc.Err()
}

func listSkips(w io.Writer, logs []string) error {
	var all []Skip
	for _, p := range logs {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		s, err := skipsOf(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		all = append(all, s...)
	}
	if len(all) == 0 {
		fmt.Fprintln(w, "== skipped: nothing")
		return nil
	}
	fmt.Fprintf(w, "== skipped: %d tests did not run\n", len(all))
	for _, s := range all {
		fmt.Fprintf(w, "SKIP %s %s: %s\n", s.Package, s.Test, s.Reason)
	}
	return nil
}
