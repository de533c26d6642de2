package device

import (
	"crypto/cipher"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/crypto/chacha20poly1305"

	"golang.zx2c4.com/wireguard/replay"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/handshake"
)

// keypair is one session: the two transport ciphers and their counters.
type keypair struct {
	send        cipher.AEAD
	recv        cipher.AEAD
	sendCounter atomic.Uint64
	replay      replay.Filter // RFC 6479 window (wireguard-go's); used only by the peer's receive goroutine
	rxMax       uint64        // highest counter replay accepted (too_late drops); receive goroutine only
	created     time.Time
	initiator   bool
	localIndex  uint32
	remoteIndex uint32
	peer        *peer
	dead        atomic.Bool // set once the keypair is retired; no more use
	// refs counts the holders of the keys: one for the peer's keypairs
	// until retire, plus one per batch (elem.ref) between taking the
	// keypair and sealing or opening its packets. At zero the keys are
	// wiped, and acquire fails from then on.
	refs atomic.Int64
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
	kp := &keypair{send: send, recv: recv, created: now, initiator: initiator,
		localIndex: local, remoteIndex: remote, peer: p}
	kp.refs.Store(1)
	return kp, nil
}

// acquire takes a reference to kp's keys for a batch; false once they are
// wiped (or about to be).
func (kp *keypair) acquire() bool {
	for {
		n := kp.refs.Load()
		if n <= 0 {
			return false
		}
		if kp.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference; the last one wipes the keys, as wireguard-go
// wipes retired handshake state.
func (kp *keypair) release() {
	if kp.refs.Add(-1) == 0 {
		wipeAEAD(kp.send)
		wipeAEAD(kp.recv)
	}
}

// wipeAEAD zeroes the key inside a chacha20poly1305 AEAD: the package keeps
// it as the only field of the struct its New returns a pointer to (checked
// here by the size, so another layout is left alone rather than corrupted).
func wipeAEAD(a cipher.AEAD) {
	v := reflect.ValueOf(a)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct ||
		v.Elem().Type().Size() != chacha20poly1305.KeySize {
		return
	}
	clear(unsafe.Slice((*byte)(v.UnsafePointer()), chacha20poly1305.KeySize))
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
