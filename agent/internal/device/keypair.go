package device

import (
	"crypto/cipher"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/handshake"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/replay"
)

// keypair is one session: the two transport ciphers and their counters.
type keypair struct {
	send        cipher.AEAD
	recv        cipher.AEAD
	sendCounter atomic.Uint64
	replay      replay.Filter // used only by the peer's receive goroutine
	created     time.Time
	initiator   bool
	localIndex  uint32
	remoteIndex uint32
	peer        *peer
	dead        atomic.Bool // set once the keypair is retired; no more use
}

func newKeypair(k handshake.Keys, initiator bool, local, remote uint32, p *peer, now time.Time) (*keypair, error) {
	send, err := chacha20poly1305.New(k.Send[:])
	if err != nil {
		return nil, err
	}
	recv, err := chacha20poly1305.New(k.Recv[:])
	if err != nil {
		return nil, err
	}
	return &keypair{send: send, recv: recv, created: now, initiator: initiator,
		localIndex: local, remoteIndex: remote, peer: p}, nil
}

// keypairs are a peer's sessions, as in WireGuard: the current one sends;
// the previous one still receives packets in flight; next is a responder's
// session not yet confirmed by a packet from the initiator.
type keypairs struct {
	mu       sync.RWMutex // guards previous and current
	previous *keypair
	current  *keypair
	next     atomic.Pointer[keypair]
}

func (k *keypairs) currentKeypair() *keypair {
	k.mu.RLock()
	c := k.current
	k.mu.RUnlock()
	return c
}
