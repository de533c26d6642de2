package server

import (
	"os"
	"runtime/debug"
)

// DefaultGCPercent is the garbage collector's target nfsd runs with when
// GOGC is not set. READ and WRITE data live in pooled buffers (go-nfs as
// patched in third_party/go-nfs), so what a request leaves behind is a few
// KiB of decoding and lookups; with a live heap of a few MiB, Go's default
// of 100 would still collect every few hundred requests, and every
// collection may empty the buffer pools. At 400 both happen less often.
const DefaultGCPercent = 400

// TuneGC sets DefaultGCPercent unless the GOGC environment variable says
// otherwise. The binaries serving NFS call it once at start.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
}
