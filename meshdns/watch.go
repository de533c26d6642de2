package meshdns

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

// requestTimeout bounds one netmap watch request: the long poll plus slack,
// so a registry that vanishes without closing the connection is noticed.
const requestTimeout = api.DefaultWatchWait + 15*time.Second

// unreachableLogEvery limits "registry still unreachable" log lines.
const unreachableLogEvery = time.Minute

// OnStartup starts watching the registry. It is registered with the Corefile
// instance and runs once per (re)load.
func (m *MeshDNS) OnStartup() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel != nil {
		return nil
	}
	c, err := regclient.New(m.creds)
	if err != nil {
		return err
	}
	c.HTTP.Timeout = requestTimeout
	c.HTTP.Transport = &observedTransport{base: c.HTTP.Transport, ok: m.markReachable}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done, m.client = cancel, make(chan struct{}), c
	go func(done chan struct{}) {
		defer close(done)
		m.watch(ctx, c)
	}(m.done)
	return nil
}

// OnShutdown stops the watch, waits for it, and closes the registry
// connections, so a reload leaves no goroutine of the old instance behind.
func (m *MeshDNS) OnShutdown() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel == nil {
		return nil
	}
	m.cancel()
	<-m.done
	m.client.HTTP.CloseIdleConnections()
	m.cancel, m.done, m.client = nil, nil, nil
	return nil
}

func (m *MeshDNS) watch(ctx context.Context, c *regclient.Client) {
	err := c.Watch(ctx, 0, m.apply, m.watchFailed)
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Errorf("netmap watch stopped: %v", err)
	}
}

// apply swaps in the table of a new netmap.
func (m *MeshDNS) apply(nm *api.Netmap) error {
	t := buildTable(nm, m.zone, m.ttl)
	old := m.table.Swap(t)
	m.markReachable()
	origin := m.origin()
	netmapVersion.WithLabelValues(origin).Set(float64(t.version))
	netmapNodes.WithLabelValues(origin).Set(float64(t.nodes))
	netmapUpdates.WithLabelValues(origin).Inc()
	switch {
	case old == nil:
		log.Infof("serving zone %s from netmap version %d: %d nodes", t.zone, t.version, t.nodes)
	case old.zone != t.zone:
		log.Infof("mesh zone changed from %s to %s (netmap version %d)", old.zone, t.zone, t.version)
	}
	if t.skipped > 0 {
		log.Warningf("netmap version %d: left out %d nodes or services with invalid names, addresses or ports", t.version, t.skipped)
	}
	return nil
}

// watchFailed hears every failed watch request.
func (m *MeshDNS) watchFailed(err error) {
	origin := m.origin()
	registryErrors.WithLabelValues(origin).Inc()
	registryReachable.WithLabelValues(origin).Set(0)
	now := time.Now()
	first := m.failingSince.CompareAndSwap(0, now.UnixNano())
	m.mu.Lock()
	logNow := first || now.Sub(m.lastLog) >= unreachableLogEvery
	if logNow {
		m.lastLog = now
	}
	m.mu.Unlock()
	if !logNow {
		return
	}
	if t := m.table.Load(); t != nil {
		log.Warningf("registry unreachable, answering from netmap version %d: %v", t.version, err)
	} else {
		log.Warningf("registry unreachable, no netmap yet: %v", err)
	}
}

// markReachable records an answer from the registry.
func (m *MeshDNS) markReachable() {
	registryReachable.WithLabelValues(m.origin()).Set(1)
	if since := m.failingSince.Swap(0); since != 0 {
		log.Infof("registry reachable again after %s", time.Since(time.Unix(0, since)).Round(time.Millisecond))
	}
}

func (m *MeshDNS) origin() string {
	if len(m.Zones) == 0 {
		return "."
	}
	return m.Zones[0]
}

// observedTransport reports every netmap answer (200 or 304) from the
// registry, so recovery is seen even when the netmap has not changed.
type observedTransport struct {
	base http.RoundTripper
	ok   func()
}

func (o *observedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := o.base.RoundTrip(r)
	if err == nil && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNotModified) {
		o.ok()
	}
	return resp, err
}

// CloseIdleConnections closes the base transport's idle connections.
func (o *observedTransport) CloseIdleConnections() {
	if c, ok := o.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
