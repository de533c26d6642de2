package device

import (
	"bytes"
	"errors"
	"net/netip"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/cookie"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/handshake"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/ratelimit"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
)

const handshakeQueueSize = 1024

// underLoad reports whether the handshake queue is busy enough that
// initiators must prove their address with a cookie (mac2).
func (d *Device) underLoad() bool {
	return d.timing.alwaysUnderLoad || len(d.hsQueue) >= handshakeQueueSize/8
}

// routineHandshakes processes handshake messages until the device closes.
func (d *Device) routineHandshakes() {
	defer d.wgHandshakes.Done()
	for {
		select {
		case <-d.closing:
			return
		case e := <-d.hsQueue:
			d.handleHandshakeMessage(e.packet, e.endpoint, time.Now())
			d.pools.putElem(e)
		}
	}
}

// handshakeSource names where a handshake message came from, for the cookie
// (mac2) and the rate limiter: a UDP endpoint's address and port (the
// limiter takes the address), or, for the endpoints of other transports,
// which have no source address, the authenticated identity they stand for
// (its DstToBytes: the relay-stamped or SSH-authenticated node key, or one
// packet-port connection) with the transport's kind. So members behind the
// relay or SSH each get their own cookie and bucket, as UDP sources do.
func handshakeSource(ep conn.Endpoint) ([]byte, ratelimit.Key) {
	if pe, ok := ep.(PathEndpoint); ok && pe.PathKind() != PathUDP {
		id := append([]byte{0xff, byte(pe.PathKind())}, ep.DstToBytes()...)
		return id, ratelimit.IdentityKey(id)
	}
	ap := endpointAddrPort(ep)
	return cookie.AddrBytes(ap), ratelimit.AddrKey(ap.Addr())
}

func endpointAddrPort(ep conn.Endpoint) netip.AddrPort {
	if a, ok := ep.(interface {
		Addr() netip.Addr
		Port() uint16
	}); ok {
		return netip.AddrPortFrom(a.Addr(), a.Port())
	}
	ap, _ := netip.ParseAddrPort(ep.DstToString())
	return ap
}

func (d *Device) handleHandshakeMessage(msg []byte, ep conn.Endpoint, now time.Time) {
	typ, err := wire.Type(msg)
	if err != nil {
		d.counters.drop(DropJunk)
		return
	}
	id := d.identity.Load()
	if typ == wire.TypeCookieReply {
		r, err := wire.ParseCookieReply(msg)
		if err != nil {
			d.counters.drop(DropJunk)
			return
		}
		e := d.indices.lookup(r.Receiver)
		if e.peer == nil {
			d.counters.drop(DropUnknownIndex)
			return
		}
		if err := e.peer.cookieGen.ConsumeReply(&r, now); err != nil {
			d.counters.drop(DropCookieReply)
		}
		return
	}
	if (typ == wire.TypeInitiation && len(msg) != wire.InitiationSize) ||
		(typ == wire.TypeResponse && len(msg) != wire.ResponseSize) || typ == wire.TypeTransport {
		d.counters.drop(DropJunk)
		return
	}
	if !id.checker.CheckMAC1(msg) {
		d.counters.drop(DropBadMAC1)
		return
	}
	if d.underLoad() {
		src, limKey := handshakeSource(ep)
		if !id.checker.CheckMAC2(msg, src, now) {
			var sender uint32
			if typ == wire.TypeInitiation {
				m, _ := wire.ParseInitiation(msg)
				sender = m.Sender
			} else {
				m, _ := wire.ParseResponse(msg)
				sender = m.Sender
			}
			reply, err := id.checker.CreateReply(msg, sender, src, now)
			if err == nil {
				var buf [wire.CookieReplySize]byte
				if d.sendRaw(reply.MarshalTo(buf[:]), ep) == nil {
					d.counters.cookieRepliesSent.Add(1)
				}
			}
			return
		}
		if !d.limiter.Allow(limKey, now) {
			d.counters.drop(DropRateLimited)
			return
		}
	}
	switch typ {
	case wire.TypeInitiation:
		d.handleInitiation(id, msg, ep, now)
	case wire.TypeResponse:
		d.handleResponse(msg, ep, now)
	}
}

