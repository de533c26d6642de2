package server

import (
	"os"
	"runtime/debug"
)

// DefaultGCPercent is the garbage collector's target nfsd runs with when
// GOGC is not set. go-nfs allocates every READ's and WRITE's data afresh
// (several MiB of garbage per 1 MiB READ), and with Go's default of 100 the
// small live heap makes the collector run every few MiB moved: on loopback
// (bench/underlay, 256 MiB written, read, read with 4 in flight) the server
// spent 5.2-6.5 s of CPU with 820-850 collections at 100, and 2.3-2.7 s with
// 130-160 collections at 400. The heap stays small: a few MiB per
// connection in flight, times five.
const DefaultGCPercent = 400

// TuneGC sets DefaultGCPercent unless the GOGC environment variable says
// otherwise. The binaries serving NFS call it once at start.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
}
