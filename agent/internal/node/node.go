// Package node is the running TunnelMesh node: it opens the TUN interface,
// starts the data plane (package engine), follows the registry's netmap and
// hands each one to the data plane, converted once by engine.FromNetmap
// (the data plane never talks to the registry), reports its endpoints,
// sends heartbeats, serves the local API for the CLI and, optionally,
// Prometheus metrics.
package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/engine"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/splitdns"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/state"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/tunif"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

// Defaults for the background loops.
const (
	DefaultHeartbeatInterval = 15 * time.Second
	DefaultEndpointInterval  = 20 * time.Second
	// reachableWindow is how long after the last successful registry call
	// the coordinator counts as reachable.
	reachableWindow = 90 * time.Second
)

// Config is what a node runs with.
type Config struct {
	Dir   state.Dir
	State state.Node
	Key   nodekey.PrivateKey

	Interface     string // TUN name; tunif.DefaultName when empty
	MTU           int    // 0: chosen from the underlay MTU
	ListenPort    uint16 // 0: the data plane picks one (then saved)
	MetricsListen string // "" for no metrics server; "mesh:PORT" for the mesh address; else HOST:PORT
	NoTUNOffload  bool   // open the TUN without offloads (tunif.Config.NoOffload)
	Version       string

	Log *slog.Logger

	// Engine are the data plane's switches (flags).
	Engine engine.Options
	// NewEngine starts the data plane; nil: engine.New with Engine.
	// Tests substitute a fake.
	NewEngine EngineFactory
	// OpenInterface creates the TUN interface; tunif.Create when nil.
	// Tests substitute a fake device.
	OpenInterface func(tunif.Config) (tun.Device, func() error, error)

	HeartbeatInterval time.Duration
	EndpointInterval  time.Duration

	// STUN is the STUN server (HOST:PORT) the node learns its public UDP
	// address from; "" means the coordinator's host on port 3478, "off"
	// none. Used when the data plane is an EndpointSource.
	STUN string
	// SSHAdvertise is the SSH endpoint reported to the registry when the
	// data plane accepts the SSH transport; zero: the first local address
	// with the SSH listen port. Without an SSH listener in the data plane
	// it is the endpoint of an SSH server next to the agent that forwards
	// to its packet port: a standalone tunnelmesh-sshgw (host key = the
	// node key) or, with SSHOpenSSH, an OpenSSH server. An unspecified
	// address stands for the node's first local address.
	SSHAdvertise netip.AddrPort
	// SSHOpenSSH, if set, says SSHAdvertise is an OpenSSH server.
	SSHOpenSSH *OpenSSHEndpoint

	// Services are published to the registry with every endpoint report
	// (api.ServiceDNS on udp/53 where tunnelmesh-meshdns runs next to the
	// node).
	Services []api.Service
	// DNSMode is how the system resolver is pointed at the netmap's mesh
	// DNS servers (package splitdns). Empty or splitdns.ModeOff leaves the
	// resolver alone; the CLI defaults to splitdns.ModeAuto.
	DNSMode splitdns.Mode
	// ResolvConf is the file DNS mode resolvconf manages; empty:
	// splitdns.DefaultResolvConf.
	ResolvConf string
}

// Node is a running node. Create it with New, run it with Run.
type Node struct {
	cfg    Config
	log    *slog.Logger
	client *regclient.Client

	eng        Engine // set by Run before any reader runs
	ifname     string
	mtu        int
	listenPort uint16

	mu        sync.Mutex // guards the fields below
	netmap    *api.Netmap
	applied   engine.Config // the data plane's configuration, from netmap
	lastOK    time.Time
	lastErr   string
	removed   bool
	endpoints []netip.AddrPort
	psk       api.MeshPSK // the netmap's, once one carried it (else State.PSK)
	m         *metrics

	stMu  sync.Mutex // guards saved and the state files
	saved state.Node // cfg.State with the changes saved since (rotated PSK, registries)

	probes chan []device.PeerConfig // new peers to ping once, see probeLoop

	dns *splitdns.Manager // set by Run before any reader runs

	ext extServices // set through the local API, see services.go

	dnsMu   sync.Mutex // guards the fields below
	dnsLast splitdns.Config
	dnsErr  string
}

