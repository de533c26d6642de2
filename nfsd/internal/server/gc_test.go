package server

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)

	t.Setenv("GOGC", "")
	TuneGC()
	if got := debug.SetGCPercent(100); got != DefaultGCPercent {
		t.Errorf("GC percent after TuneGC = %d, want %d", got, DefaultGCPercent)
	}
	t.Setenv("GOGC", "50")
	TuneGC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent after TuneGC with GOGC set = %d, want it left at 100", got)
	}
}
