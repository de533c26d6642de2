package device

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/cookie"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/handshake"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/ratelimit"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// ErrClosed is returned by methods of a closed Device.
var ErrClosed = errors.New("device closed")

// identity is the local half of every handshake; replaced atomically when
// the key, PSK or mesh changes.
type identity struct {
	pub     nodekey.PublicKey
	meshID  string
	params  handshake.Params
	checker *cookie.Checker
}

// Device moves IP packets between a TUN device and its peers over UDP.
type Device struct {
	log    *slog.Logger
	tun    tun.Device
	bind   Bind
	port   uint16
	timing timing

	identity       atomic.Pointer[identity]
	selfAddr       atomic.Pointer[netip.Addr]
	mtu            atomic.Int32
	keepalive      atomic.Int64 // persistent keepalive interval, ns; <= 0 off
	noSendBatching atomic.Bool
	// fifo turns the queue discipline (queue.go) off: plain FIFO queues,
	// as a baseline for the tests that measure it.
	fifo   atomic.Bool
	filter atomic.Pointer[filterBox]

	reconfigMu sync.Mutex // serialises Reconfig and Close

	peersMu sync.RWMutex // guards the maps below
	byKey   map[nodekey.PublicKey]*peer
	byIP    map[netip.Addr]*peer
	byX     map[[32]byte]*peer

	indices indexTable
	limiter ratelimit.Limiter
	pools   pools
	ping    pinger

	encQueue chan *batch
	decQueue chan *batch
	hsQueue  chan *elem

	counters counters

	closing      chan struct{}
	closed       atomic.Bool
	wgReaders    sync.WaitGroup
	wgHandshakes sync.WaitGroup
	wgWorkers    sync.WaitGroup
}

// New creates a Device on tunDev and bind, opens the bind on
// cfg.ListenPort and starts moving packets. The Device owns tunDev and bind
// from then on: Close closes both. logger may be nil.
func New(tunDev tun.Device, bind Bind, cfg Config, logger *slog.Logger) (*Device, error) {
	return newDevice(tunDev, bind, cfg, logger, defaultTiming())
}

func newDevice(tunDev tun.Device, bind Bind, cfg Config, logger *slog.Logger, tm timing) (*Device, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("create device: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Device{
		log:      logger.With("component", "device"),
		tun:      tunDev,
		bind:     bind,
		timing:   tm,
		byKey:    make(map[nodekey.PublicKey]*peer),
		byIP:     make(map[netip.Addr]*peer),
		byX:      make(map[[32]byte]*peer),
		encQueue: make(chan *batch, 1024),
		decQueue: make(chan *batch, 1024),
		hsQueue:  make(chan *elem, handshakeQueueSize),
		closing:  make(chan struct{}),
	}
	d.indices.init()
	d.pools.init(max(tunDev.BatchSize(), bind.BatchSize()))
	d.ping.init()
	if err := d.setIdentity(&cfg); err != nil {
		return nil, fmt.Errorf("create device: %w", err)
	}
	d.applyScalars(&cfg)

	fns, port, err := bind.Open(cfg.ListenPort)
	if err != nil {
		return nil, fmt.Errorf("create device: open udp port %d: %w", cfg.ListenPort, err)
	}
	d.port = port

	workers := runtime.GOMAXPROCS(0) // as many as may run at once
	d.wgWorkers.Add(2 * workers)
	for range workers {
		go d.routineEncryption()
		go d.routineDecryption()
	}
	d.wgHandshakes.Add(workers)
	for range workers {
		go d.routineHandshakes()
	}
	cands, err := d.endpoints(cfg.Peers)
	if err == nil {
		err = d.reconfigPeers(cfg.Peers, cands)
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("create device: %w", err)
	}
	d.wgReaders.Add(len(fns) + 4)
	go d.routinePaths()
	go d.routineTrimPools()
	for _, fn := range fns {
		go d.routineReceive(fn)
	}
	go d.routineReadFromTUN()
	go d.routineTUNEvents()
	d.log.Info("device up", "port", port, "peers", len(cfg.Peers), "self", cfg.Self)
	return d, nil
}

