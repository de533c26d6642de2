// Package daemontest holds helpers for tests of long-running TunnelMesh
// servers: polling until a condition holds, a goroutine-leak check, and
// building a command, running it with its log captured and stopping it with
// SIGINT as an operator would.
package daemontest

import (
	"bytes"
	"github.com/tunnelmesh/tunnelmesh/testkit/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Eventually polls cond every 10 ms until it holds, and fails the test
// (naming what it waited for) when d passes first.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leakGrace is how long CheckGoroutines waits for goroutines to finish.
var leakGrace = 10 * time.Second

// CheckGoroutines fails the test if, after it ends and its cleanups ran, more
// goroutines run than before it started (allowing ten seconds for them to
// finish). Call it first in a test, before anything registers a cleanup.
func CheckGoroutines(t testing.TB) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(leakGrace)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d goroutines, %d before\n%s", n, before, buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// LogBuffer is a bytes.Buffer safe for a child process writing to it while
// the test reads it.
type LogBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Build compiles the main package pkg (for a command's own test, ".") into
// a binary called name in a temporary directory and returns its path. It
// skips the test (fails it in CI, see testenv) when the go command is not
// installed.
func Build(t testing.TB, pkg, name string) string {
	t.Helper()
	goBin := testenv.NeedCommand(t, "go", "the Go toolchain")
	bin := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command(goBin, "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// Process is a command started by Start.
type Process struct {
	// Log receives the command's standard error.
	Log *LogBuffer

	t       testing.TB
	cmd     *exec.Cmd
	exited  chan error
	timeout time.Duration
	stopped bool
}

// Start runs bin with args, its standard error in Log, and stops it (Stop)
// when the test ends. Stop waits at most stopTimeout for it to exit.
func Start(t testing.TB, stopTimeout time.Duration, bin string, args ...string) *Process {
	t.Helper()
	p := &Process{Log: new(LogBuffer), t: t, cmd: exec.Command(bin, args...), exited: make(chan error, 1), timeout: stopTimeout}
	p.cmd.Stderr = p.Log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(p.Stop)
	return p
}

// Stop sends SIGINT and waits for the command to exit. It fails the test,
// showing the log, when the command exits with an error or does not exit in
// time (it is then killed). Only the first call does anything.
func (p *Process) Stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	name := filepath.Base(p.cmd.Path)
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-p.exited:
		if err != nil {
			p.t.Errorf("%s exit: %v\n%s", name, err, p.Log.String())
		}
	case <-time.After(p.timeout):
		p.cmd.Process.Kill()
		<-p.exited
		p.t.Errorf("%s did not stop on SIGINT\n%s", name, p.Log.String())
	}
}
