package device

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
)

// indexEntry is what a local index names: a pending handshake (initiator
// side) or an established keypair.
type indexEntry struct {
	peer    *peer
	keypair *keypair // nil while the handshake is pending
}

// indexTable maps the receiver indices in incoming messages to sessions.
type indexTable struct {
	mu    sync.RWMutex // guards table
	table map[uint32]indexEntry
}

func (t *indexTable) init() { t.table = make(map[uint32]indexEntry) }

// newIndex reserves a random unused index for p.
func (t *indexTable) newIndex(p *peer) uint32 {
	var b [4]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic("device: crypto/rand failed: " + err.Error())
		}
		idx := binary.LittleEndian.Uint32(b[:])
		if idx == 0 {
			continue // 0 means "no index" inside the device
		}
		t.mu.Lock()
		if _, used := t.table[idx]; !used {
			t.table[idx] = indexEntry{peer: p}
			t.mu.Unlock()
			return idx
		}
		t.mu.Unlock()
	}
}

// setKeypair points an index reserved by newIndex at its keypair.
func (t *indexTable) setKeypair(idx uint32, kp *keypair) {
	t.mu.Lock()
	if e, ok := t.table[idx]; ok && e.peer == kp.peer {
		e.keypair = kp
		t.table[idx] = e
	}
	t.mu.Unlock()
}

func (t *indexTable) lookup(idx uint32) indexEntry {
	t.mu.RLock()
	e := t.table[idx]
	t.mu.RUnlock()
	return e
}

func (t *indexTable) remove(idx uint32) {
	t.mu.Lock()
	delete(t.table, idx)
	t.mu.Unlock()
}
