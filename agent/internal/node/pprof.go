//go:build pprof

package node

import (
	"net/http"
	"net/http/pprof"
)

// A node built with -tags pprof serves Go's profiles (heap, goroutine,
// allocs, CPU, ...) at /debug/pprof/ on the metrics listener, for memory
// and CPU investigations. Release builds leave it out: net/http/pprof
// links html/template, which costs every node binary size and resident
// text.
func init() {
	debugHandlers = func(mux *http.ServeMux) {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
}
