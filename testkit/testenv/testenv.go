// Package testenv decides what a test does when the machine lacks what it
// needs (root, Docker, a command, a device). Outside CI the test is skipped
// with the reason, and `make test` lists every skip at the end of the run.
// In CI (the environment variable CI is true, as CI systems and .ci/run set
// it) the test fails instead: a CI run must never pass with a suite that did
// not run.
//
// Skips that are the test's own choice (-short, the race detector, a helper
// test that runs only in a child process) stay plain t.Skip.
package testenv

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// EnvCI is the environment variable that marks a CI run.
const EnvCI = "CI"

// InCI reports whether this is a CI run: CI holds a true value ("true",
// "1", ...).
func InCI() bool {
	ci, err := strconv.ParseBool(os.Getenv(EnvCI))
	return err == nil && ci
}

// Missing stops t because the machine lacks what reason names: a skip
// outside CI, a failure in CI.
func Missing(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s (%s=%s: a test that cannot run fails the CI run)", reason, EnvCI, os.Getenv(EnvCI))
	}
	t.Skip(reason)
}

// NeedRoot stops t (Missing) unless it runs as root; why says what the test
// needs root for.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root: "+why)
	}
}

// NeedCommand returns the path of the command name, or stops t (Missing)
// when it is not installed; install says how to install it.
func NeedCommand(t testing.TB, name, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "needs "+name+" ("+install+"): "+err.Error())
	}
	return path
}
