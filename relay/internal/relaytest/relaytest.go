// Package relaytest runs a real relay server over TLS on loopback for tests,
// restartable on the same address with the same certificate.
package relaytest

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tunnelmesh/tunnelmesh/relay/internal/selfsign"
	"github.com/tunnelmesh/tunnelmesh/relay/server"
	"github.com/tunnelmesh/tunnelmesh/shared/tlspin"
)

// ServerTimeout is the read and write timeout of the test relay's
// http.Server.
const ServerTimeout = time.Second

// Relay is a running relay.
type Relay struct {
	t    testing.TB
	cfg  server.Config
	cert tls.Certificate
	addr string
	buf  int

	Server   *server.Server
	Registry *prometheus.Registry
	URL      string // wss://127.0.0.1:port/relay
	Pin      string // tlspin pin of the certificate
	http     *http.Server
	done     chan struct{}
}

// Start runs a relay with cfg (its Registerer is replaced by a fresh
// registry) on a free loopback port. sockBuf sets the server's socket
// buffers (0: server default). The relay stops at the end of the test.
func Start(t testing.TB, cfg server.Config, sockBuf int) *Relay {
	t.Helper()
	cert, err := selfsign.Generate([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	r := &Relay{t: t, cfg: cfg, cert: cert, addr: "127.0.0.1:0", buf: sockBuf, Pin: tlspin.Fingerprint(cert.Leaf)}
	r.start()
	t.Cleanup(r.Stop)
	return r
}

func (r *Relay) start() {
	r.t.Helper()
	r.Registry = prometheus.NewRegistry()
	cfg := r.cfg
	cfg.Registerer = r.Registry
	s, err := server.New(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	var l net.Listener
	for i := 0; ; i++ { // the old socket may linger briefly after a restart
		l, err = net.Listen("tcp", r.addr)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		r.t.Fatal(err)
	}
	r.addr = l.Addr().String()
	r.Server = s
	r.URL = "wss://" + r.addr + "/relay"
	mux := http.NewServeMux()
	mux.Handle("/relay", s)
	// Short server timeouts, as an embedding coordinator might set: the relay
	// must clear them on its hijacked connections.
	r.http = &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{r.cert}},
		ReadTimeout: ServerTimeout, WriteTimeout: ServerTimeout}
	r.done = make(chan struct{})
	tl := tls.NewListener(server.TuneListener(l, r.buf), r.http.TLSConfig)
	go func() {
		defer close(r.done)
		if err := r.http.Serve(tl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.t.Errorf("relay serve: %v", err)
		}
	}()
}

// Stop stops the relay (idempotent).
func (r *Relay) Stop() {
	if r.http == nil {
		return
	}
	r.http.Close() // closes the listener; hijacked WebSockets stay with the relay
	r.Server.Close()
	<-r.done
	r.http = nil
}

// Restart stops the relay and starts a new one on the same address with the
// same certificate.
func (r *Relay) Restart() {
	r.Stop()
	r.start()
}

// Metric returns the value of the relay metric name (without the
// "tunnelmesh_relay_" prefix) whose labels include all of labels
// ("key=value"); 0 when absent.
func (r *Relay) Metric(name string, labels ...string) float64 {
	mfs, err := r.Registry.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tunnelmesh_relay_"+name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, want := range labels {
				k, v, _ := strings.Cut(want, "=")
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

// Ctx returns a context cancelled at the end of the test.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}