// New checks cfg and prepares a node.
func New(cfg Config) (*Node, error) {
	if err := cfg.State.Validate(); err != nil {
		return nil, fmt.Errorf("node: state: %w", err)
	}
	if cfg.Key.IsZero() {
		return nil, errors.New("node: no key")
	}
	if cfg.NewEngine == nil {
		opts := cfg.Engine
		cfg.NewEngine = func(dev tun.Device, c engine.Config, log *slog.Logger) (Engine, error) {
			return engine.New(dev, c, opts, log)
		}
	}
	if o := cfg.SSHOpenSSH; o != nil {
		hk := o.HostKey
		if err := api.ValidateSSH(cfg.SSHAdvertise, &hk, o.User, o.PacketPort); err != nil {
			return nil, fmt.Errorf("node: openssh endpoint: %w", err)
		}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Interface == "" {
		cfg.Interface = tunif.DefaultName
	}
	if cfg.OpenInterface == nil {
		cfg.OpenInterface = openTUN
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.EndpointInterval <= 0 {
		cfg.EndpointInterval = DefaultEndpointInterval
	}
	if cfg.MTU != 0 && (cfg.MTU < tunif.MinMTU || cfg.MTU > tunif.MaxMTU) {
		return nil, fmt.Errorf("node: mtu %d: must be between %d and %d", cfg.MTU, tunif.MinMTU, tunif.MaxMTU)
	}
	creds := cfg.State.Credentials()
	creds.Key = cfg.Key
	client, err := regclient.New(creds)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	return &Node{cfg: cfg, log: cfg.Log.With("component", "node"), client: client, m: newMetrics(),
		probes: make(chan []device.PeerConfig, 16), saved: cfg.State}, nil
}

func openTUN(c tunif.Config) (tun.Device, func() error, error) {
	ifc, err := tunif.Create(c)
	if err != nil {
		return nil, nil, err
	}
	return ifc.Device, ifc.Close, nil
}

// Run runs the node until ctx ends, then tears everything down in order:
// background loops, local API, data plane, interface. It returns nil after a
// clean shutdown.
func (n *Node) Run(ctx context.Context) error {
	st := n.cfg.State
	// Listeners first: a bad flag or a second node fails before any
	// interface exists.
	apiLn, err := localapi.Listen(n.cfg.Dir.Path(state.SocketFile))
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	defer apiLn.Close()
	ml, err := parseMetricsListen(n.cfg.MetricsListen, st.IP)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	var metricsLn net.Listener
	if ml.addr != "" && !ml.onMesh {
		metricsLn, err = net.Listen("tcp", ml.addr)
		if err != nil {
			return fmt.Errorf("node: metrics listen: %w", err)
		}
		defer metricsLn.Close()
	}

	n.mtu = n.cfg.MTU
	if n.mtu == 0 {
		n.mtu = tunif.MTUFor(tunif.UnderlayMTU(coordinatorAddr(st.Coordinator)))
	}
	n.ifname = n.cfg.Interface
	dev, closeIfc, err := n.cfg.OpenInterface(tunif.Config{Name: n.ifname, MTU: n.mtu, Addr: st.IP, Prefix: st.MeshCIDR, NoOffload: n.cfg.NoTUNOffload})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	defer func() {
		if err := closeIfc(); err != nil {
			n.log.Warn("remove interface", "interface", n.ifname, "err", err)
		}
	}()
	// Mesh DNS: after the interface exists (resolved mode configures it),
	// closed before it goes (deferred after closeIfc, so it runs first).
	dnsMode := n.cfg.DNSMode
	if dnsMode == "" {
		dnsMode = splitdns.ModeOff
	}
	dns, err := splitdns.New(splitdns.Options{Link: n.ifname, StateDir: string(n.cfg.Dir), Logger: n.cfg.Log,
		Mode: dnsMode, ResolvConf: n.cfg.ResolvConf})
	if err != nil {
		return fmt.Errorf("node: mesh dns: %w", err)
	}
	defer func() {
		if err := dns.Close(); err != nil {
			n.log.Warn("undo mesh dns settings", "err", err)
		}
	}()
	n.dns = dns
	if ml.onMesh {
		// The interface has the mesh address now. Not serving metrics
		// there (the port is taken) does not stop the node.
		if metricsLn, err = net.Listen("tcp", ml.addr); err != nil {
			n.log.Warn("metrics not served", "addr", ml.addr, "err", err)
			ml.publish = 0
		} else {
			defer metricsLn.Close()
		}
	}
	if ml.publish != 0 {
		n.cfg.Services = append(slices.Clone(n.cfg.Services), api.Service{Name: MetricsService, Protocol: "tcp", Port: ml.publish})
	}
	first, _ := engine.FromNetmap(nil, n.local())
	first.Device.ListenPort = n.cfg.ListenPort
	eng, err := n.cfg.NewEngine(dev, first, n.cfg.Log)
	if err != nil {
		return fmt.Errorf("node: start data plane: %w", err)
	}
	defer eng.Close()
	n.eng = eng
	n.listenPort = eng.Status().ListenPort
	if n.listenPort == 0 {
		n.listenPort = n.cfg.ListenPort
	}
	n.saveSettings()
	n.log.Info("node up", "name", st.Name, "ip", st.IP, "mesh", st.MeshID, "interface", n.ifname,
		"mtu", n.mtu, "listen_port", n.listenPort, "coordinator", st.Coordinator)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	run := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				n.log.Error(name+" stopped", "err", err)
				cancel()
			}
		}()
	}
	run("netmap watch", n.watch)
	run("heartbeat", n.heartbeatLoop)
	run("endpoint reporter", n.endpointLoop)
	run("services expiry", n.expireLoop)
	run("prober", n.probeLoop)
	run("local api", func(ctx context.Context) error { return localapi.Serve(ctx, apiLn, n, n.cfg.Log) })
	if metricsLn != nil {
		run("metrics", func(ctx context.Context) error { return n.serveMetrics(ctx, metricsLn) })
	}
	<-ctx.Done()
	wg.Wait()
	n.log.Info("node down", "name", st.Name, "interface", n.ifname)
	return nil
}

