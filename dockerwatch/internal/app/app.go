// Package app wires tunnelmesh-dockerwatch together from its configuration:
// the engine client, the forward, the agent client, the metrics endpoint
// and the reconciler.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/config"
	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/engine"
	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/forward"
	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/publish"
	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/reconcile"
)

// Logger returns the logger c.Log asks for, writing to w.
func Logger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(c.Level)) // checked by Validate
	o := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(w, o)
	if c.Format == "json" {
		h = slog.NewJSONHandler(w, o)
	}
	return slog.New(h).With("component", "dockerwatch")
}

// Run runs dockerwatch until ctx ends; it withdraws what it exposed before
// returning.
func Run(ctx context.Context, c config.Config, log *slog.Logger) error {
	if err := forward.EnsureIPForward(); err != nil {
		return err
	}
	src, err := engine.New(c.Docker.Host)
	if err != nil {
		return err
	}
	defer src.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := reconcile.NewMetrics(reg)
	if c.Metrics != "" {
		ln, err := net.Listen("tcp", c.Metrics)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		defer func() {
			srv.Close()
			if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Warn("metrics server", "err", err)
			}
		}()
		log.Info("metrics", "listen", ln.Addr().String())
	}

	r, err := reconcile.New(reconcile.Config{
		Source:      src,
		Forward:     forward.Kernel{},
		Agent:       publish.New(c.Agent.Socket),
		AutoPublish: c.AutoPublish,
		Resync:      c.ResyncInterval,
		Log:         log,
		Metrics:     m,
	})
	if err != nil {
		return err
	}
	log.Info("watching", "docker", c.Docker.Host, "agent", c.Agent.Socket, "auto_publish", c.AutoPublish)
	return r.Run(ctx)
}
