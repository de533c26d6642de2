package device

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/cookie"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/handshake"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

const (
	stagedQueueSize   = 128  // batches waiting for a session
	outboundQueueSize = 1024 // batches per peer between staging and the sender
	inboundQueueSize  = 1024 // batches per peer between the reader and the receiver
)

// peer is one remote node. Its three goroutines (sequential sender,
// sequential receiver, timers) are started by start and stopped by stop.
type peer struct {
	d         *Device
	pub       nodekey.PublicKey
	static    [32]byte // X25519 public key
	cookieGen *cookie.Generator

	cfgMu      sync.RWMutex // guards the fields below
	name       string
	ip         netip.Addr
	candidates []conn.Endpoint // UDP candidates, then fallbacks
	endpoint   conn.Endpoint   // the current path's endpoint (paths.go)
	learned    bool            // endpoint was learned from an authenticated packet
	paths      []*pathState
	cur        *pathState

	// pathChanges counts moves from one path to another (not the first
	// path learned).
	pathChanges atomic.Uint64

	// unanswered is when packets first went out on the current path
	// since the last authenticated packet on it (unix ns; 0: none).
	unanswered atomic.Int64
	probeMu    sync.Mutex // guards probeNonce
	probeNonce [12]byte

	keypairs keypairs

	hs struct {
		mu            sync.Mutex // guards the fields below
		initiator     *handshake.Initiator
		localIndex    uint32                    // index of the pending initiation, 0 if none
		initMsg       [wire.InitiationSize]byte // the pending initiation as sent (with MACs)
		initResent    bool                      // initMsg was resent to answer a crossing initiation
		sentAt        time.Time
		attempts      int       // retransmissions of the current handshake
		firstAttempt  time.Time // when the current round of attempts began
		lastTimestamp handshake.Timestamp
		lastConsumed  time.Time
	}

	sendMu      sync.Mutex // guards stopped and inlineNonce; serialises counter assignment so batches leave in order
	stopped     bool
	inlineNonce [12]byte

	// Small batches of an idle peer skip the queues (see inlineMax): the
	// goroutine that read them encrypts and sends, or decrypts and
	// delivers, at once. txInflight/rxInflight count queued batches; rxMu
	// serialises delivery (and the replay windows) between the sequential
	// receiver and inline delivery.
	txInflight atomic.Int32
	rxInflight atomic.Int32
	rxMu       sync.Mutex
	rxParsed   packet.Parsed // guarded by rxMu: receiveBatch's parse of each packet

	// tx and rx are the queue discipline of the send and receive queues
	// (queue.go).
	tx, rx pqueue

	staged   chan *batch
	outbound chan *batch
	inbound  chan *batch
	stopCh   chan struct{}
	wg       sync.WaitGroup

	timers peerTimers

	rxBytes, txBytes     atomic.Uint64
	rxPackets, txPackets atomic.Uint64
	lastHandshake        atomic.Int64 // unix nanoseconds
	rtt                  atomic.Int64 // nanoseconds, last sample
	lat                  latency      // probes on the current path (latency.go)
}

func newPeer(d *Device, pc PeerConfig, cands []conn.Endpoint) (*peer, error) {
	static, err := pc.PublicKey.X25519()
	if err != nil {
		return nil, err
	}
	p := &peer{
		d:         d,
		pub:       pc.PublicKey,
		static:    static,
		cookieGen: cookie.NewGenerator(static),
		staged:    make(chan *batch, stagedQueueSize),
		outbound:  make(chan *batch, outboundQueueSize),
		inbound:   make(chan *batch, inboundQueueSize),
		stopCh:    make(chan struct{}),
	}
	p.update(pc, cands)
	p.timers.init()
	return p, nil
}

// update applies a changed PeerConfig (same key) whose endpoints the bind
// made as cands.
func (p *peer) update(pc PeerConfig, cands []conn.Endpoint) {
	p.cfgMu.Lock()
	p.name = pc.Name
	p.ip = pc.IP.Unmap()
	p.candidates = cands
	p.setPathsLocked(cands)
	if !p.learned {
		p.cur, p.endpoint = nil, nil
		if len(cands) > 0 {
			p.cur = p.findPathLocked(cands[0])
			p.endpoint = cands[0]
		}
	}
	p.cfgMu.Unlock()
}