func (d *Device) handleInitiation(id *identity, msg []byte, ep conn.Endpoint, now time.Time) {
	m, err := wire.ParseInitiation(msg)
	if err != nil {
		d.counters.drop(DropJunk)
		return
	}
	// The initiator's key is looked up as soon as it is decrypted: a key
	// that is not a peer costs one Diffie-Hellman, not two.
	var p *peer
	r, err := handshake.Consume(&id.params, &m, now, func(static [32]byte) bool {
		p = d.peerByStatic(static)
		return p != nil
	})
	if errors.Is(err, handshake.ErrUnknownKey) {
		d.counters.drop(DropUnknownKey)
		return
	}
	if err != nil {
		d.counters.drop(DropHandshakeFailed)
		return
	}
	if r.PreviousPSK {
		d.counters.hsPreviousPSK.Add(1)
	}
	p.hs.mu.Lock()
	if !r.Timestamp.After(p.hs.lastTimestamp) || now.Sub(p.hs.lastConsumed) < d.timing.initiationRate {
		p.hs.mu.Unlock()
		r.Zero()
		d.counters.drop(DropStaleInitiation)
		return
	}
	// Both sides initiated at once: the side with the greater static key
	// keeps its own initiation and ignores the other's (also when its own
	// completed just before the other's arrived: they crossed on the wire);
	// the other side answers and abandons its own. One session results.
	pending := p.hs.initiator != nil && now.Sub(p.hs.sentAt) < d.timing.rekeyTimeout
	ownRecent := pending
	if cur := p.keypairs.currentKeypair(); cur != nil && cur.initiator && now.Sub(cur.created) < d.timing.rekeyTimeout {
		ownRecent = true
	}
	if ownRecent && bytes.Compare(id.params.Local.Public[:], p.static[:]) > 0 {
		// The ignored initiation was authentic and fresh: record it as
		// consumed, so a captured copy replayed later (from anywhere) is
		// refused as stale rather than answered.
		p.hs.lastTimestamp = r.Timestamp
		p.hs.lastConsumed = now
		r.Zero()
		// Ours may have been lost (the peer did not know us yet, or it went
		// to a stale address): the peer is evidently reachable at ep now,
		// so send it the same initiation there once. If the peer already
		// had it, the copy is refused as stale; if not, the peer yields to
		// it. Either way one session, without waiting RekeyTimeout for a
		// retransmission.
		var resend [wire.InitiationSize]byte
		again := pending && !p.hs.initResent
		if again {
			p.hs.initResent = true
			resend = p.hs.initMsg
		}
		p.hs.mu.Unlock()
		d.log.Debug("simultaneous initiation: keeping ours", "peer", p.pub.ShortID(), "resent", again)
		if again && d.sendRaw(resend[:], ep) == nil {
			p.timersAnyAuthenticatedPacketSent()
		}
		return
	}
	if pending {
		d.log.Debug("simultaneous initiation: yielding", "peer", p.pub.ShortID())
		p.clearHandshakeLocked()
		p.timers.retransmitHandshake.del()
	}
	p.hs.lastTimestamp = r.Timestamp
	p.hs.lastConsumed = now
	p.hs.mu.Unlock()

	idx := d.indices.newIndex(p)
	resp, keys, err := r.Respond(idx)
	if err != nil {
		d.indices.remove(idx)
		d.counters.drop(DropHandshakeFailed)
		return
	}
	kp, err := newKeypair(keys, false, idx, m.Sender, p, now)
	if err != nil {
		d.indices.remove(idx)
		return
	}
	p.hs.mu.Lock()
	if p.isStopped() {
		p.hs.mu.Unlock()
		d.indices.remove(idx)
		return
	}
	d.indices.setKeypair(idx, kp)
	p.installResponderKeypair(kp)
	p.hs.mu.Unlock()
	var buf [wire.ResponseSize]byte
	out := resp.MarshalTo(buf[:])
	p.cookieGen.AddMACs(out, now)
	p.setEndpoint(ep)
	d.counters.hsCompleted.Add(1)
	d.log.Debug("handshake answered", "peer", p.pub.ShortID(), "index", idx)
	p.timersSessionDerived()
	if err := d.sendRaw(out, ep); err != nil {
		d.counters.drop(DropSendFailed)
		return
	}
	p.timersAnyAuthenticatedPacketTraversal()
	p.timersAnyAuthenticatedPacketSent()
}

