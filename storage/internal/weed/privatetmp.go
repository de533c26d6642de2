package weed

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// SeaweedFS's processes talk gRPC to each other over unix sockets at fixed
// paths, /tmp/seaweedfs-<service>-grpc-<port>.sock. Two servers on one
// machine (in different network namespaces, say) would share them, and any
// local user could create them first. So, when it can, the supervisor starts
// weed in a mount namespace of its own whose /tmp is a private directory in
// the data directory: it re-executes its own binary (Supervisor.Self) with
// ExecArg, which bind-mounts that directory on /tmp, binds back the
// directories weed needs that lived under the old /tmp, and execs weed.

// ExecArg is the hidden first argument under which a binary that calls
// MaybeExec starts weed with a private /tmp.
const ExecArg = "__tunnelmesh-weed-exec"

// execArgs is the command line of the re-execution: ExecArg, the private
// directory, the directories to keep visible (comma-separated), then weed's
// argv.
func execArgs(private string, keep []string, argv []string) []string {
	return append([]string{ExecArg, private, strings.Join(keep, ",")}, argv...)
}

// MaybeExec handles ExecArg: called first thing in main (and in TestMain of
// tests that run the supervisor), it does nothing unless os.Args[1] is
// ExecArg; then it sets up the private /tmp and execs weed, and never
// returns.
func MaybeExec() {
	if len(os.Args) < 5 || os.Args[1] != ExecArg {
		return
	}
	private, keepList, argv := os.Args[2], os.Args[3], os.Args[4:]
	fail := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "weed exec: "+format+"\n", a...)
		os.Exit(127)
	}
	type kept struct {
		path string
		f    *os.File
	}
	var keep []kept
	for _, k := range strings.Split(keepList, ",") {
		if k == "" || (k != "/tmp" && !strings.HasPrefix(filepath.Clean(k), "/tmp/")) {
			continue
		}
		f, err := os.Open(k)
		if err != nil {
			fail("open %s: %v", k, err)
		}
		keep = append(keep, kept{filepath.Clean(k), f})
	}
	// The supervisor started this process with CLONE_NEWNS, and Go made
	// every mount private first: these binds are invisible outside.
	if err := syscall.Mount(private, "/tmp", "", syscall.MS_BIND, ""); err != nil {
		fail("bind %s on /tmp: %v", private, err)
	}
	for _, k := range keep {
		if err := os.MkdirAll(k.path, 0o700); err != nil {
			fail("keep %s: %v", k.path, err)
		}
		src := fmt.Sprintf("/proc/self/fd/%d", k.f.Fd())
		if err := syscall.Mount(src, k.path, "", syscall.MS_BIND, ""); err != nil {
			fail("keep %s: %v", k.path, err)
		}
		k.f.Close()
	}
	err := syscall.Exec(argv[0], argv, os.Environ())
	fail("%s: %v", argv[0], err)
}
