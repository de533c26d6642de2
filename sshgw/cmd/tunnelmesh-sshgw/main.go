// Command tunnelmesh-sshgw runs the SSH transport endpoint of a node next to
// its agent: an SSH server with the node key as host key that accepts only
// the mesh's nodes and copies each peer's packet channel to the agent's
// packet port.
//
//	tunnelmesh-sshgw -config sshgw.yaml
//	tunnelmesh-sshgw -credentials /var/lib/tunnelmesh/credentials.json -forward-to 127.0.0.1:7600 [-listen :2222]
//	tunnelmesh-sshgw -version
//
// Flags override the configuration file. The gateway itself is
// internal/gateway; this file is flags, config, logger and signals.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tunnelmesh/tunnelmesh/shared/logging"
	"github.com/tunnelmesh/tunnelmesh/sshgw/internal/config"
	"github.com/tunnelmesh/tunnelmesh/sshgw/internal/gateway"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, showVersion, err := loadConfig(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, new(usageError)):
		return exitUsage
	case err != nil:
		fmt.Fprintln(stderr, "tunnelmesh-sshgw:", err)
		return exitError
	case showVersion:
		fmt.Fprintln(stdout, "tunnelmesh-sshgw", version)
		return exitOK
	}
	log, err := logging.New(stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		fmt.Fprintln(stderr, "tunnelmesh-sshgw:", err)
		return exitError
	}
	if err := gateway.Run(ctx, cfg, log); err != nil {
		fmt.Fprintln(stderr, "tunnelmesh-sshgw:", err)
		return exitError
	}
	return exitOK
}

// usageError is a bad command line; the flag package has printed it.
type usageError struct{ error }

// loadConfig parses the command line: the -config file over the defaults,
// then the flags over the file, validated.
func loadConfig(args []string, stderr io.Writer) (cfg config.Config, showVersion bool, err error) {
	fs := flag.NewFlagSet("tunnelmesh-sshgw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfgPath   = fs.String("config", "", "YAML configuration file")
		listen    = fs.String("listen", "", "SSH listen address (default :2222)")
		creds     = fs.String("credentials", "", "agent credentials file (host key and netmap)")
		keyFile   = fs.String("key-file", "", "node key file, without a registry")
		forwardTo = fs.String("forward-to", "", "the agent's packet port, e.g. 127.0.0.1:7600")
		showVer   = fs.Bool("version", false, "print the version and exit")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, false, err
		}
		return cfg, false, usageError{err}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %q\n", fs.Args())
		return cfg, false, usageError{errors.New("unexpected arguments")}
	}
	if *showVer {
		return cfg, true, nil
	}
	cfg = config.Default()
	if *cfgPath != "" {
		if cfg, err = config.Load(*cfgPath); err != nil {
			return cfg, false, err
		}
	}
	for dst, v := range map[*string]string{&cfg.Listen: *listen, &cfg.Credentials: *creds,
		&cfg.KeyFile: *keyFile, &cfg.ForwardTo: *forwardTo} {
		if v != "" {
			*dst = v
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, false, err
	}
	return cfg, false, nil
}
