package device

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// timer is a stoppable one-shot timer that knows whether it is pending.
// Since Go 1.23, Reset and Stop are safe while another goroutine waits on C.
type timer struct {
	t       *time.Timer
	pending atomic.Bool
}

func newTimer() *timer {
	t := &timer{t: time.NewTimer(time.Hour)}
	t.t.Stop()
	return t
}

func (t *timer) mod(d time.Duration) {
	t.pending.Store(true)
	t.t.Reset(d)
}

func (t *timer) del() {
	t.pending.Store(false)
	t.t.Stop()
}

// peerTimers are WireGuard's per-peer timers (whitepaper section 6).
type peerTimers struct {
	retransmitHandshake  *timer
	sendKeepalive        *timer
	newHandshake         *timer
	zeroKeyMaterial      *timer
	persistentKeepalive  *timer
	needAnotherKeepalive atomic.Bool
}

func (t *peerTimers) init() {
	t.retransmitHandshake = newTimer()
	t.sendKeepalive = newTimer()
	t.newHandshake = newTimer()
	t.zeroKeyMaterial = newTimer()
	t.persistentKeepalive = newTimer()
}

func (t *peerTimers) stopAll() {
	t.retransmitHandshake.del()
	t.sendKeepalive.del()
	t.newHandshake.del()
	t.zeroKeyMaterial.del()
	t.persistentKeepalive.del()
}

func (t *timing) jitter() time.Duration { return rand.N(t.jitterMax) }

// routineTimers runs the timer handlers for p until p stops.
func (p *peer) routineTimers() {
	defer p.wg.Done()
	t := &p.timers
	for {
		select {
		case <-p.stopCh:
			return
		case <-t.retransmitHandshake.t.C:
			t.retransmitHandshake.pending.Store(false)
			p.expiredRetransmitHandshake()
		case <-t.sendKeepalive.t.C:
			t.sendKeepalive.pending.Store(false)
			p.sendKeepalive()
			if t.needAnotherKeepalive.Swap(false) {
				t.sendKeepalive.mod(p.d.timing.keepaliveTimeout)
			}
		case <-t.newHandshake.t.C:
			t.newHandshake.pending.Store(false)
			p.initiateHandshake(false)
		case <-t.zeroKeyMaterial.t.C:
			t.zeroKeyMaterial.pending.Store(false)
			p.zeroKeys()
		case <-t.persistentKeepalive.t.C:
			t.persistentKeepalive.pending.Store(false)
			if p.d.keepaliveInterval() > 0 {
				p.sendKeepalive()
			}
		}
	}
}

func (p *peer) expiredRetransmitHandshake() {
	p.hs.mu.Lock()
	attempts := p.hs.attempts
	first := p.hs.firstAttempt
	inProgress := p.hs.initiator != nil
	p.hs.mu.Unlock()
	if !inProgress {
		// Armed to defer an initiation (rate limit, or a responder session
		// that was never confirmed): start a fresh round now.
		p.initiateHandshake(false)
		return
	}
	if time.Since(first) >= p.d.timing.rekeyAttemptTime {
		p.d.log.Debug("handshake gave up", "peer", p.pub.ShortID(), "attempts", attempts)
		p.timers.sendKeepalive.del()
		p.drainStaged()
		if !p.timers.zeroKeyMaterial.pending.Load() {
			p.timers.zeroKeyMaterial.mod(3 * p.d.timing.rejectAfterTime)
		}
		return
	}
	p.initiateHandshake(true)
}

// Timer events, called by the packet paths (once per batch).

func (p *peer) timersDataSent() {
	if !p.timers.newHandshake.pending.Load() {
		p.timers.newHandshake.mod(p.d.timing.keepaliveTimeout + p.d.timing.rekeyTimeout + p.d.timing.jitter())
	}
}

func (p *peer) timersDataReceived() {
	if !p.timers.sendKeepalive.pending.Load() {
		p.timers.sendKeepalive.mod(p.d.timing.keepaliveTimeout)
	} else {
		p.timers.needAnotherKeepalive.Store(true)
	}
}

func (p *peer) timersAnyAuthenticatedPacketSent() {
	if p.timers.sendKeepalive.pending.Load() {
		p.timers.sendKeepalive.del()
	}
}

func (p *peer) timersAnyAuthenticatedPacketReceived() {
	if p.timers.newHandshake.pending.Load() {
		p.timers.newHandshake.del()
	}
}

func (p *peer) timersAnyAuthenticatedPacketTraversal() {
	if ka := p.d.keepaliveInterval(); ka > 0 {
		p.timers.persistentKeepalive.mod(ka)
	}
}

// timersHandshakeInitiated arms the retransmission: RekeyTimeout, doubled
// after each unanswered attempt up to 4x, plus jitter; retries stop once
// RekeyAttemptTime has passed since the first attempt.
func (p *peer) timersHandshakeInitiated(attempts int) {
	p.timers.retransmitHandshake.mod(retransmitDelay(p.d.timing.rekeyTimeout, attempts) + p.d.timing.jitter())
}

func retransmitDelay(base time.Duration, attempts int) time.Duration {
	return base << min(attempts, 2)
}

func (p *peer) timersHandshakeComplete() {
	p.timers.retransmitHandshake.del()
	p.hs.mu.Lock()
	p.hs.attempts = 0
	p.hs.mu.Unlock()
	p.lastHandshake.Store(time.Now().UnixNano())
}

func (p *peer) timersSessionDerived() {
	p.timers.zeroKeyMaterial.mod(3 * p.d.timing.rejectAfterTime)
}