// saveSettings records the interface, MTU and listen port the node runs with,
// so that `tunnelmesh up` comes back the same way.
func (n *Node) saveSettings() {
	st := n.cfg.State
	if n.cfg.Dir == "" || st.Interface == n.ifname && st.ListenPort == n.listenPort && st.MTU == n.cfg.MTU {
		return
	}
	st.Interface = n.ifname
	st.ListenPort = n.listenPort
	st.MTU = n.cfg.MTU
	if err := n.cfg.Dir.SaveNode(st); err != nil {
		n.log.Warn("save settings", "err", err)
		return
	}
	n.cfg.State = st
	n.stMu.Lock()
	n.saved = st
	n.stMu.Unlock()
}

// updateState applies edit to the saved node state and, when edit reports
// a change, saves it (in memory only without a state directory).
func (n *Node) updateState(what string, edit func(*state.Node) bool) {
	n.stMu.Lock()
	defer n.stMu.Unlock()
	st := n.saved
	st.PSK = slices.Clone(st.PSK)
	st.Registries = slices.Clone(st.Registries)
	if !edit(&st) {
		return
	}
	if n.cfg.Dir != "" {
		if err := n.cfg.Dir.SaveNode(st); err != nil {
			n.log.Warn("save "+what, "err", err)
			return
		}
	}
	n.saved = st
}

// applyRegistries keeps the registry replicas a netmap lists: the client
// fails over to them, and they are saved for the next start.
func (n *Node) applyRegistries(urls []string) {
	if len(urls) == 0 {
		return
	}
	var valid []string
	for _, u := range urls {
		nu, err := NormalizeCoordinator(u)
		if err != nil || !strings.HasPrefix(u, "https://") {
			n.log.Warn("netmap registry url ignored", "url", u, "err", err)
			continue
		}
		if !slices.Contains(valid, nu) {
			valid = append(valid, nu)
		}
	}
	n.updateState("registry replicas", func(st *state.Node) bool {
		if slices.Equal(st.Registries, valid) {
			return false
		}
		n.log.Info("registry replicas", "urls", valid)
		st.Registries = valid
		return true
	})
}

func coordinatorAddr(coord string) netip.Addr {
	u, err := url.Parse(coord)
	if err != nil {
		return netip.Addr{}
	}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil {
		return a
	}
	addrs, err := net.LookupHost(u.Hostname())
	if err != nil || len(addrs) == 0 {
		return netip.Addr{}
	}
	a, _ := netip.ParseAddr(addrs[0])
	return a
}