func (d *Device) setIdentity(cfg *Config) error {
	static, err := handshake.NewStaticKey(cfg.PrivateKey)
	if err != nil {
		return err
	}
	id := &identity{
		pub:    cfg.PrivateKey.Public(),
		meshID: cfg.MeshID,
		params: handshake.Params{Local: static, PSK: cfg.PSK, Prologue: wire.Prologue(cfg.MeshID)},
	}
	if !cfg.PrevPSKUntil.IsZero() {
		id.params.PrevPSK, id.params.PrevUntil = cfg.PrevPSK, cfg.PrevPSKUntil
	}
	id.checker = cookie.NewChecker(static.Public)
	d.identity.Store(id)
	return nil
}

func (d *Device) applyScalars(cfg *Config) {
	self := cfg.Self.Unmap()
	d.selfAddr.Store(&self)
	d.mtu.Store(int32(cfg.mtu()))
	ka := cfg.PersistentKeepalive
	if ka == 0 {
		ka = wire.PersistentKeepaliveDefault
	}
	d.keepalive.Store(int64(ka))
	d.noSendBatching.Store(cfg.DisableUDPSendBatching)
	if cfg.Filter != nil {
		d.filter.Store(&filterBox{cfg.Filter})
	} else {
		d.filter.Store(nil)
	}
}

func (d *Device) self() netip.Addr { return *d.selfAddr.Load() }

func (d *Device) keepaliveInterval() time.Duration { return time.Duration(d.keepalive.Load()) }

func (d *Device) isClosed() bool { return d.closed.Load() }

// ListenPort returns the UDP port the device listens on.
func (d *Device) ListenPort() uint16 { return d.port }

func (d *Device) peerByIP(ip netip.Addr) *peer {
	d.peersMu.RLock()
	p := d.byIP[ip]
	d.peersMu.RUnlock()
	return p
}

func (d *Device) peerByStatic(x [32]byte) *peer {
	d.peersMu.RLock()
	p := d.byX[x]
	d.peersMu.RUnlock()
	return p
}

// Reconfig applies cfg: peers that are new are added, peers that are gone
// are removed (their sessions destroyed at once, their packets refused from
// then on), the rest are updated in place and keep their sessions. A change
// of private key or mesh ID ends every session; a change of PSK does not
// (see Config.PrevPSK). An invalid cfg changes nothing.
func (d *Device) Reconfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("reconfig: %w", err)
	}
	if cfg.ListenPort != 0 && cfg.ListenPort != d.port {
		return fmt.Errorf("reconfig: %w: listenPort: cannot change from %d to %d on a running device",
			ErrInvalidConfig, d.port, cfg.ListenPort)
	}
	cands, err := d.endpoints(cfg.Peers)
	if err != nil {
		return fmt.Errorf("reconfig: %w", err)
	}
	d.reconfigMu.Lock()
	defer d.reconfigMu.Unlock()
	if d.isClosed() {
		return fmt.Errorf("reconfig: %w", ErrClosed)
	}
	old := d.identity.Load()
	// A new PSK (a rotation) keeps the sessions: they were authenticated,
	// and the peers that must lose them are the ones removed from cfg.
	rekeyAll := old.pub != cfg.PrivateKey.Public() || old.meshID != cfg.MeshID
	pskChanged := old.params.PSK != cfg.PSK || old.params.PrevPSK != cfg.PrevPSK || !old.params.PrevUntil.Equal(cfg.PrevPSKUntil)
	if rekeyAll || pskChanged {
		if err := d.setIdentity(&cfg); err != nil {
			return fmt.Errorf("reconfig: %w", err)
		}
	}
	d.applyScalars(&cfg)
	if err := d.reconfigPeers(cfg.Peers, cands); err != nil {
		return fmt.Errorf("reconfig: %w", err)
	}
	if rekeyAll {
		d.peersMu.RLock()
		for _, p := range d.byKey {
			p.zeroKeys()
		}
		d.peersMu.RUnlock()
	}
	return nil
}