func (p *peer) start() {
	p.wg.Add(3)
	go p.routineSequentialSender()
	go p.routineSequentialReceiver()
	go p.routineTimers()
}

// stop refuses further packets, stops the goroutines and destroys every
// session. Crypto workers must still be running (they unlock queued batches).
func (p *peer) stop() {
	p.sendMu.Lock()
	p.stopped = true
	p.sendMu.Unlock()
	close(p.stopCh)
	p.wg.Wait()
	p.rxMu.Lock()
	//lint:ignore SA2001 taking and releasing the lock waits out an inline delivery in progress
	p.rxMu.Unlock()
	p.timers.stopAll()
	p.zeroKeys()
	p.drainStaged()
}

func (p *peer) isStopped() bool {
	select {
	case <-p.stopCh:
		return true
	default:
		return false
	}
}

func (p *peer) meshIP() netip.Addr {
	p.cfgMu.RLock()
	defer p.cfgMu.RUnlock()
	return p.ip
}

func (p *peer) currentEndpoint() conn.Endpoint {
	p.cfgMu.RLock()
	ep := p.endpoint
	p.cfgMu.RUnlock()
	return ep
}

// setEndpoint records an authenticated packet (data, keepalive or
// handshake) from ep; see authenticated for when the peer moves there.
func (p *peer) setEndpoint(ep conn.Endpoint) {
	p.authenticated(ep, rxData, time.Now())
}

// retire makes kp unusable, frees its index and drops the peer's
// reference to its keys: they are wiped as soon as no batch uses them.
func (p *peer) retire(kp *keypair) {
	if kp == nil || kp.dead.Swap(true) {
		return
	}
	p.d.indices.remove(kp.localIndex)
	kp.release()
}

// installInitiatorKeypair makes a freshly completed initiator session
// current (WireGuard's BeginSymmetricSession).
func (p *peer) installInitiatorKeypair(kp *keypair) {
	k := &p.keypairs
	k.mu.Lock()
	if next := k.next.Swap(nil); next != nil {
		p.retire(k.previous)
		k.previous = next
		p.retire(k.current)
	} else {
		p.retire(k.previous)
		k.previous = k.current
	}
	k.current = kp
	k.mu.Unlock()
}

// installResponderKeypair stores a responder session as next: it becomes
// current when the initiator's first packet under it arrives.
func (p *peer) installResponderKeypair(kp *keypair) {
	k := &p.keypairs
	k.mu.Lock()
	if old := k.next.Swap(kp); old != nil {
		p.retire(old)
	}
	p.retire(k.previous)
	k.previous = nil
	k.mu.Unlock()
}

// receivedWithKeypair promotes next to current on its first authenticated
// packet and reports whether it did.
func (p *peer) receivedWithKeypair(kp *keypair) bool {
	k := &p.keypairs
	if k.next.Load() != kp {
		return false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.next.Load() != kp {
		return false
	}
	p.retire(k.previous)
	k.previous = k.current
	k.current = kp
	k.next.Store(nil)
	return true
}

// zeroKeys destroys every session and any pending handshake.
// Lock order: hs.mu, then keypairs.mu; installing a session holds hs.mu too,
// so a session cannot slip in behind zeroKeys of a stopping peer.
func (p *peer) zeroKeys() {
	p.hs.mu.Lock()
	defer p.hs.mu.Unlock()
	k := &p.keypairs
	k.mu.Lock()
	p.retire(k.previous)
	p.retire(k.current)
	p.retire(k.next.Swap(nil))
	k.previous, k.current = nil, nil
	k.mu.Unlock()
	p.clearHandshakeLocked()
}

func (p *peer) clearHandshakeLocked() {
	if p.hs.localIndex != 0 {
		if e := p.d.indices.lookup(p.hs.localIndex); e.peer == p && e.keypair == nil {
			p.d.indices.remove(p.hs.localIndex)
		}
	}
	if p.hs.initiator != nil {
		p.hs.initiator.Zero()
	}
	p.hs.initiator = nil
	p.hs.localIndex = 0
}

func (p *peer) drainStaged() {
	for {
		select {
		case b := <-p.staged:
			p.d.pools.putBatch(b)
		default:
			return
		}
	}
}