// local is what the data plane's configuration takes from the node itself.
func (n *Node) local() engine.Local {
	n.mu.Lock()
	psk := n.psk
	n.mu.Unlock()
	if len(psk.Current) != api.PSKSize {
		psk = api.MeshPSK{Current: n.cfg.State.PSK}
	}
	return engine.Local{
		Key:         n.cfg.Key,
		MeshID:      n.cfg.State.MeshID,
		PSK:         psk,
		Self:        n.cfg.State.IP,
		MTU:         n.mtu,
		ListenPort:  n.listenPort,
		Coordinator: n.cfg.State.Coordinator,
		AcceptsSSH:  n.cfg.Engine.AcceptsSSH(),
	}
}

// applyPSK takes the mesh PSK from a netmap. A new current PSK (the
// registry rotated it) is saved in the node state, so a restart uses it.
func (n *Node) applyPSK(p *api.MeshPSK) {
	if p == nil {
		return
	}
	if err := p.Validate(); err != nil {
		n.log.Warn("netmap psk ignored", "err", err)
		return
	}
	n.mu.Lock()
	n.psk = api.MeshPSK{Current: slices.Clone(p.Current), Previous: slices.Clone(p.Previous), PreviousUntil: p.PreviousUntil}
	n.mu.Unlock()
	n.updateState("rotated psk", func(st *state.Node) bool {
		if bytes.Equal(st.PSK, p.Current) {
			return false
		}
		n.log.Info("mesh psk rotated", "previous_accepted_until", p.PreviousUntil)
		st.PSK = slices.Clone(p.Current)
		return true
	})
}

func (n *Node) watch(ctx context.Context) error {
	return n.client.Watch(ctx, 0, func(nm *api.Netmap) error {
		n.regOK()
		n.apply(nm)
		return nil
	}, func(err error) {
		n.regErr(err)
		if regclient.IsCode(err, api.CodeUnauthorized) || regclient.IsCode(err, api.CodeForbidden) || regclient.IsCode(err, api.CodeNotFound) {
			n.dropAll(err)
		}
	})
}

// apply turns a netmap into the data plane's configuration.
func (n *Node) apply(nm *api.Netmap) {
	n.applyPSK(nm.PSK)
	n.applyRegistries(nm.Registries)
	cfg, skipped := engine.FromNetmap(nm, n.local())
	for _, s := range skipped {
		n.log.Warn("netmap peer skipped", "peer", s)
	}
	n.mu.Lock()
	old := n.applied
	n.mu.Unlock()
	if err := n.eng.Reconfig(cfg); err != nil {
		n.m.reconfigErrors.Inc()
		n.log.Error("reconfigure data plane", "version", nm.Version, "err", err)
		return
	}
	n.m.reconfigs.Inc()
	n.m.netmapVersion.Set(float64(nm.Version))
	added, removed := diffPeers(old.Device.Peers, cfg.Device.Peers)
	n.mu.Lock()
	n.netmap = nm
	n.applied = cfg
	wasRemoved := n.removed
	n.removed = false
	n.mu.Unlock()
	if wasRemoved {
		n.log.Info("registry accepts this node again")
	}
	n.log.Info("netmap applied", "version", nm.Version, "peers", len(cfg.Device.Peers), "added", added, "removed", removed)
	n.applyDNS(dnsConfig(nm, n.cfg.State.IP))
	if fresh := toProbe(old, cfg); len(fresh) > 0 {
		select {
		case n.probes <- fresh:
		default: // the prober is behind; these peers connect on first traffic
		}
	}
}

// toProbe returns the peers worth a first ping: those reachable (UDP
// endpoints, a home relay or an SSH endpoint) that are new, or that had no
// UDP endpoints before.
func toProbe(old, cur engine.Config) []device.PeerConfig {
	var out []device.PeerConfig
	for _, p := range cur.Device.Peers {
		tp := cur.Transport.Peers[p.PublicKey]
		if !hasUDP(p) && tp.HomeRelay == "" && !tp.SSH.Addr.IsValid() {
			continue
		}
		i := slices.IndexFunc(old.Device.Peers, func(q device.PeerConfig) bool { return q.PublicKey == p.PublicKey })
		if i < 0 || (!hasUDP(old.Device.Peers[i]) && hasUDP(p)) {
			out = append(out, p)
		}
	}
	return out
}

func hasUDP(p device.PeerConfig) bool {
	return slices.ContainsFunc(p.Endpoints, func(e device.Endpoint) bool { return e.Kind == device.PathUDP })
}

// udpEndpoints are p's UDP addresses.
func udpEndpoints(p device.PeerConfig) []netip.AddrPort {
	var out []netip.AddrPort
	for _, e := range p.Endpoints {
		if e.Kind == device.PathUDP {
			out = append(out, e.Addr)
		}
	}
	return out
}

