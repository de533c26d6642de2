// Package app wires tunnelmesh-dockerwatch together from its configuration:
// the engine client, the forward, the agent client, the metrics endpoint
// and the reconciler.
package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/config"
	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/engine"
	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/forward"
	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/publish"
	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/reconcile"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
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
	addr, meshPort, err := c.MetricsListen()
	if err != nil {
		return err
	}
	agent := publish.New(c.Agent.Socket)
	if addr != "" || meshPort != 0 {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		defer srv.Close()
		if meshPort != 0 {
			mctx, mcancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); serveOnMesh(mctx, srv, agent, meshPort, log) }()
			defer func() { mcancel(); srv.Close(); <-done }()
		} else {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("metrics: %w", err)
			}
			go srv.Serve(ln)
			log.Info("metrics", "listen", ln.Addr().String())
		}
	}

	r, err := reconcile.New(reconcile.Config{
		Source:      src,
		Forward:     forward.Kernel{},
		Agent:       agent,
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

// meshRetry is how often serveOnMesh asks the agent again; republish how
// often it re-sends the metrics service (the agent forgets it when it
// restarts).
var meshRetry, republish = time.Second, 5 * time.Second

// serveOnMesh serves srv on the node's mesh address at port, once the agent
// reports the address and it is on an interface (until then it retries
// every meshRetry), and publishes the service metrics-dockerwatch there
// (owner publish.MetricsOwner) until ctx ends or srv is closed, then
// withdraws it. The address is read once: a mesh address changes only when
// the node joins again, which restarts dockerwatch with the agent.
func serveOnMesh(ctx context.Context, srv *http.Server, agent *publish.Agent, port uint16, log *slog.Logger) {
	var ln net.Listener
	for logged := false; ln == nil; logged = true {
		ip, err := agent.MeshAddr(ctx)
		if err == nil {
			ln, err = net.Listen("tcp", net.JoinHostPort(ip.String(), strconv.Itoa(int(port))))
		}
		if err != nil && !logged {
			log.Info("metrics waiting for the mesh address", "err", err)
		}
		if ln == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(meshRetry):
			}
		}
	}
	log.Info("metrics", "listen", ln.Addr().String())
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ln) }()
	svcs := []api.Service{{Name: api.ServiceMetricsDockerwatch, Protocol: "tcp", Port: port}}
	for failed := false; ; {
		err := agent.PublishAs(ctx, publish.MetricsOwner, svcs)
		if err != nil && !failed {
			log.Warn("publish metrics service", "err", err)
		}
		failed = err != nil
		select {
		case <-ctx.Done():
		case <-served:
		case <-time.After(republish):
			continue
		}
		break
	}
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := agent.PublishAs(wctx, publish.MetricsOwner, nil); err != nil {
		log.Warn("withdraw metrics service", "err", err)
	}
}
