// Command tunnelmesh-storage serves S3-compatible object storage to the
// mesh: SeaweedFS under a supervisor that issues per-node credentials.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tunnelmesh/tunnelmesh/shared/logging"
	"github.com/tunnelmesh/tunnelmesh/storage/internal/config"
	"github.com/tunnelmesh/tunnelmesh/storage/internal/server"
	"github.com/tunnelmesh/tunnelmesh/storage/internal/weed"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	weed.MaybeExec() // the supervisor's re-execution that starts weed with a private /tmp
	cfgPath := flag.String("config", "", "configuration file (YAML); defaults apply without one")
	example := flag.Bool("example-config", false, "print a commented example configuration and exit")
	logLevel := flag.String("log-level", "info", "debug, info, warn or error")
	logFormat := flag.String("log-format", "text", "text or json")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println("tunnelmesh-storage", version)
		return
	}
	if *example {
		os.Stdout.Write(config.Example)
		return
	}
	cfg := config.Default()
	if *cfgPath != "" {
		c, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "tunnelmesh-storage:", err)
			os.Exit(2)
		}
		cfg = c
	}
	base, err := logging.New(os.Stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tunnelmesh-storage:", err)
		os.Exit(2)
	}
	log := logging.Component(base, "storage")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, cfg, log); err != nil {
		log.Error("exit", "err", err)
		os.Exit(1)
	}
}