// probeLoop pings every newly configured peer once, so that sessions (and
// RTTs) exist before the first packet needs them, and so that a restarted
// node re-establishes its sessions at once instead of waiting for its peers
// to notice their old sessions are dead.
func (n *Node) probeLoop(ctx context.Context) error {
	const parallel = 8
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		var peers []device.PeerConfig
		select {
		case <-ctx.Done():
			return nil
		case peers = <-n.probes:
		}
		for _, p := range peers {
			select {
			case <-ctx.Done():
				return nil
			case sem <- struct{}{}:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				rtt, path, err := n.eng.Ping(pctx, p.IP)
				if err != nil {
					n.log.Debug("first probe unanswered", "peer", p.Name, "err", err)
					return
				}
				n.log.Debug("peer reachable", "peer", p.Name, "path", path, "rtt", rtt)
			}()
		}
	}
}

// dropAll tears down every peer: the registry no longer knows this node.
func (n *Node) dropAll(cause error) {
	cfg, _ := engine.FromNetmap(nil, n.local())
	n.mu.Lock()
	if n.removed {
		n.mu.Unlock()
		return
	}
	n.removed = true
	n.applied = cfg
	n.mu.Unlock()
	n.log.Error("registry refuses this node (removed by the admin?); dropping all peers", "err", cause)
	// The mesh DNS servers are out of reach now: stop sending names to them.
	n.applyDNS(splitdns.Config{})
	if err := n.eng.Reconfig(cfg); err != nil {
		n.log.Error("reconfigure data plane", "err", err)
	}
}

func diffPeers(old, cur []device.PeerConfig) (added, removed []string) {
	in := func(ps []device.PeerConfig, p device.PeerConfig) bool {
		return slices.ContainsFunc(ps, func(q device.PeerConfig) bool { return q.PublicKey == p.PublicKey && q.IP == p.IP })
	}
	for _, p := range cur {
		if !in(old, p) {
			added = append(added, p.Name)
		}
	}
	for _, p := range old {
		if !in(cur, p) {
			removed = append(removed, p.Name)
		}
	}
	return added, removed
}

func (n *Node) regOK() {
	n.mu.Lock()
	n.lastOK = time.Now()
	n.lastErr = ""
	n.mu.Unlock()
}

func (n *Node) regErr(err error) {
	n.m.registryErrors.Inc()
	n.mu.Lock()
	first := n.lastErr == ""
	n.lastErr = err.Error()
	n.mu.Unlock()
	if first {
		n.log.Warn("registry unreachable", "err", err)
	} else {
		n.log.Debug("registry unreachable", "err", err)
	}
}

