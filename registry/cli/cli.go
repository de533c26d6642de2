// Package cli is the registry's command line: serving (`--config FILE`) and
// the admin commands (`admin tokens create`, ...). tunnelmesh-registry uses
// Main; the agent's `tunnelmesh coordinator` and `tunnelmesh admin` call
// Serve and Admin, so both binaries share one implementation.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/tunnelmesh/tunnelmesh/registry/coordinator"
	"github.com/tunnelmesh/tunnelmesh/registry/policy/policycli"
	"github.com/tunnelmesh/tunnelmesh/shared/logging"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// Options tune Serve for an embedding binary (the agent adds the relay).
type Options = coordinator.Options

// Main runs tunnelmesh-registry with args (without the program name):
// "admin ..." runs an admin command, anything else serves.
func Main(ctx context.Context, prog string, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "admin":
			return Admin(ctx, args[1:], stdout, stderr)
		case "policy":
			return policycli.Run(ctx, prog+" policy", args[1:], stdout, stderr)
		case "help", "-h", "-help", "--help":
			fmt.Fprintf(stdout, mainUsage, prog, prog, prog, prog)
			return ExitOK
		}
	}
	return Serve(ctx, args, stdout, stderr)
}

const mainUsage = `usage:
  %s [--config coordinator.yaml]     run the registry
  %s admin [flags] COMMAND           talk to a running registry
  %s policy validate|test|diff|apply|get|versions|rollback ...   policy as code
  %s help

admin commands:
  tokens create [--reusable] [--expiry 24h] [--tag T]...   print a new join token
  tokens list [--json]
  tokens revoke ID
  nodes list [--json]
  nodes remove NAME|ID
  scrape-tokens create [--name N] [--expiry 720h] [--out FILE]   print a Prometheus scrape token
  scrape-tokens list [--json]
  scrape-tokens revoke ID

admin flags (before or after the command):
  --config FILE       the registry's config: finds server, credential and pin
  --server URL        override the server (env TUNNELMESH_REGISTRY_URL)
  --admin-token T     override the admin credential (env TUNNELMESH_ADMIN_TOKEN);
                      other users see flags in ps: prefer the file or the env
  --admin-token-file F  read the admin credential from F (env TUNNELMESH_ADMIN_TOKEN_FILE)
  --pin PIN           override the TLS pin (env TUNNELMESH_REGISTRY_PIN)
`

// Serve runs the registry as `--config FILE` says until ctx ends. With no
// --config it runs on the defaults (an empty file).
func Serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return ServeWith(ctx, args, stdout, stderr, nil)
}

// Setup returns the coordinator options for a loaded configuration: an
// embedding binary (the agent's `tunnelmesh coordinator`) mounts the relay
// handler and lists the relay, whose URL it may derive from cfg.PublicURL.
// Options.Logger, when nil, is built from the config's log_level and
// log_format on stderr.
type Setup func(cfg coordinator.Config) (coordinator.Options, error)

// ServeWith is Serve with options computed from the loaded configuration
// by setup (nil: no options).
func ServeWith(ctx context.Context, args []string, stdout, stderr io.Writer, setup Setup) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return ExitUsage
	}
	cfg := coordinator.DefaultConfig()
	if *cfgPath != "" {
		var err error
		if cfg, err = coordinator.LoadConfig(*cfgPath); err != nil {
			fmt.Fprintln(stderr, err)
			return ExitError
		}
	}
	var opts coordinator.Options
	if setup != nil {
		var err error
		if opts, err = setup(cfg); err != nil {
			fmt.Fprintln(stderr, err)
			return ExitError
		}
	}
	if opts.Logger == nil {
		log, err := logging.New(stderr, cfg.LogLevel, cfg.LogFormat)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return ExitError
		}
		opts.Logger = log
	}
	if err := coordinator.Run(ctx, cfg, opts); err != nil {
		opts.Logger.Error("registry failed", "component", "registry", "err", err)
		return ExitError
	}
	return ExitOK
}
