// Command registry-bench runs the registry benchmark (package
// registry/internal/bench) and prints its table: joins per second and
// netmap fan-out latency to 1,000 watchers.
//
//	go run ./registry/cmd/registry-bench -nodes 1000 -rounds 20
//
// With -store postgres it runs the registry on PostgreSQL with -replicas
// replicas (nodes spread over them), on -postgres-dsn or, without one, on
// a throwaway server it starts (Debian's postgresql, see
// registry/internal/pgtest); -store both runs SQLite on one registry, then
// PostgreSQL, one table each.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/bench"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/pgtest"
)

func main() {
	var o bench.Options
	flag.IntVar(&o.Nodes, "nodes", 1000, "nodes to join; each one watches the netmap")
	flag.IntVar(&o.Concurrency, "concurrency", 32, "parallel joins")
	flag.IntVar(&o.Rounds, "rounds", 20, "netmap changes to measure")
	flag.BoolVar(&o.Decode, "decode", false, "watchers decode the full netmap JSON")
	flag.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the fan-out rounds to this file")
	storeKind := flag.String("store", "sqlite", "sqlite, postgres, or both (one run each)")
	dsn := flag.String("postgres-dsn", "", "an empty PostgreSQL database for -store postgres (default: start a throwaway server)")
	flag.IntVar(&o.Replicas, "replicas", 2, "registry replicas with -store postgres")
	flag.Parse()
	if err := run(o, *storeKind, *dsn); err != nil {
		fmt.Fprintln(os.Stderr, "registry-bench:", err)
		os.Exit(1)
	}
}

func run(o bench.Options, storeKind, dsn string) error {
	switch storeKind {
	case "sqlite", "postgres", "both":
	default:
		return fmt.Errorf("-store %q: want sqlite, postgres or both", storeKind)
	}
	if storeKind != "postgres" {
		so := o
		so.Replicas = 1
		if _, err := bench.Run(so, os.Stdout); err != nil {
			return err
		}
		if storeKind == "sqlite" {
			return nil
		}
		fmt.Println()
	}
	if dsn == "" {
		bin, err := pgtest.BinDir()
		if err != nil {
			return err
		}
		srv, err := pgtest.Start(bin)
		if err != nil {
			return err
		}
		defer srv.Stop()
		if dsn, err = srv.CreateDB(context.Background(), "bench"); err != nil {
			return err
		}
	}
	o.PostgresDSN = dsn
	_, err := bench.Run(o, os.Stdout)
	return err
}