func (d *Device) handleResponse(msg []byte, ep conn.Endpoint, now time.Time) {
	m, err := wire.ParseResponse(msg)
	if err != nil {
		d.counters.drop(DropJunk)
		return
	}
	e := d.indices.lookup(m.Receiver)
	p := e.peer
	if p == nil || e.keypair != nil {
		d.counters.drop(DropUnknownIndex)
		return
	}
	p.hs.mu.Lock()
	if p.hs.initiator == nil || p.hs.localIndex != m.Receiver {
		p.hs.mu.Unlock()
		d.counters.drop(DropUnknownIndex)
		return
	}
	keys, err := p.hs.initiator.Finish(&m)
	if err != nil {
		p.hs.mu.Unlock()
		d.counters.drop(DropHandshakeFailed)
		return
	}
	sentAt := p.hs.sentAt
	p.hs.initiator = nil
	p.hs.localIndex = 0
	kp, err := newKeypair(keys, true, m.Receiver, m.Sender, p, now)
	if err != nil || p.isStopped() {
		p.hs.mu.Unlock()
		d.indices.remove(m.Receiver)
		return
	}
	d.indices.setKeypair(m.Receiver, kp)
	p.installInitiatorKeypair(kp)
	p.hs.mu.Unlock()
	p.setEndpoint(ep)
	p.rtt.Store(int64(now.Sub(sentAt)))
	d.counters.hsCompleted.Add(1)
	d.log.Debug("handshake complete", "peer", p.pub.ShortID(), "index", m.Receiver, "rtt", now.Sub(sentAt))
	p.timersSessionDerived()
	p.timersHandshakeComplete()
	p.timersAnyAuthenticatedPacketTraversal()
	p.timersAnyAuthenticatedPacketReceived()
	// Confirm the session to the responder: data if any is waiting, else a
	// keepalive.
	if len(p.staged) == 0 {
		p.sendKeepalive()
	} else {
		p.sendStaged()
	}
	p.probeNow() // a fresh session: punch holes at once
}

// initiateHandshake sends a handshake initiation unless one was sent less
// than RekeyTimeout ago. retry marks a retransmission by the timer.
func (p *peer) initiateHandshake(retry bool) {
	d := p.d
	now := time.Now()
	p.hs.mu.Lock()
	if p.isStopped() {
		p.hs.mu.Unlock()
		return
	}
	if !retry {
		if since := now.Sub(p.hs.sentAt); !p.hs.sentAt.IsZero() && since < d.timing.rekeyTimeout {
			p.hs.mu.Unlock()
			// Too soon for another initiation: make sure one goes out when
			// the rate limit allows, so staged packets are not stranded.
			if !p.timers.retransmitHandshake.pending.Load() {
				p.timers.retransmitHandshake.mod(d.timing.rekeyTimeout - since)
			}
			return
		}
		p.hs.attempts = 0
		p.hs.firstAttempt = now
	} else {
		p.hs.attempts++
	}
	attempts := p.hs.attempts
	id := d.identity.Load()
	p.clearHandshakeLocked()
	idx := d.indices.newIndex(p)
	params := &id.params
	if attempts%2 == 1 && now.Before(params.PrevUntil) {
		// During a PSK rotation's overlap, every other retransmission
		// uses the previous PSK, for a peer that has not seen the new
		// one yet.
		prev := *params
		prev.PSK = params.PrevPSK
		params = &prev
	}
	ini, m, err := handshake.Initiate(params, p.static, idx, now)
	if err != nil {
		d.indices.remove(idx)
		p.hs.mu.Unlock()
		d.log.Error("create handshake initiation", "peer", p.pub.ShortID(), "err", err)
		return
	}
	p.hs.initiator = ini
	p.hs.localIndex = idx
	p.hs.sentAt = now
	out := m.MarshalTo(p.hs.initMsg[:0])
	p.cookieGen.AddMACs(out, now)
	p.hs.initResent = false
	var buf [wire.InitiationSize]byte
	out = buf[:copy(buf[:], out)]
	p.hs.mu.Unlock()

	d.counters.hsInitiated.Add(1)
	d.log.Debug("handshake initiated", "peer", p.pub.ShortID(), "index", idx, "retry", retry)
	p.timersHandshakeInitiated(attempts)

	// Send to the current endpoint; on retries and before any endpoint is
	// learned, to every candidate as well.
	p.cfgMu.RLock()
	cur := p.endpoint
	cands := p.candidates
	learned := p.learned
	p.cfgMu.RUnlock()
	sent := false
	if cur != nil {
		sent = d.sendRaw(out, cur) == nil
	}
	if retry || !sent || !learned {
		// A fallback whose transport is not up (an SSH connection not
		// dialed yet) is skipped when a worse one is configured: it is
		// set up only when probing from that worse path asks for it.
		worst := PathUDP
		for _, c := range cands {
			worst = min(worst, endpointKind(c))
		}
		for _, c := range cands {
			if cur != nil && c.DstToString() == cur.DstToString() {
				continue
			}
			if k := endpointKind(c); k != PathUDP && k > worst && !endpointReady(c) {
				continue
			}
			if d.sendRaw(out, c) == nil {
				sent = true
			}
		}
	}
	if !sent {
		d.counters.drop(DropNoEndpoint)
		return
	}
	p.timersAnyAuthenticatedPacketTraversal()
	p.timersAnyAuthenticatedPacketSent()
}

// sendRaw sends one handshake-sized message. It allocates; it is not on the
// data path.
func (d *Device) sendRaw(msg []byte, ep conn.Endpoint) error {
	return d.bind.Send([][]byte{msg}, ep)
}
