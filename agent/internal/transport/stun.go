package transport

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/stunclient"
)

// stunAnswer hands a STUN answer to the PublicAddr call waiting for it.
func (b *Bind) stunAnswer(pkt []byte) {
	var id stunclient.TxID
	copy(id[:], pkt[8:20])
	b.stunMu.Lock()
	ch := b.stunWait[id]
	b.stunMu.Unlock()
	if ch == nil {
		return
	}
	ap, err := stunclient.Parse(pkt, id)
	if err != nil {
		return
	}
	select {
	case ch <- ap:
	default:
	}
}

// PublicAddr asks the STUN server srv which public address and port the
// data plane's UDP socket maps to. The request leaves on that socket, so
// the answer is the mapping peers see. It retries until ctx ends.
func (b *Bind) PublicAddr(ctx context.Context, srv netip.AddrPort) (netip.AddrPort, error) {
	id := stunclient.NewTxID()
	ch := make(chan netip.AddrPort, 1)
	b.stunMu.Lock()
	if b.stunWait == nil {
		b.stunWait = make(map[stunclient.TxID]chan netip.AddrPort)
	}
	b.stunWait[id] = ch
	b.stunMu.Unlock()
	defer func() {
		b.stunMu.Lock()
		delete(b.stunWait, id)
		b.stunMu.Unlock()
	}()
	req := stunclient.Request(id)
	wait := 250 * time.Millisecond
	for {
		if err := b.SendUDP(req, srv); err != nil {
			return netip.AddrPort{}, fmt.Errorf("stun %s: %w", srv, err)
		}
		t := time.NewTimer(wait)
		select {
		case ap := <-ch:
			t.Stop()
			return ap, nil
		case <-ctx.Done():
			t.Stop()
			return netip.AddrPort{}, fmt.Errorf("stun %s: %w", srv, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}
