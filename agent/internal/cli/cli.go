// Package cli is the tunnelmesh command line: join, up, status, ping,
// version, and the coordinator and admin commands of the registry.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

// Version is the software version; set at build time with
// -ldflags "-X github.com/tunnelmesh/tunnelmesh/agent/internal/cli.Version=v1.2.3".
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Env is what a command may touch besides its arguments.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env Env, args []string) error
}

func commands() []command {
	cmds := []command{
		{"join", "join a mesh with a token and run the node in the foreground", runJoin},
		{"up", "run the node again from its saved state (after a reboot), no token needed", runUp},
		{"status", "show this node, its coordinator and its peers", runStatus},
		{"ping", "ping a peer (name or mesh IP) through its tunnel", runPing},
		{"version", "print the version", runVersion},
		{"storage", "print this node's S3 credentials for the mesh's storage service", runStorage},
	}
	return append(cmds, registryCommands()...)
}

// errUsage marks an error that was already explained with usage.
var errUsage = errors.New("usage")

// Main runs the command line and returns the process exit code.
func Main(args []string, env Env) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, env)
}

func run(ctx context.Context, args []string, env Env) int {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version") {
		args = []string{"version"}
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.Stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		var code exitCode
		switch {
		case errors.As(err, &code):
			return int(code)
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		default:
			fmt.Fprintf(env.Stderr, "tunnelmesh %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(env.Stderr, "tunnelmesh: unknown command %q\n\n", args[0])
	usage(env.Stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: tunnelmesh COMMAND [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun `tunnelmesh COMMAND -h` for a command's flags.\n")
}

// newFlags returns a flag set that reports errors through errUsage.
func newFlags(env Env, name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: tunnelmesh %s %s\n\nFlags:\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string, maxPositional int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > maxPositional {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args()[maxPositional:], " "))
		fs.Usage()
		return errUsage
	}
	return nil
}

func runVersion(_ context.Context, env Env, args []string) error {
	fs := newFlags(env, "version", "")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "tunnelmesh %s\n", version())
	return nil
}
