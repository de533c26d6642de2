// Command registry-bench runs the registry benchmark (package
// registry/internal/bench) and prints its table: joins per second and
// netmap fan-out latency to 1,000 watchers.
//
//	go run ./registry/cmd/registry-bench -nodes 1000 -rounds 20
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/bench"
)

func main() {
	var o bench.Options
	flag.IntVar(&o.Nodes, "nodes", 1000, "nodes to join; each one watches the netmap")
	flag.IntVar(&o.Concurrency, "concurrency", 32, "parallel joins")
	flag.IntVar(&o.Rounds, "rounds", 20, "netmap changes to measure")
	flag.BoolVar(&o.Decode, "decode", false, "watchers decode the full netmap JSON")
	flag.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the fan-out rounds to this file")
	flag.Parse()
	if _, err := bench.Run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "registry-bench:", err)
		os.Exit(1)
	}
}
