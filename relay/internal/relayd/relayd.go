// Package relayd runs the standalone relay as its configuration says: the
// TLS certificate (given or self-signed), the HTTPS listener serving the
// WebSocket endpoint and /healthz, and the plain-HTTP /metrics endpoint.
// Run blocks until its context ends and then shuts everything down, so
// tunnelmesh-relay's main is flags, config, logger and signals only.
package relayd

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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

// ShutdownTimeout bounds the graceful shutdown of the HTTP servers.
const ShutdownTimeout = 10 * time.Second

// Run serves the relay described by cfg (validated by the caller) until
// ctx ends, then stops accepting, closes every relayed connection (status
// 1001) and returns nil. A failure to start, or of a listener while
// running, is returned as an error. log is the base logger; Run adds the
// component attributes.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	mlog := logging.Component(log, "relay-main")
	cert, err := loadCert(cfg)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	scfg := server.Config{ID: cfg.ID, QueueLen: cfg.QueueLen, Registerer: reg, Logger: log}
	keys, err := cfg.Keys()
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		scfg.Authorize = server.AllowList(keys)
	}
	relay, err := server.New(scfg)
	if err != nil {
		return fmt.Errorf("start relay: %w", err)
	}
	defer relay.Close()

	mux := http.NewServeMux()
	mux.Handle(cfg.Path, relay)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(mlog.Handler(), slog.LevelDebug),
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	var (
		ml   net.Listener
		msrv *http.Server
	)
	if cfg.Metrics != "" {
		if ml, err = net.Listen("tcp", cfg.Metrics); err != nil {
			l.Close()
			return fmt.Errorf("listen metrics: %w", err)
		}
		mmux := http.NewServeMux()
		mmux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		msrv = &http.Server{Handler: mmux, ReadHeaderTimeout: 10 * time.Second}
	}

	errc := make(chan error, 2)
	tl := tls.NewListener(server.TuneListener(l, cfg.SocketBuffer), srv.TLSConfig)
	go func() { errc <- fmt.Errorf("serve: %w", srv.Serve(tl)) }()
	servers := 1
	if msrv != nil {
		servers++
		go func() { errc <- fmt.Errorf("serve metrics: %w", msrv.Serve(ml)) }()
	}
	mlog.Info("relay listening", "addr", l.Addr().String(), "path", cfg.Path, "id", relay.ID(),
		"tls_pin", tlspin.Fingerprint(cert.Leaf), "allow_keys", len(keys), "metrics", cfg.Metrics)

	select {
	case <-ctx.Done():
		err = nil
	case err = <-errc:
		servers--
	}
	mlog.Info("relay shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	srv.Shutdown(shutCtx) // stops accepting; hijacked WebSockets are the relay's
	relay.Close()
	if msrv != nil {
		msrv.Shutdown(shutCtx)
	}
	for range servers {
		<-errc // every Serve has returned (http.ErrServerClosed)
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
	c, err := selfsign.LoadOrGenerate(cfg.TLS.StateDir, cfg.TLS.Hosts)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls.state_dir: %w", err)
	}
	return c, nil
}
