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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/config"
	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/daemon"
	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/server"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
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
	metrics := flag.String("metrics-listen", metricsOnMesh+strconv.Itoa(api.NFSDMetricsPort),
		"serve Prometheus metrics at http://ADDR/metrics: mesh:PORT (the address nfsd serves NFS on, the node's mesh address by default; the agent's --advertise-nfs publishes mesh:9108 as metrics-nfsd), HOST:PORT, or off")
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
	server.TuneGC()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	meshPort, onMesh, err := parseMetricsListen(*metrics)
	if err != nil {
		return err
	}
	var ready func(net.Addr)
	if *metrics != "off" && *metrics != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(server.Collectors...)
		hs := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
		defer hs.Close()
		serve := func(addr string) error {
			ml, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("metrics listen: %w", err)
			}
			log.Info("serving metrics", "listen", ml.Addr().String())
			go hs.Serve(ml)
			return nil
		}
		if onMesh {
			// The NFS listener's address is known once it listens (the
			// mesh address from the first netmap, or the configured one).
			ready = func(a net.Addr) {
				ip := a.(*net.TCPAddr).IP.String()
				if err := serve(net.JoinHostPort(ip, strconv.Itoa(int(meshPort)))); err != nil {
					log.Error("metrics not served", "err", err)
				}
			}
		} else if err := serve(*metrics); err != nil {
			return err
		}
	}
	err = daemon.Run(ctx, cfg, log, ready)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// metricsOnMesh is the prefix of -metrics-listen that means the address
// nfsd serves NFS on.
const metricsOnMesh = "mesh:"

// parseMetricsListen checks -metrics-listen: mesh:PORT (returns the port
// and true), HOST:PORT, off or empty.
func parseMetricsListen(s string) (uint16, bool, error) {
	if s == "off" || s == "" {
		return 0, false, nil
	}
	if ps, ok := strings.CutPrefix(s, metricsOnMesh); ok {
		p, err := strconv.ParseUint(ps, 10, 16)
		if err != nil || p == 0 {
			return 0, false, fmt.Errorf("-metrics-listen %q: want mesh:PORT with PORT 1-65535", s)
		}
		return uint16(p), true, nil
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return 0, false, fmt.Errorf("-metrics-listen %q: want mesh:PORT, HOST:PORT or off", s)
	}
	return 0, false, nil
}
