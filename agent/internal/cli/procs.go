package cli

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
)

// A node shares its host with the endpoints of the traffic it carries: for
// every packet it encrypts or decrypts, the applications and the kernel
// (their TCP or UDP, the TUN device, the underlay's UDP) do at least as much
// work again. Go's scheduler keeps idle processors spinning in search of work
// whenever one goroutine hands packets to another, and on a host with few
// CPUs that spinning takes CPU time the kernel and the applications need. So
// the node's Go code runs on half of the CPUs available to it by default.
// Measured on 2 CPUs in two sets of alternating rounds (the setup of
// agent/bench/bench.sh): one iperf3 stream 2,530-3,220 Mbit/s with one
// processor against 1,780-2,220 with two (wireguard-go 2,100-2,730 in the
// same rounds); four streams and ping RTT no worse.

// nodeProcs returns how many CPUs the node's Go code may use at once
// (GOMAXPROCS): flagVal when positive; else what the environment's
// GOMAXPROCS already set (envSet, avail is then that value); else half of
// avail, the CPUs the process may run on, and at least 1.
func nodeProcs(flagVal int, envSet bool, avail int) int {
	switch {
	case flagVal > 0:
		return flagVal
	case envSet:
		return avail
	default:
		return max(1, avail/2)
	}
}

// applyProcs sets GOMAXPROCS for a node process from --procs (0: default).
func applyProcs(flagVal int, log *slog.Logger) {
	_, envSet := os.LookupEnv("GOMAXPROCS")
	avail := runtime.GOMAXPROCS(0)
	n := nodeProcs(flagVal, envSet, avail)
	if n != avail {
		runtime.GOMAXPROCS(n)
	}
	log.Debug("go scheduler", "procs", n, "cpus", runtime.NumCPU())
}

func checkProcs(n int) error {
	if n < 0 {
		return fmt.Errorf("--procs %d: must be 0 (half of the CPUs) or more", n)
	}
	return nil
}
