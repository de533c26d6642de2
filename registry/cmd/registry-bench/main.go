// Command registry-bench runs the registry benchmark (package
// registry/internal/bench) and prints its table: joins per second and
// netmap fan-out latency to 1,000 watchers.
//
//	go run ./registry/cmd/registry-bench -nodes 1000 -rounds 20
//
// Watchers ask for netmap deltas, as nodes do; -whole makes them ask for
// whole netmaps every time.
//
// With -store postgres it runs the registry on PostgreSQL with -replicas
// replicas (nodes spread over them), on -postgres-dsn or, without one, on
// a throwaway server it starts (Debian's postgresql, see
// registry/internal/pgtest); -store both runs SQLite on one registry and
// PostgreSQL, one table each, -runs times, alternating which goes first.
//
// To see where a slow round waits: -stages prints, per round, when the
// change reached each stage; -stalldump PREFIX writes every goroutine's
// stack once a round has waited -stallafter; -logs shows the replicas'
// warnings.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/bench"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/pgtest"
)

func main() {
	var o bench.Options
	flag.IntVar(&o.Nodes, "nodes", 1000, "nodes to join; each one watches the netmap")
	flag.IntVar(&o.Concurrency, "concurrency", 32, "parallel joins")
	flag.IntVar(&o.Rounds, "rounds", 20, "netmap changes to measure")
	flag.BoolVar(&o.Decode, "decode", false, "watchers decode the full netmap JSON (and apply deltas)")
	flag.BoolVar(&o.Whole, "whole", false, "watchers ask for whole netmaps, not deltas")
	flag.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the fan-out rounds to this file")
	flag.StringVar(&o.BlockProfile, "blockprofile", "", "write a blocking profile of the fan-out rounds to this file")
	flag.StringVar(&o.MutexProfile, "mutexprofile", "", "write a mutex contention profile of the fan-out rounds to this file")
	flag.BoolVar(&o.Stages, "stages", false, "print when each round's change reached each stage (call answered, NOTIFY delivered, each replica published, first and last watcher per replica)")
	flag.StringVar(&o.StallDump, "stalldump", "", "write every goroutine's stack to PREFIX.roundNN.txt when a round has waited -stallafter")
	flag.DurationVar(&o.StallAfter, "stallafter", 3*time.Second, "with -stalldump: how long a round waits before its goroutines are dumped")
	logs := flag.Bool("logs", false, "print the replicas' warnings and errors to stderr")
	storeKind := flag.String("store", "sqlite", "sqlite, postgres, or both (one run each)")
	dsn := flag.String("postgres-dsn", "", "an empty PostgreSQL database for -store postgres, one run (default: start a throwaway server)")
	flag.IntVar(&o.Replicas, "replicas", 2, "registry replicas with -store postgres")
	runs := flag.Int("runs", 1, "with -store both: pairs of runs, alternating which store goes first")
	flag.Parse()
	if *logs {
		o.Logs = os.Stderr
	}
	if err := run(o, *storeKind, *dsn, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "registry-bench:", err)
		os.Exit(1)
	}
}

func run(o bench.Options, storeKind, dsn string, runs int) error {
	var order []string
	switch storeKind {
	case "sqlite", "postgres":
		order = []string{storeKind}
	case "both":
		if runs < 1 {
			return fmt.Errorf("-runs %d: want at least 1", runs)
		}
		for r := range runs {
			if r%2 == 0 {
				order = append(order, "sqlite", "postgres")
			} else {
				order = append(order, "postgres", "sqlite")
			}
		}
	default:
		return fmt.Errorf("-store %q: want sqlite, postgres or both", storeKind)
	}
	if dsn != "" && len(order) > 2 {
		return fmt.Errorf("-postgres-dsn holds one run's database: use -runs 1")
	}
	var srv *pgtest.Server
	for i, kind := range order {
		if i > 0 {
			fmt.Println()
		}
		ro := o
		if kind == "sqlite" {
			ro.Replicas = 1
			if _, err := bench.Run(ro, os.Stdout); err != nil {
				return err
			}
			continue
		}
		ro.PostgresDSN = dsn
		if ro.PostgresDSN == "" {
			if srv == nil {
				bin, err := pgtest.BinDir()
				if err != nil {
					return err
				}
				if srv, err = pgtest.Start(bin); err != nil {
					return err
				}
				defer srv.Stop()
			}
			var err error
			if ro.PostgresDSN, err = srv.CreateDB(context.Background(), "bench"+strconv.Itoa(i)); err != nil {
				return err
			}
		}
		if _, err := bench.Run(ro, os.Stdout); err != nil {
			return err
		}
	}
	return nil
}
