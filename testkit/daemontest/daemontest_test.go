package daemontest

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a testing.TB that records failures and cleanups instead of
// failing the real test. Fatalf ends the calling goroutine, as in testing.
type recorder struct {
	testing.TB
	real     *testing.T // for TempDir
	mu       sync.Mutex
	failures []string
	cleanups []func()
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

func (r *recorder) TempDir() string { return r.real.TempDir() }

// run calls f and then the cleanups, last first, on a goroutine of their
// own (so Fatalf can end f, as it ends a test), and returns the failures.
func (r *recorder) run(f func()) []string {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			for i := len(r.cleanups) - 1; i >= 0; i-- {
				r.cleanups[i]()
			}
		}()
		f()
	}()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failures
}

func TestEventually(t *testing.T) {
	tests := []struct {
		name     string
		trueFrom int // the call from which cond holds; 0: never
		wantFail string
	}{
		{"at once", 1, ""},
		{"after polling", 5, ""},
		{"never", 0, "timed out after 100ms waiting for the thing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			r := &recorder{}
			got := r.run(func() {
				Eventually(r, 100*time.Millisecond, "the thing", func() bool {
					calls++
					return tt.trueFrom > 0 && calls >= tt.trueFrom
				})
			})
			if tt.wantFail == "" && len(got) > 0 {
				t.Errorf("Eventually failed: %q", got)
			}
			if tt.wantFail != "" && (len(got) != 1 || got[0] != tt.wantFail) {
				t.Errorf("Eventually failures = %q, want [%q]", got, tt.wantFail)
			}
			if tt.trueFrom > 0 && calls != tt.trueFrom {
				t.Errorf("cond called %d times, want %d", calls, tt.trueFrom)
			}
		})
	}
}

func TestCheckGoroutines(t *testing.T) {
	defer func(g time.Duration) { leakGrace = g }(leakGrace)
	leakGrace = 300 * time.Millisecond

	// Goroutines that end within the grace period are no leak.
	r := &recorder{}
	if got := r.run(func() {
		CheckGoroutines(r)
		go time.Sleep(100 * time.Millisecond)
	}); len(got) > 0 {
		t.Errorf("short-lived goroutine reported: %q", got)
	}

	// Ones that outlive it are. (Ten, so that goroutines of earlier tests
	// ending meanwhile cannot hide them.)
	stop := make(chan struct{})
	defer close(stop)
	r = &recorder{}
	got := r.run(func() {
		CheckGoroutines(r)
		for i := 0; i < 10; i++ {
			go func() { <-stop }()
		}
	})
	if len(got) != 1 || !strings.HasPrefix(got[0], "goroutine leak: ") || !strings.Contains(got[0], "TestCheckGoroutines") {
		t.Errorf("leak failures = %.200q, want one goroutine leak with the stacks", got)
	}
}

func TestLogBufferConcurrent(t *testing.T) {
	var l LogBuffer
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				l.Write([]byte("x"))
				_ = l.String()
			}
		}()
	}
	wg.Wait()
	if n := len(l.String()); n != 400 {
		t.Errorf("len(String()) = %d, want 400", n)
	}
}

func TestBuildStartStop(t *testing.T) {
	bin := Build(t, "./testdata/sigint", "sigint")
	tests := []struct {
		mode     string
		wantFail string // prefix of the one failure Stop reports; "" for none
	}{
		{"clean", ""},
		{"fail", "sigint exit: exit status 3\nready"},
		{"ignore", "sigint did not stop on SIGINT\nready"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			r := &recorder{}
			var p *Process
			got := r.run(func() {
				p = Start(r, 500*time.Millisecond, bin, tt.mode)
				Eventually(r, 10*time.Second, "ready", func() bool { return strings.Contains(p.Log.String(), "ready") })
			})
			if len(r.cleanups) != 1 {
				t.Fatalf("Start registered %d cleanups, want 1 (Stop)", len(r.cleanups))
			}
			if tt.wantFail == "" && len(got) > 0 {
				t.Errorf("Stop failed: %q", got)
			}
			if tt.wantFail != "" && (len(got) != 1 || !strings.HasPrefix(got[0], tt.wantFail)) {
				t.Errorf("Stop failures = %q, want one starting %q", got, tt.wantFail)
			}
			if p.cmd.ProcessState == nil {
				t.Error("process still running after Stop")
			}
			p.Stop() // a second Stop does nothing
			r.mu.Lock()
			if len(r.failures) != len(got) {
				t.Errorf("second Stop reported %q", r.failures[len(got):])
			}
			r.mu.Unlock()
		})
	}
}

func TestBuildFailure(t *testing.T) {
	r := &recorder{real: t}
	got := r.run(func() { Build(r, "./testdata/missing", "missing") })
	if len(got) != 1 || !strings.HasPrefix(got[0], "go build ./testdata/missing: ") {
		t.Errorf("Build failures = %q, want one go build error", got)
	}
}
