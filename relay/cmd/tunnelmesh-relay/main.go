// Command tunnelmesh-relay runs a standalone TunnelMesh WebSocket relay.
//
//	tunnelmesh-relay [-config relay.yaml] [-listen :443] [-id NAME]
//	                 [-tls-cert cert.pem -tls-key key.pem | -state-dir DIR] [-metrics ADDR]
//	tunnelmesh-relay -version
//
// Flags override the configuration file. The relay itself is
// internal/relayd; this file is flags, config, logger and signals.
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

	"github.com/tunnelmesh/tunnelmesh/relay/internal/config"
	"github.com/tunnelmesh/tunnelmesh/relay/internal/relayd"
	"github.com/tunnelmesh/tunnelmesh/shared/logging"
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
		fmt.Fprintln(stderr, "tunnelmesh-relay:", err)
		return exitError
	case showVersion:
		fmt.Fprintln(stdout, "tunnelmesh-relay", version)
		return exitOK
	}
	log, err := logging.New(stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		fmt.Fprintln(stderr, "tunnelmesh-relay:", err)
		return exitError
	}
	if err := relayd.Run(ctx, cfg, log); err != nil {
		fmt.Fprintln(stderr, "tunnelmesh-relay:", err)
		return exitError
	}
	return exitOK
}

// usageError is a bad command line; the flag package has printed it.
type usageError struct{ error }

// loadConfig parses the command line: the -config file over the defaults,
// then the flags over the file, validated.
func loadConfig(args []string, stderr io.Writer) (cfg config.Config, showVersion bool, err error) {
	fs := flag.NewFlagSet("tunnelmesh-relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfgPath  = fs.String("config", "", "YAML configuration file")
		listen   = fs.String("listen", "", "HTTPS listen address (default :443)")
		id       = fs.String("id", "", "relay identity (default: host name)")
		certFile = fs.String("tls-cert", "", "TLS certificate (PEM)")
		keyFile  = fs.String("tls-key", "", "TLS private key (PEM)")
		stateDir = fs.String("state-dir", "", "directory of the self-signed certificate")
		metrics  = fs.String("metrics", "", "Prometheus /metrics listen address (plain HTTP)")
		showVer  = fs.Bool("version", false, "print the version and exit")
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
	for dst, v := range map[*string]string{&cfg.Listen: *listen, &cfg.ID: *id, &cfg.TLS.Cert: *certFile,
		&cfg.TLS.Key: *keyFile, &cfg.TLS.StateDir: *stateDir, &cfg.Metrics: *metrics} {
		if v != "" {
			*dst = v
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, false, err
	}
	return cfg, false, nil
}
