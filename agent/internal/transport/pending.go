package transport

import (
	"sync"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// pending holds the few packets sent to a transport while its connection
// is still being set up (the relay connecting, an SSH dial in progress),
// so a peer's first packet, usually a handshake initiation, goes out the
// moment the connection is up instead of waiting for the device to retry.
type pending struct {
	mu   sync.Mutex // guards pkts
	pkts []heldPacket
}

type heldPacket struct {
	dst nodekey.PublicKey
	pkt []byte
	at  time.Time
}

const (
	maxPending = 16
	pendingTTL = 3 * time.Second
)

// hold keeps a copy of pkt for dst, dropping the oldest beyond maxPending.
func (p *pending) hold(dst nodekey.PublicKey, pkt []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pkts) == maxPending {
		copy(p.pkts, p.pkts[1:])
		p.pkts = p.pkts[:maxPending-1]
	}
	p.pkts = append(p.pkts, heldPacket{dst: dst, pkt: append([]byte(nil), pkt...), at: time.Now()})
}

// flush sends the packets not older than pendingTTL and forgets them all.
func (p *pending) flush(send func(dst nodekey.PublicKey, pkt []byte) error) {
	p.mu.Lock()
	pkts := p.pkts
	p.pkts = nil
	p.mu.Unlock()
	now := time.Now()
	for _, h := range pkts {
		if now.Sub(h.at) < pendingTTL {
			send(h.dst, h.pkt)
		}
	}
}
