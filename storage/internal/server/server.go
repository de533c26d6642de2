// Package server wires tunnelmesh-storage together: the netmap watch (as the
// node in the agent's credentials file), the credentials API, the supervised
// SeaweedFS and the shared buckets. Run blocks until ctx ends, then stops
// SeaweedFS cleanly.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
	"github.com/tunnelmesh/tunnelmesh/storage/internal/config"
	"github.com/tunnelmesh/tunnelmesh/storage/internal/creds"
	"github.com/tunnelmesh/tunnelmesh/storage/internal/issuer"
	"github.com/tunnelmesh/tunnelmesh/storage/internal/weed"
)

// watchTimeout bounds one netmap long poll.
const watchTimeout = api.DefaultWatchWait + 15*time.Second

// Run runs the storage service described by cfg until ctx ends.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	rc, err := regclient.LoadCredentials(cfg.Credentials)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	client, err := regclient.New(rc)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	client.HTTP.Timeout = watchTimeout
	defer client.HTTP.CloseIdleConnections()

	store, err := creds.Open(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	restarts := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tunnelmesh", Subsystem: "storage", Name: "weed_restarts_total",
		Help: "Times SeaweedFS exited on its own and was restarted."})
	reg.MustRegister(restarts)

	sup := &weed.Supervisor{MaxBackoff: time.Duration(cfg.Weed.MaxBackoff), Log: log.With("component", "weed"),
		OnExit: func(error) { restarts.Inc() }}
	if os.Geteuid() == 0 {
		if self, err := os.Executable(); err == nil {
			sup.Self = self // weed gets a private /tmp (see weed.MaybeExec)
		}
	} else {
		log.Warn("not root: SeaweedFS shares the machine's /tmp for its gRPC sockets")
	}
	svc := &issuer.Service{Store: store, Buckets: cfg.Buckets, Region: cfg.Region, Reload: sup.Reload,
		Log: log.With("component", "issuer"), Metrics: issuer.NewMetrics(reg)}

	// The first netmap gives the mesh address and zone.
	first := make(chan *api.Netmap, 1)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: every goroutine below ends with ctx
	defer cancel()
	watchErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		sent := false
		watchErr <- client.Watch(ctx, 0, func(nm *api.Netmap) error {
			if err := svc.ApplyNetmap(nm); err != nil {
				log.Error("apply netmap", "version", nm.Version, "err", err)
			}
			if !sent {
				sent = true
				first <- nm
			}
			return nil
		}, func(err error) { log.Warn("netmap watch", "err", err) })
	}()
	var nm *api.Netmap
	select {
	case nm = <-first:
	case <-ctx.Done():
		return nil
	}
	bind := nm.Self.IP
	if cfg.Listen != "mesh" {
		bind = netip.MustParseAddr(cfg.Listen)
	}
	zone := nm.DNS.Zone
	if zone == "" {
		zone = "mesh"
	}
	svc.Endpoint = fmt.Sprintf("http://%s.%s:%d", api.ServiceStorage, zone, cfg.S3Port)
	s3Addr := netip.AddrPortFrom(bind, cfg.S3Port)
	idFile, err := svc.WriteIdentities()
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	sup.Opts = weed.Options{
		Binary: cfg.Weed.Binary, Dir: filepath.Join(cfg.DataDir, "weed"), S3Addr: s3Addr, IdentitiesFile: idFile,
		VolumeMax: cfg.Weed.VolumeMax, VolumeSizeMB: cfg.Weed.VolumeSizeMB,
	}
	if cfg.Weed.MetricsListen != "" {
		sup.Opts.MetricsAddr = netip.MustParseAddrPort(cfg.Weed.MetricsListen)
	}
	s3 := func(k creds.Key) (*minio.Client, error) {
		return minio.New(s3Addr.String(), &minio.Options{Creds: miniocreds.NewStaticV4(k.AccessKey, k.Secret, ""), Region: cfg.Region})
	}
	svc.Usable = func(ctx context.Context, k creds.Key) error { return WaitUsable(ctx, s3, k, cfg.Buckets) }

	supErr := make(chan error, 1)
	wg.Add(1)
	go func() { defer wg.Done(); supErr <- sup.Run(ctx) }()

	mux := http.NewServeMux()
	mux.Handle(api.PathStorageCredentials, svc)
	ready := false
	var readyMu sync.Mutex
	mux.HandleFunc(api.PathHealth, func(w http.ResponseWriter, r *http.Request) {
		readyMu.Lock()
		ok := ready
		readyMu.Unlock()
		if !ok {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	authAddr, err := serveHTTP(ctx, &wg, bind, cfg.AuthPort, mux)
	if err != nil {
		return fmt.Errorf("storage: listen credentials api: %w", err)
	}
	// /metrics on a port of its own: the credentials API is open to every
	// member, the metrics only to monitoring nodes (the default policy).
	var gather prometheus.Gatherer = reg
	if cfg.Weed.MetricsListen != "" {
		gather = prometheus.Gatherers{reg, newWeedGatherer(cfg.Weed.MetricsListen, log)}
	}
	metricsMux := http.NewServeMux()
	metricsMux.Handle(api.PathMetrics, promhttp.HandlerFor(gather, promhttp.HandlerOpts{}))
	metricsAddr, err := serveHTTP(ctx, &wg, bind, cfg.MetricsPort, metricsMux)
	if err != nil {
		return fmt.Errorf("storage: listen metrics: %w", err)
	}
	log.Info("storage serving", "s3", s3Addr.String(), "credentials_api", authAddr, "metrics", metricsAddr, "endpoint", svc.Endpoint)

	// Health: a child is ready once the buckets exist (created with the
	// admin key); only then does it get SIGHUPs (see weed.Supervisor.SetReady).
	wg.Add(1)
	go func() {
		defer wg.Done()
		readyPid := 0
		for {
			wait := 500 * time.Millisecond
			if pid := sup.Pid(); pid != 0 {
				cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
				err := ensureBuckets(cctx, s3, store.Admin(), svc.AllBuckets(), cfg.Region)
				ccancel()
				readyMu.Lock()
				ready = err == nil
				readyMu.Unlock()
				if err == nil {
					if err := sup.SetReady(pid); err != nil {
						log.Warn("reload identities", "err", err)
					}
					if readyPid != pid {
						readyPid = pid
						log.Info("storage ready", "buckets", svc.AllBuckets(), "weed_pid", pid)
					}
					wait = 5 * time.Second
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()

	select {
	case <-ctx.Done():
		return nil
	case err := <-supErr:
		if err != nil {
			return fmt.Errorf("storage: %w", err)
		}
		return nil
	case err := <-watchErr:
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("storage: netmap watch: %w", err)
		}
		return nil
	}
}

// EnsureBuckets creates the buckets with the admin key, retrying until
// SeaweedFS answers or ctx ends.
func EnsureBuckets(ctx context.Context, s3 func(creds.Key) (*minio.Client, error), admin creds.Key, buckets []string, region string) error {
	for {
		err := ensureBuckets(ctx, s3, admin, buckets, region)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("create buckets: %w (last: %v)", ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// ensureBuckets makes one attempt at creating the missing buckets.
func ensureBuckets(ctx context.Context, s3 func(creds.Key) (*minio.Client, error), admin creds.Key, buckets []string, region string) error {
	c, err := s3(admin)
	if err != nil {
		return err
	}
	for _, b := range buckets {
		ok, err := c.BucketExists(ctx, b)
		if err == nil && !ok {
			err = c.MakeBucket(ctx, b, minio.MakeBucketOptions{Region: region})
		}
		if err != nil {
			return fmt.Errorf("bucket %s: %w", b, err)
		}
	}
	return nil
}

// WaitUsable waits until SeaweedFS accepts k (a signed request is not
// refused for an unknown key). A listing refused with AccessDenied counts:
// the key is known, and the policy may grant it nothing on buckets[0] (a
// HEAD would not tell the two apart, its 403 has no body).
func WaitUsable(ctx context.Context, s3 func(creds.Key) (*minio.Client, error), k creds.Key, buckets []string) error {
	if len(buckets) == 0 {
		return nil
	}
	c, err := s3(k)
	if err != nil {
		return err
	}
	for {
		var err error
		lctx, lcancel := context.WithCancel(ctx) // stops the listing's goroutine
		for o := range c.ListObjects(lctx, buckets[0], minio.ListObjectsOptions{MaxKeys: 1}) {
			err = o.Err
			break
		}
		lcancel()
		if err == nil || minio.ToErrorResponse(err).Code == "AccessDenied" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for key %s: %w (last: %v)", k.AccessKey, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// serveHTTP serves h on bind:port until ctx ends (then shuts the server down
// within 5 s); the goroutine is counted in wg. It returns the bound address.
func serveHTTP(ctx context.Context, wg *sync.WaitGroup, bind netip.Addr, port uint16, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(bind.String(), strconv.Itoa(int(port))))
	if err != nil {
		return "", err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second}
	wg.Add(1)
	go func() {
		defer wg.Done()
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = hs.Serve(ln)
		}()
		<-ctx.Done()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = hs.Shutdown(sctx)
		<-done
	}()
	return ln.Addr().String(), nil
}
