package device

import (
	"encoding/binary"
	"net/netip"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// Path selection. A peer can be reached over several paths: UDP addresses
// (the configured candidates, and addresses its authenticated packets came
// from), and the SSH and relay endpoints among PeerConfig.Endpoints.
// Paths rank by kind: UDP > SSH > relay.
//
//   - Any authenticated packet marks the path it came on alive. A packet on
//     a better kind of path than the current one moves the peer there at
//     once (the first authenticated answer wins); a data packet on another
//     path of the same kind moves it too (roaming); a packet on a worse
//     path moves it only when the current path is dead (below).
//   - While a session exists, the device probes: every path better than the
//     current one (with per-path exponential backoff up to probeBackoffMax),
//     the current path once traffic sent on it went unanswered for a while,
//     and the current path when it has been idle (nothing received on it)
//     for pathIdleProbe, so that a path that died while idle is found out
//     before traffic needs it. Worse paths are probed only while the current
//     one goes unanswered. A probe is an encrypted control message under the
//     current session (plaintext type probeRequest); the peer answers it on
//     the path it came from (probeReply). Probing both ways at once, as both
//     peers do from the moment they share a session, is the UDP hole punch.
//   - An idle path is not a failed one: only packets sent on the current
//     path (traffic or probes) that go unanswered demote it. It is dead when
//     they went unanswered for pathTimeout; the peer then moves to the best
//     path heard from within pathTimeout, or else to its best fallback
//     endpoint whose transport is ready. A packet on a worse path moves the
//     peer there only while the current path is that long unanswered. The
//     session is unaffected: connections in the tunnel survive.

// PathKind ranks transports; a greater kind is preferred.
type PathKind uint8

// Path kinds, worst first.
const (
	PathNone PathKind = iota
	PathRelay
	PathSSH
	PathUDP
)

func (k PathKind) String() string {
	switch k {
	case PathRelay:
		return "relay"
	case PathSSH:
		return "ssh"
	case PathUDP:
		return "udp"
	}
	return "none"
}

// PathEndpoint is implemented by the bind's endpoints of transports other
// than UDP. Endpoints that do not implement it are UDP endpoints.
type PathEndpoint interface {
	conn.Endpoint
	PathKind() PathKind
	// Path names the path for Status, e.g. "relay coord-1".
	Path() string
	// Ready reports whether the transport can carry packets now (an SSH
	// connection is up, the relay is connected).
	Ready() bool
	// Key is the peer's node key (zero for an endpoint that does not know
	// it yet, such as a packet-port connection before it authenticated).
	Key() nodekey.PublicKey
}

// PeerBinder is implemented by endpoints of connections that cannot know
// which peer is at the other end (a packet-port connection carries the
// packets of whoever reached it): the device calls BindPeer with the peer's
// key for every packet from the endpoint that authenticated as that peer's,
// so the transport can route the peer's packets to the connection. It must
// be cheap and must not block.
type PeerBinder interface {
	BindPeer(peer nodekey.PublicKey)
}

// Probe plaintexts: a type byte (never a valid IP version nibble) and the
// sender's clock for round-trip times.
const (
	probeRequest = 0x01
	probeReply   = 0x02
	probeSize    = 9
)

const (
	maxLearnedPaths = 8
	learnedPathTTL  = time.Minute
	probeBackoffMax = 16 * time.Second
)

func endpointKind(ep conn.Endpoint) PathKind {
	if ep == nil {
		return PathNone
	}
	if pe, ok := ep.(PathEndpoint); ok {
		return pe.PathKind()
	}
	return PathUDP
}

func endpointPath(ep conn.Endpoint) string {
	if ep == nil {
		return ""
	}
	if pe, ok := ep.(PathEndpoint); ok {
		return pe.Path()
	}
	return "udp " + endpointAddrPort(ep).String()
}

// typedEndpoint is the typed value of the bind's endpoint ep.
func typedEndpoint(ep conn.Endpoint) Endpoint {
	if pe, ok := ep.(PathEndpoint); ok {
		return Endpoint{Kind: pe.PathKind(), Key: pe.Key()}
	}
	return UDPEndpoint(endpointAddrPort(ep))
}

func endpointReady(ep conn.Endpoint) bool {
	if pe, ok := ep.(PathEndpoint); ok {
		return pe.Ready()
	}
	return true
}

// pathState is what the peer knows of one path. Guarded by peer.cfgMu.
type pathState struct {
	ep         conn.Endpoint
	kind       PathKind
	ap         netip.AddrPort // UDP paths
	configured bool           // from PeerConfig (else learned from a packet)
	lastRx     time.Time      // last authenticated data or probe reply on this path
	lastSeen   time.Time      // last authenticated packet of any kind (probe requests too)
	lastProbe  time.Time
	probes     int // probes since the last answer (backoff)
	// failed is set when the path was given up as dead; only a probe
	// reply (a round trip) makes it eligible again, not data still
	// trickling in one way.
	failed bool
	rtt    time.Duration
}

func (ps *pathState) matches(kind PathKind, ap netip.AddrPort) bool {
	return ps.kind == kind && (kind != PathUDP || ps.ap == ap)
}

func (ps *pathState) alive(now time.Time, timeout time.Duration) bool {
	return !ps.lastRx.IsZero() && now.Sub(ps.lastRx) < timeout
}

func (ps *pathState) probeDue(now time.Time, interval time.Duration) bool {
	wait := interval << min(ps.probes, 5)
	if wait > probeBackoffMax {
		wait = probeBackoffMax
	}
	return ps.lastProbe.IsZero() || now.Sub(ps.lastProbe) >= wait
}

// findPathLocked returns the path ep belongs to, or nil.
func (p *peer) findPathLocked(ep conn.Endpoint) *pathState {
	kind := endpointKind(ep)
	var ap netip.AddrPort
	if kind == PathUDP {
		ap = endpointAddrPort(ep)
	}
	for _, ps := range p.paths {
		if ps.matches(kind, ap) {
			return ps
		}
	}
	return nil
}

// pathLocked returns the path ep belongs to, learning it if it is new.
func (p *peer) pathLocked(ep conn.Endpoint, now time.Time) *pathState {
	if ps := p.findPathLocked(ep); ps != nil {
		return ps
	}
	ps := &pathState{ep: ep, kind: endpointKind(ep)}
	if ps.kind == PathUDP {
		ps.ap = endpointAddrPort(ep)
	}
	// Forget the stalest learned path when there are too many.
	learned, oldest := 0, -1
	for i, q := range p.paths {
		if q.configured || q == p.cur {
			continue
		}
		learned++
		if oldest < 0 || q.lastSeen.Before(p.paths[oldest].lastSeen) {
			oldest = i
		}
	}
	if learned >= maxLearnedPaths && oldest >= 0 {
		p.paths = append(p.paths[:oldest], p.paths[oldest+1:]...)
	}
	p.paths = append(p.paths, ps)
	return ps
}

// setPathsLocked replaces the configured paths with eps, keeping the state
// of those that remain; learned paths (and the current one) stay.
func (p *peer) setPathsLocked(eps []conn.Endpoint) {
	old := p.paths
	p.paths = make([]*pathState, 0, len(eps)+maxLearnedPaths)
	used := make(map[*pathState]bool, len(old)+len(eps))
	for _, ep := range eps {
		kind, ap := endpointKind(ep), endpointAddrPortIfUDP(ep)
		var ps *pathState
		for _, q := range old {
			if q.matches(kind, ap) {
				ps = q
				break
			}
		}
		if ps == nil {
			for _, q := range p.paths {
				if q.matches(kind, ap) {
					ps = q
					break
				}
			}
		}
		if ps == nil {
			ps = &pathState{kind: kind, ap: ap}
		}
		if used[ps] {
			continue // a duplicate candidate
		}
		used[ps] = true
		ps.ep = ep
		ps.configured = true
		p.paths = append(p.paths, ps)
	}
	for _, q := range old {
		if !used[q] && (!q.configured || q == p.cur) {
			q.configured = false
			p.paths = append(p.paths, q)
		}
	}
}

func endpointAddrPortIfUDP(ep conn.Endpoint) netip.AddrPort {
	if endpointKind(ep) == PathUDP {
		return endpointAddrPort(ep)
	}
	return netip.AddrPort{}
}

func (p *peer) setCurLocked(ps *pathState, why string) {
	prev := p.cur
	p.cur = ps
	p.endpoint = ps.ep
	if prev != ps && p.learned {
		if why != "first" {
			p.pathChanges.Add(1)
		}
		prevPath := "none"
		if prev != nil {
			prevPath = endpointPath(prev.ep)
		}
		p.d.log.Info("peer path changed", "peer", p.pub.ShortID(), "path", endpointPath(ps.ep), "from", prevPath, "reason", why)
	}
}

// rxKind tells authenticated what arrived: a probe request proves only the
// way in, so it does not move the peer to a better path; a probe reply
// proves the round trip; data (or a keepalive or handshake) also roams.
type rxKind uint8

const (
	rxData rxKind = iota
	rxProbeRequest
	rxProbeReply
)

// authenticated records an authenticated packet from ep and moves the peer
// to ep's path when the rules above say so.
func (p *peer) authenticated(ep conn.Endpoint, msg rxKind, now time.Time) {
	if ep == nil {
		return
	}
	timeout := p.d.timing.pathTimeout
	if pb, ok := ep.(PeerBinder); ok {
		pb.BindPeer(p.pub)
	}
	p.cfgMu.Lock()
	defer p.cfgMu.Unlock()
	ps := p.pathLocked(ep, now)
	ps.lastSeen = now
	if msg != rxProbeRequest {
		// A probe request proves only the way in: it does not keep a
		// path alive (a one-way path would look healthy forever).
		ps.lastRx = now
	}
	ps.probes = 0
	if msg == rxProbeReply {
		ps.failed = false
	}
	if ps.kind == PathUDP {
		ps.ep = ep // the newest object for this address
	}
	cur := p.cur
	switch {
	case cur == nil || !p.learned:
		p.learned = true
		p.setCurLocked(ps, "first")
	case cur == ps:
		p.endpoint = ps.ep
	case ps.failed:
		// Stay: the path failed and has not proven a round trip since.
	case ps.kind > cur.kind && msg != rxProbeRequest:
		p.setCurLocked(ps, "upgrade")
	case ps.kind == cur.kind && msg == rxData:
		p.setCurLocked(ps, "roam")
	case ps.kind == cur.kind && msg == rxProbeReply && p.unansweredFor(now) >= p.d.timing.pathProbeInterval/2:
		// A proven round trip beats a path of the same kind whose
		// traffic goes unanswered (the peer moved).
		cur.failed = true
		p.setCurLocked(ps, "current path unanswered")
	case p.unansweredFor(now) >= timeout:
		// Not merely silent (an idle path is silent): what was sent on
		// it went unanswered.
		cur.failed = true
		p.setCurLocked(ps, "current path unanswered")
	default:
		return
	}
	if p.cur == ps && msg != rxProbeRequest {
		// A probe request proves only the way in; our packets on this
		// path count as answered by data or by a probe reply.
		p.unanswered.Store(0)
	}
}

// noteSent records that packets went out on the current path.
func (p *peer) noteSent() {
	if p.unanswered.Load() == 0 {
		p.unanswered.Store(nanotime())
	}
}

func nanotime() int64 { return time.Now().UnixNano() }

// unansweredFor is how long packets sent on the current path have gone
// unanswered (0 if none are outstanding).
func (p *peer) unansweredFor(now time.Time) time.Duration {
	if u := p.unanswered.Load(); u != 0 {
		return now.Sub(time.Unix(0, u))
	}
	return 0
}

// maintainPaths runs one round of path selection and probing for p.
func (p *peer) maintainPaths(now time.Time) {
	d := p.d
	kp := p.keypairs.currentKeypair()
	if kp == nil || kp.dead.Load() || now.Sub(kp.created) >= d.timing.rejectAfterTime {
		return
	}
	interval, timeout, idle := d.timing.pathProbeInterval, d.timing.pathTimeout, d.timing.pathIdleProbe
	var probe [maxLearnedPaths + 8]conn.Endpoint
	targets := probe[:0]
	var curTarget conn.Endpoint // a probe on the current path (latency.go)
	p.cfgMu.Lock()
	// Forget learned paths long silent.
	kept := p.paths[:0]
	for _, ps := range p.paths {
		if ps.configured || ps == p.cur || now.Sub(ps.lastSeen) < learnedPathTTL {
			kept = append(kept, ps)
		}
	}
	clear(p.paths[len(kept):])
	p.paths = kept

	cur := p.cur
	unansweredFor := p.unansweredFor(now)
	if cur != nil && p.learned && unansweredFor >= timeout {
		if next := p.fallbackLocked(now); next != nil {
			cur.failed = true
			p.setCurLocked(next, "current path dead")
			p.unanswered.Store(0)
			cur = next
			unansweredFor = 0
		}
	}
	for _, ps := range p.paths {
		switch {
		case ps == cur:
			switch {
			case unansweredFor >= interval/2 && now.Sub(ps.lastProbe) >= interval:
				ps.lastProbe = now
				curTarget = ps.ep
			case unansweredFor == 0 && p.learned && now.Sub(ps.lastRx) >= idle && now.Sub(ps.lastProbe) >= idle:
				// Idle: a probe tells a quiet path from a dead one. It
				// counts as sent, so that an unanswered one demotes.
				ps.lastProbe = now
				curTarget = ps.ep
				p.unanswered.Store(now.UnixNano())
			case p.learned && now.Sub(ps.lastProbe) >= idle && now.Sub(kp.created) >= idle:
				// Busy and answered: a probe only for a round trip
				// sample (latency.go), once the session is settled
				// (a fresh one has just measured the path).
				ps.lastProbe = now
				curTarget = ps.ep
			}
		case cur == nil || ps.kind > cur.kind || unansweredFor >= interval/2:
			if ps.probeDue(now, interval) && len(targets) < cap(targets) {
				ps.lastProbe = now
				ps.probes++
				targets = append(targets, ps.ep)
			}
		}
	}
	p.cfgMu.Unlock()
	if curTarget != nil {
		stamp := currentStamp(now)
		p.lat.sentProbe(stamp, now)
		if !p.sendProbe(curTarget, probeRequest, stamp) {
			p.lat.unsent(stamp)
		}
	}
	for _, ep := range targets {
		p.sendProbe(ep, probeRequest, otherStamp(now))
	}
}

// fallbackLocked picks the path to move to when the current one is dead:
// the best path heard from recently, else the best ready non-UDP path.
func (p *peer) fallbackLocked(now time.Time) *pathState {
	var best *pathState
	for _, ps := range p.paths {
		if ps == p.cur || ps.failed || !ps.alive(now, p.d.timing.pathTimeout) {
			continue
		}
		if best == nil || ps.kind > best.kind || (ps.kind == best.kind && ps.lastRx.After(best.lastRx)) {
			best = ps
		}
	}
	if best != nil {
		return best
	}
	for _, ps := range p.paths {
		if ps == p.cur || ps.kind == PathUDP || !endpointReady(ps.ep) {
			continue
		}
		if best == nil || ps.kind > best.kind {
			best = ps
		}
	}
	return best
}

// resetProbesLocked makes every path due for a probe at the next round
// (new candidates from the control plane, a fresh session).
func (p *peer) resetProbesLocked() {
	for _, ps := range p.paths {
		ps.probes = 0
		ps.lastProbe = time.Time{}
	}
}

// probeNow resets the backoff and runs a probing round at once.
func (p *peer) probeNow() {
	p.cfgMu.Lock()
	p.resetProbesLocked()
	p.cfgMu.Unlock()
	p.maintainPaths(time.Now())
}

// sendProbe sends a probe message of type typ to ep under the current
// session, and reports whether the bind took it. It is not on the data
// path.
func (p *peer) sendProbe(ep conn.Endpoint, typ byte, stamp uint64) bool {
	d := p.d
	p.sendMu.Lock()
	kp := p.keypairs.currentKeypair()
	if p.stopped || kp == nil || kp.dead.Load() || kp.sendCounter.Load() >= d.timing.rejectAfterMessages || !kp.acquire() {
		p.sendMu.Unlock()
		return false
	}
	e := d.pools.getElem()
	pt := e.buf[wire.TransportHeaderSize : wire.TransportHeaderSize+probeSize]
	pt[0] = typ
	binary.BigEndian.PutUint64(pt[1:], stamp)
	e.packet = pt
	e.keypair = kp
	e.ref = true // encryptBatch releases it
	e.counter = kp.sendCounter.Add(1) - 1
	p.sendMu.Unlock()
	b := d.pools.getBatch(p)
	b.elems = append(b.elems, e)
	p.probeMu.Lock()
	d.encryptBatch(b, &p.probeNonce)
	p.probeMu.Unlock()
	b.bufs = append(b.bufs, e.packet)
	err := d.bind.Send(b.bufs, ep)
	if err != nil {
		d.counters.drop(DropSendFailed)
	} else {
		n := uint64(len(e.packet))
		p.txPackets.Add(1)
		p.txBytes.Add(n)
		d.counters.txPackets.Add(1)
		d.counters.txBytes.Add(n)
	}
	d.pools.putBatch(b)
	return err == nil
}

// receiveProbe handles a decrypted probe from ep; it reports whether pkt
// was one.
func (p *peer) receiveProbe(pkt []byte, ep conn.Endpoint, now time.Time) bool {
	if len(pkt) < probeSize || (pkt[0] != probeRequest && pkt[0] != probeReply) {
		return false
	}
	stamp := binary.BigEndian.Uint64(pkt[1:probeSize])
	if pkt[0] == probeRequest {
		p.authenticated(ep, rxProbeRequest, now)
		p.sendProbe(ep, probeReply, stamp)
		return true
	}
	p.authenticated(ep, rxProbeReply, now)
	if rtt := now.Sub(time.Unix(0, int64(stamp))); rtt >= 0 && rtt < time.Minute {
		p.lat.reply(stamp, rtt)
		p.cfgMu.Lock()
		if ps := p.findPathLocked(ep); ps != nil {
			ps.rtt = rtt
		}
		p.cfgMu.Unlock()
	}
	return true
}

// routinePaths runs path selection for every peer until the device closes.
func (d *Device) routinePaths() {
	defer d.wgReaders.Done()
	t := time.NewTicker(d.timing.pathTick)
	defer t.Stop()
	var peers []*peer
	for {
		select {
		case <-d.closing:
			return
		case now := <-t.C:
			peers = peers[:0]
			d.peersMu.RLock()
			for _, p := range d.byKey {
				peers = append(peers, p)
			}
			d.peersMu.RUnlock()
			for _, p := range peers {
				if !p.isStopped() {
					p.maintainPaths(now)
				}
			}
			clear(peers)
		}
	}
}

// PathStatus is one path to a peer.
type PathStatus struct {
	Path     string   // "udp 192.0.2.1:41641", "ssh 192.0.2.1:22", "relay coord-1"
	Endpoint Endpoint // the path's endpoint as a typed value
	Kind     PathKind
	Current  bool
	Alive    bool // an authenticated packet came on it within the path timeout
	LastRx   time.Time
	RTT      time.Duration // latest probe round trip; 0 if none
}

func (p *peer) pathStatusLocked(now time.Time) []PathStatus {
	out := make([]PathStatus, 0, len(p.paths))
	for _, ps := range p.paths {
		out = append(out, PathStatus{
			Path: endpointPath(ps.ep), Endpoint: typedEndpoint(ps.ep), Kind: ps.kind, Current: ps == p.cur,
			Alive: ps.alive(now, p.d.timing.pathTimeout), LastRx: ps.lastRx, RTT: ps.rtt,
		})
	}
	return out
}