// endpoints makes the bind's endpoints of every peer's Endpoints, in
// order; an endpoint the bind cannot make is an invalid config.
func (d *Device) endpoints(pcs []PeerConfig) ([][]conn.Endpoint, error) {
	out := make([][]conn.Endpoint, len(pcs))
	for i, pc := range pcs {
		out[i] = make([]conn.Endpoint, 0, len(pc.Endpoints))
		for k, e := range pc.Endpoints {
			ep, err := d.endpoint(e)
			if err != nil {
				return nil, fmt.Errorf("%w: peers[%d].endpoints[%d]: %v", ErrInvalidConfig, i, k, err)
			}
			out[i] = append(out[i], ep)
		}
	}
	return out, nil
}

// reconfigPeers makes the peer set match pcs, whose endpoints are cands.
// Validation has passed.
func (d *Device) reconfigPeers(pcs []PeerConfig, cands [][]conn.Endpoint) error {
	d.peersMu.RLock()
	existing := make(map[nodekey.PublicKey]*peer, len(d.byKey))
	for k, p := range d.byKey {
		existing[k] = p
	}
	d.peersMu.RUnlock()

	byKey := make(map[nodekey.PublicKey]*peer, len(pcs))
	var added []*peer
	for i, pc := range pcs {
		if p := existing[pc.PublicKey]; p != nil {
			p.update(pc, cands[i])
			byKey[pc.PublicKey] = p
			continue
		}
		p, err := newPeer(d, pc, cands[i])
		if err != nil {
			return err
		}
		byKey[pc.PublicKey] = p
		added = append(added, p)
	}
	byIP := make(map[netip.Addr]*peer, len(byKey))
	byX := make(map[[32]byte]*peer, len(byKey))
	for _, p := range byKey {
		byIP[p.meshIP()] = p
		byX[p.static] = p
	}
	var removed []*peer
	for k, p := range existing {
		if byKey[k] == nil {
			removed = append(removed, p)
		}
	}
	for _, p := range added {
		p.start()
	}
	d.peersMu.Lock()
	d.byKey, d.byIP, d.byX = byKey, byIP, byX
	d.peersMu.Unlock()
	for _, p := range removed {
		p.stop()
		d.log.Info("peer removed", "peer", p.pub.ShortID())
	}
	for _, p := range added {
		d.log.Info("peer added", "peer", p.pub.ShortID(), "ip", p.meshIP())
	}
	return nil
}

// routineTUNEvents drains the TUN's event channel until it closes.
func (d *Device) routineTUNEvents() {
	defer d.wgReaders.Done()
	for ev := range d.tun.Events() {
		if ev&tun.EventMTUUpdate != 0 {
			if mtu, err := d.tun.MTU(); err == nil {
				d.log.Debug("tun mtu changed", "mtu", mtu)
			}
		}
	}
}

// Close stops the device, in this order: refuse new work; close the bind
// and the TUN so their readers return; stop the handshake workers; stop
// every peer (its sessions destroyed); close the crypto queues and wait for
// the workers to drain them. Every goroutine the device started has
// returned when Close returns.
func (d *Device) Close() error {
	d.reconfigMu.Lock()
	defer d.reconfigMu.Unlock()
	if d.closed.Swap(true) {
		return nil
	}
	close(d.closing)
	errBind := d.bind.Close()
	errTUN := d.tun.Close()
	d.wgReaders.Wait()
	d.wgHandshakes.Wait()
	d.peersMu.Lock()
	peers := d.byKey
	d.byKey, d.byIP, d.byX = map[nodekey.PublicKey]*peer{}, map[netip.Addr]*peer{}, map[[32]byte]*peer{}
	d.peersMu.Unlock()
	for _, p := range peers {
		p.stop()
	}
	close(d.encQueue)
	close(d.decQueue)
	d.wgWorkers.Wait()
	for {
		select {
		case e := <-d.hsQueue:
			d.pools.putElem(e)
			continue
		default:
		}
		break
	}
	d.log.Info("device closed")
	if err := errors.Join(errBind, errTUN); err != nil {
		return fmt.Errorf("close device: %w", err)
	}
	return nil
}
