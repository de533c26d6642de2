// Command tunnelmesh-nfsd serves directories over NFSv3 to the nodes of a
// TunnelMesh mesh, on the node's mesh address. See nfsd/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/config"
	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/daemon"
	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/server"
	"github.com/tunnelmesh/tunnelmesh/shared/logging"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tunnelmesh-nfsd:", err)
		os.Exit(1)
	}
}

func run() error {
	cfgPath := flag.String("config", "/etc/tunnelmesh/nfsd.yaml", "configuration file")
	metrics := flag.String("metrics-listen", "", "serve Prometheus metrics on this address (e.g. 127.0.0.1:9108); empty: off")
	level := flag.String("log-level", "info", "debug, info, warn or error")
	format := flag.String("log-format", "text", "text or json")
	check := flag.Bool("check", false, "check the configuration file and exit")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println("tunnelmesh-nfsd", version)
		return nil
	}

	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if *check {
		fmt.Printf("%s: ok (%d exports)\n", *cfgPath, len(cfg.Exports))
		return nil
	}
	log, err := logging.New(os.Stderr, *level, *format)
	if err != nil {
		return err
	}
	log = logging.Component(log, "nfsd")
	server.SetLibraryLogger(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if *metrics != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(server.Collectors...)
		ml, err := net.Listen("tcp", *metrics)
		if err != nil {
			return fmt.Errorf("metrics listen: %w", err)
		}
		hs := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(ml)
		defer hs.Close()
	}
	err = daemon.Run(ctx, cfg, log, nil)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