func (n *Node) heartbeatLoop(ctx context.Context) error {
	t := time.NewTicker(n.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := n.client.Heartbeat(cctx)
		cancel()
		if err == nil {
			n.regOK()
		} else if ctx.Err() == nil {
			n.regErr(err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (n *Node) endpointLoop(ctx context.Context) error {
	t := time.NewTicker(n.cfg.EndpointInterval)
	defer t.Stop()
	var reported api.EndpointsRequest
	var ok bool
	changed, stopWatch := n.watchInterfaces(ctx)
	defer stopWatch()
	for {
		req := n.discoverEndpoints(ctx)
		req.Services = n.services()
		eps := req.Endpoints
		if !ok || !slices.Equal(eps, reported.Endpoints) || req.SSHEndpoint != reported.SSHEndpoint || !slices.Equal(req.Services, reported.Services) {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := n.client.ReportEndpoints(cctx, req)
			cancel()
			switch {
			case err == nil:
				n.regOK()
				reported, ok = req, true
				n.mu.Lock()
				n.endpoints = eps
				n.mu.Unlock()
				n.log.Info("endpoints reported", "endpoints", eps, "ssh", req.SSHEndpoint)
			case ctx.Err() == nil:
				n.regErr(err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-n.ext.changedC():
		case <-changed:
			n.networkChanged()
		}
	}
}

// Status implements localapi.Backend.
func (n *Node) Status() localapi.Status {
	st := n.cfg.State
	stats := n.eng.Status()
	n.mu.Lock()
	s := localapi.Status{
		Name:       st.Name,
		NodeID:     st.NodeID,
		IP:         st.IP,
		MeshID:     st.MeshID,
		MeshCIDR:   st.MeshCIDR,
		Interface:  n.ifname,
		MTU:        n.mtu,
		ListenPort: n.listenPort,
		PublicKey:  n.cfg.Key.Public().String(),
		Version:    n.cfg.Version,
		Coordinator: localapi.Coordinator{
			URL:       n.client.Current(),
			Reachable: n.lastErr == "" && !n.lastOK.IsZero() && time.Since(n.lastOK) < reachableWindow,
			LastOK:    n.lastOK,
			LastError: n.lastErr,
		},
		Removed:   n.removed,
		Endpoints: slices.Clone(n.endpoints),
		Services:  n.services(),
		Drops:     stats.Drops,
	}
	online := make(map[nodekey.PublicKey]bool)
	if n.netmap != nil {
		s.NetmapVersion = n.netmap.Version
		for _, p := range n.netmap.Peers {
			online[p.PublicKey] = p.Online
		}
	}
	peers := n.applied.Device.Peers
	n.mu.Unlock()
	byKey := make(map[nodekey.PublicKey]device.PeerStatus, len(stats.Peers))
	for _, ps := range stats.Peers {
		byKey[ps.PublicKey] = ps
	}
	s.Peers = make([]localapi.Peer, 0, len(peers))
	for _, p := range peers {
		ps := byKey[p.PublicKey]
		s.Peers = append(s.Peers, localapi.Peer{
			Name:           p.Name,
			IP:             p.IP,
			PublicKey:      p.PublicKey.String(),
			Online:         online[p.PublicKey],
			Path:           ps.Path,
			Endpoint:       ps.Endpoint,
			Endpoints:      udpEndpoints(p),
			LastHandshake:  ps.LastHandshake,
			RxBytes:        ps.RxBytes,
			TxBytes:        ps.TxBytes,
			RxPackets:      ps.RxPackets,
			TxPackets:      ps.TxPackets,
			RTT:            ps.RTT,
			PathChanges:    ps.PathChanges,
			RTTP50:         ps.Latency.P50,
			RTTP90:         ps.Latency.P90,
			RTTP99:         ps.Latency.P99,
			Loss:           ps.Latency.Loss,
			Probes:         ps.Latency.RecentSent,
			ProbesSent:     ps.Latency.ProbesSent,
			ProbesAnswered: ps.Latency.ProbesAnswered,
		})
	}
	return s
}

// Ping implements localapi.Backend: peer is a name or a mesh IP.
func (n *Node) Ping(ctx context.Context, peer string) (localapi.PingResult, error) {
	p, ok := n.findPeer(peer)
	if !ok {
		return localapi.PingResult{}, fmt.Errorf("ping %s: %w (not in this node's netmap)", peer, localapi.ErrUnknownPeer)
	}
	rtt, path, err := n.eng.Ping(ctx, p.IP)
	if err != nil {
		return localapi.PingResult{}, fmt.Errorf("ping %s (%s): %w", p.Name, p.IP, err)
	}
	return localapi.PingResult{Peer: p.Name, IP: p.IP, Path: path, RTT: rtt}, nil
}

func (n *Node) findPeer(s string) (device.PeerConfig, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ip, ipErr := netip.ParseAddr(s)
	name := api.NormalizeName(s)
	for _, p := range n.applied.Device.Peers {
		if ipErr == nil && p.IP == ip || p.Name == name {
			return p, true
		}
	}
	// A name in the mesh's DNS zone ("db.mesh", "db.mesh.") names the same
	// peer.
	zone := "mesh"
	if n.netmap != nil && n.netmap.DNS.Zone != "" {
		zone = strings.ToLower(strings.TrimSuffix(n.netmap.DNS.Zone, "."))
	}
	if host, ok := strings.CutSuffix(strings.TrimSuffix(name, "."), "."+zone); ok && ipErr != nil {
		for _, p := range n.applied.Device.Peers {
			if p.Name == host {
				return p, true
			}
		}
	}
	return device.PeerConfig{}, false
}

// debugHandlers, when set (by a build with -tags pprof), adds debugging
// endpoints to the metrics listener.
var debugHandlers func(*http.ServeMux)

func (n *Node) serveMetrics(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle(api.PathMetrics, n.m.handler(n))
	if debugHandlers != nil {
		debugHandlers(mux)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-errc
		return nil
	case err := <-errc:
		return fmt.Errorf("metrics: %w", err)
	}
}
