// Command tunnelmesh-relay runs a standalone TunnelMesh WebSocket relay.
//
//	tunnelmesh-relay [-config relay.yaml] [-listen :443] [-id NAME]
//	                 [-tls-cert cert.pem -tls-key key.pem | -state-dir DIR] [-metrics ADDR]
//	tunnelmesh-relay -version
//
// Flags override the configuration file.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tunnelmesh/tunnelmesh/relay/internal/config"
	"github.com/tunnelmesh/tunnelmesh/relay/internal/selfsign"
	"github.com/tunnelmesh/tunnelmesh/relay/server"
	"github.com/tunnelmesh/tunnelmesh/shared/logging"
	"github.com/tunnelmesh/tunnelmesh/shared/tlspin"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tunnelmesh-relay:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		cfgPath  = flag.String("config", "", "YAML configuration file")
		listen   = flag.String("listen", "", "HTTPS listen address (default :443)")
		id       = flag.String("id", "", "relay identity (default: host name)")
		certFile = flag.String("tls-cert", "", "TLS certificate (PEM)")
		keyFile  = flag.String("tls-key", "", "TLS private key (PEM)")
		stateDir = flag.String("state-dir", "", "directory of the self-signed certificate")
		metrics  = flag.String("metrics", "", "Prometheus /metrics listen address (plain HTTP)")
		showVer  = flag.Bool("version", false, "print the version and exit")
	)
	flag.Parse()
	if *showVer {
		fmt.Println("tunnelmesh-relay", version)
		return nil
	}
	cfg := config.Default()
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.Listen, *listen)
	set(&cfg.ID, *id)
	set(&cfg.TLS.Cert, *certFile)
	set(&cfg.TLS.Key, *keyFile)
	set(&cfg.TLS.StateDir, *stateDir)
	set(&cfg.Metrics, *metrics)
	if err := cfg.Validate(); err != nil {
		return err
	}
	log, err := logging.New(os.Stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	base := log
	log = logging.Component(log, "relay-main")

	cert, err := loadCert(cfg)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	scfg := server.Config{ID: cfg.ID, QueueLen: cfg.QueueLen, Registerer: reg, Logger: base}
	keys, _ := cfg.Keys() // validated
	if len(keys) > 0 {
		scfg.Authorize = server.AllowList(keys)
	}
	relay, err := server.New(scfg)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle(cfg.Path, relay)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	tl := tls.NewListener(server.TuneListener(l, cfg.SocketBuffer), srv.TLSConfig)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(tl) }()
	var msrv *http.Server
	if cfg.Metrics != "" {
		mmux := http.NewServeMux()
		mmux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		msrv = &http.Server{Addr: cfg.Metrics, Handler: mmux, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- msrv.ListenAndServe() }()
	}
	log.Info("relay listening", "addr", l.Addr().String(), "path", cfg.Path, "id", relay.ID(),
		"tls_pin", tlspin.Fingerprint(cert.Leaf), "allow_keys", len(keys), "metrics", cfg.Metrics)

	select {
	case <-ctx.Done():
		err = nil
	case err = <-errc:
		err = fmt.Errorf("serve: %w", err)
	}
	log.Info("relay shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(shutCtx) // stops accepting; hijacked WebSockets are the relay's
	relay.Close()
	if msrv != nil {
		msrv.Shutdown(shutCtx)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func loadCert(cfg config.Config) (tls.Certificate, error) {
	if cfg.TLS.Cert != "" {
		c, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("tls: %w", err)
		}
		return c, nil
	}
	return selfsign.LoadOrGenerate(cfg.TLS.StateDir, cfg.TLS.Hosts)
}
