package transport

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/relay/client"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// RelaysConfig configures Relays.
type RelaysConfig struct {
	Key  nodekey.PrivateKey
	Bind *Bind // packets from relays go to Bind.Deliver
	// Pin returns the TLS pin for a relay ("" verifies against the system
	// roots). Nil: api.Relay.TLSPin.
	Pin func(api.Relay) string
	// Proxy is client.Config.Proxy.
	Proxy  string
	Logger *slog.Logger
}

// ErrNoRelay is returned by Send for a peer whose relay is unknown.
var ErrNoRelay = errors.New("transport: peer has no known relay")

// Relays keeps the node's relay connections: one to its home relay, where
// peers reach it, and one to each relay a peer it sends to lives on. It is
// the Sender for device.PathRelay.
type Relays struct {
	cfg RelaysConfig
	log *slog.Logger

	mu      sync.Mutex // guards the fields below
	ctx     context.Context
	relays  map[string]api.Relay // by ID
	home    string
	peers   map[nodekey.PublicKey]string // peer key -> relay ID
	clients map[string]*relayConn        // by relay ID
	wg      sync.WaitGroup
}

type relayConn struct {
	r       api.Relay
	c       *client.Client
	cancel  context.CancelFunc
	waiting pending // sent before the connection was up
}

// NewRelays returns Relays; they connect once Run runs.
func NewRelays(cfg RelaysConfig) *Relays {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Relays{
		cfg: cfg, log: cfg.Logger.With("component", "relays"),
		relays: map[string]api.Relay{}, peers: map[nodekey.PublicKey]string{}, clients: map[string]*relayConn{},
	}
}

// Set applies a netmap: the relays, this node's home relay, and each
// peer's home relay. Connections to relays no longer needed are closed.
func (r *Relays) Set(relays []api.Relay, home string, peers map[nodekey.PublicKey]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.relays = make(map[string]api.Relay, len(relays))
	for _, rl := range relays {
		r.relays[rl.ID] = rl
	}
	r.home = home
	r.peers = peers
	for id, rc := range r.clients {
		if nr, ok := r.relays[id]; !ok || nr != rc.r {
			rc.cancel()
			delete(r.clients, id)
		}
	}
	if home != "" {
		r.connLocked(home)
	}
}

// connLocked returns the connection to relay id, starting it when Run is
// running.
func (r *Relays) connLocked(id string) *relayConn {
	if rc := r.clients[id]; rc != nil {
		return rc
	}
	rl, ok := r.relays[id]
	if !ok || r.ctx == nil || r.ctx.Err() != nil {
		return nil
	}
	pin := rl.TLSPin
	if r.cfg.Pin != nil {
		pin = r.cfg.Pin(rl)
	}
	rc := &relayConn{r: rl}
	c, err := client.New(client.Config{
		URL: rl.URL, Key: r.cfg.Key, TLSPin: pin, RelayID: rl.ID, Proxy: r.cfg.Proxy, QueueLen: relayQueueLen,
		OnPacket: func(src nodekey.PublicKey, pkt []byte) { r.cfg.Bind.Deliver(device.PathRelay, src, pkt) },
		OnState: func(up bool) {
			if up {
				rc.waiting.flush(rc.c.Send)
			}
		},
		Logger: r.log.With("relay", rl.ID),
	})
	if err != nil {
		r.log.Warn("relay unusable", "relay", rl.ID, "err", err)
		return nil
	}
	ctx, cancel := context.WithCancel(r.ctx)
	rc.c, rc.cancel = c, cancel
	r.clients[id] = rc
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		_ = c.Run(ctx)
	}()
	return rc
}

// Run keeps the relay connections until ctx ends, then closes them and
// returns nil.
func (r *Relays) Run(ctx context.Context) error {
	r.mu.Lock()
	r.ctx = ctx
	if r.home != "" {
		r.connLocked(r.home)
	}
	r.mu.Unlock()
	<-ctx.Done()
	r.mu.Lock()
	for id, rc := range r.clients {
		rc.cancel()
		delete(r.clients, id)
	}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

func (r *Relays) peerConn(dst nodekey.PublicKey) *relayConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.peers[dst]
	if !ok || id == "" {
		id = r.home
	}
	return r.connLocked(id)
}

// Send implements Sender: the datagram goes to dst's home relay.
func (r *Relays) Send(dst nodekey.PublicKey, pkt []byte) error {
	rc := r.peerConn(dst)
	if rc == nil {
		return ErrNoRelay
	}
	err := rc.c.Send(dst, pkt)
	if errors.Is(err, client.ErrNotConnected) {
		rc.waiting.hold(dst, pkt)
	}
	return err
}

// Reconnect drops every relay connection and dials again (the host's
// addresses changed: the old connections may be bound to a vanished one).
func (r *Relays) Reconnect() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, rc := range r.clients {
		rc.cancel()
		delete(r.clients, id)
	}
	if r.home != "" {
		r.connLocked(r.home)
	}
}

// Ready implements Sender.
func (r *Relays) Ready(dst nodekey.PublicKey) bool {
	rc := r.peerConn(dst)
	return rc != nil && rc.c.Connected()
}

// PathName implements Sender: "relay <id>".
func (r *Relays) PathName(dst nodekey.PublicKey) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := r.peers[dst]
	if id == "" {
		id = r.home
	}
	return "relay " + id
}

// HomeConnected reports whether the home relay connection is up.
func (r *Relays) HomeConnected() bool {
	r.mu.Lock()
	rc := r.clients[r.home]
	r.mu.Unlock()
	return rc != nil && rc.c.Connected()
}

// relayQueueLen is the relay client's send queue: a bulk flow's burst
// (a TCP window) must fit, or the flow in the tunnel sees losses.
const relayQueueLen = 2048
