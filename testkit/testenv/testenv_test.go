package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestInCI(t *testing.T) {
	for _, tt := range []struct {
		val  string
		want bool
	}{{"", false}, {"true", true}, {"1", true}, {"TRUE", true}, {"false", false}, {"0", false}, {"yes-please", false}} {
		t.Setenv(EnvCI, tt.val)
		if got := InCI(); got != tt.want {
			t.Errorf("InCI() with CI=%q = %v, want %v", tt.val, got, tt.want)
		}
	}
}

// helperEnv makes TestHelperMissing do its work: it runs only in the child
// processes TestMissing starts.
const helperEnv = "TUNNELMESH_TESTENV_HELPER"

// TestHelperMissing is a suite that cannot run: it needs a command no
// machine has.
func TestHelperMissing(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("runs only as TestMissing's child")
	}
	NeedCommand(t, "tunnelmesh-no-such-command", "no package has it")
	t.Log("reached past NeedCommand")
}

// TestMissing runs a test that lacks a command in a child test process:
// outside CI it is skipped with the reason and the run passes; with CI=true
// it fails, and so does the run.
func TestMissing(t *testing.T) {
	run := func(ci string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperMissing$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"=1", EnvCI+"="+ci)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("")
	if err != nil || !strings.Contains(out, "--- SKIP: TestHelperMissing") || !strings.Contains(out, "needs tunnelmesh-no-such-command (no package has it)") {
		t.Fatalf("outside CI: %v\n%s\nwant a skip with the reason and a passing run", err, out)
	}
	out, err = run("true")
	if err == nil || !strings.Contains(out, "--- FAIL: TestHelperMissing") || !strings.Contains(out, "a test that cannot run fails the CI run") {
		t.Fatalf("with CI=true: %v\n%s\nwant a failure and a failing run", err, out)
	}
	if strings.Contains(out, "reached past NeedCommand") {
		t.Fatalf("with CI=true the test went on after NeedCommand:\n%s", out)
	}
}
