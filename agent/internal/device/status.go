package device

import (
	"net/netip"
	"sort"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// PeerStatus is a snapshot of one peer.
type PeerStatus struct {
	Name      string
	PublicKey nodekey.PublicKey
	IP        netip.Addr
	// Endpoint is the peer's current UDP address (zero if none is known or
	// the current path is not UDP).
	Endpoint netip.AddrPort
	// Path names the path that carries the peer's packets: "udp
	// <endpoint>" for a direct path, the transport's name for others
	// ("ssh 192.0.2.1:22", "relay coord-1"), "" if none.
	Path string
	// Paths lists every path known to the peer (paths.go).
	Paths []PathStatus
	// PathChanges counts the moves of the peer from one path to another.
	PathChanges uint64
	// LastHandshake is when the latest session was established (zero: never).
	LastHandshake time.Time
	// HasSession reports whether a session usable for sending exists.
	HasSession           bool
	RxBytes, TxBytes     uint64 // wire bytes of authenticated transport packets
	RxPackets, TxPackets uint64
	// RTT is the latest round-trip sample (handshake or Ping); 0 if none.
	RTT time.Duration
	// Latency is the current path's round trip times and loss, from the
	// probes (latency.go).
	Latency PeerLatency
	// TxQueue and RxQueue are the send and receive queues' sojourn times
	// and drops (queue.go).
	TxQueue, RxQueue QueueStats
}

// Status is a snapshot of the device.
type Status struct {
	ListenPort uint16
	Self       netip.Addr
	Peers      []PeerStatus // sorted by IP
	Counters   Counters
}

func (p *peer) path() string {
	return endpointPath(p.currentEndpoint())
}

func (p *peer) status(now time.Time, rejectAfter time.Duration) PeerStatus {
	p.cfgMu.RLock()
	s := PeerStatus{Name: p.name, PublicKey: p.pub, IP: p.ip}
	if p.endpoint != nil {
		if endpointKind(p.endpoint) == PathUDP {
			s.Endpoint = endpointAddrPort(p.endpoint)
		}
		s.Path = endpointPath(p.endpoint)
	}
	s.Paths = p.pathStatusLocked(now)
	p.cfgMu.RUnlock()
	if ns := p.lastHandshake.Load(); ns != 0 {
		s.LastHandshake = time.Unix(0, ns)
	}
	if kp := p.keypairs.currentKeypair(); kp != nil && !kp.dead.Load() && now.Sub(kp.created) < rejectAfter {
		s.HasSession = true
	}
	s.RxBytes, s.TxBytes = p.rxBytes.Load(), p.txBytes.Load()
	s.RxPackets, s.TxPackets = p.rxPackets.Load(), p.txPackets.Load()
	s.RTT = time.Duration(p.rtt.Load())
	s.PathChanges = p.pathChanges.Load()
	s.Latency = p.lat.snapshot(now, p.d.timing.pathTimeout)
	s.TxQueue, s.RxQueue = p.tx.stats(), p.rx.stats()
	return s
}

// Status returns a snapshot of the device and every peer.
func (d *Device) Status() Status {
	s := Status{ListenPort: d.port, Self: d.self(), Counters: d.counters.snapshot()}
	now := time.Now()
	d.peersMu.RLock()
	for _, p := range d.byKey {
		s.Peers = append(s.Peers, p.status(now, d.timing.rejectAfterTime))
	}
	d.peersMu.RUnlock()
	sort.Slice(s.Peers, func(i, j int) bool { return s.Peers[i].IP.Less(s.Peers[j].IP) })
	return s
}

// Counters returns a snapshot of the device-wide counters.
func (d *Device) Counters() Counters { return d.counters.snapshot() }
