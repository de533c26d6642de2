// Package replay implements the sliding anti-replay window of RFC 6479, as
// WireGuard uses it: a ring of 64-bit blocks that accepts each counter at
// most once and any counter within WindowSize of the highest seen so far, so
// packets reordered by UDP are still delivered.
//
// A Filter is not safe for concurrent use; the device calls it from the one
// goroutine that receives a peer's packets in order, and only after the
// packet's AEAD tag has been checked.
package replay

const (
	blockBits  = 64
	ringBlocks = 1 << 7 // 128 blocks = 8192 bits
	blockMask  = ringBlocks - 1
	bitMask    = blockBits - 1
	// WindowSize is how far behind the highest counter a packet may be.
	WindowSize = (ringBlocks - 1) * blockBits // 8128
)

// Filter is one session's replay window. The zero value is ready to use.
type Filter struct {
	last uint64 // highest counter accepted + 1 (0 = none yet)
	ring [ringBlocks]uint64
}

// Reset empties the window.
func (f *Filter) Reset() {
	f.last = 0
	f.ring = [ringBlocks]uint64{}
}

// Behind reports whether counter is too far behind the highest counter
// accepted for the window to tell whether it was seen: a packet that
// arrived too late (or a replay too old to check), as opposed to a
// duplicate within the window. It does not change the window.
func (f *Filter) Behind(counter uint64) bool {
	return counter < f.last && f.last-counter > WindowSize
}

// Accept reports whether counter is new and within the window, and if so
// records it. Counters >= limit are always refused.
func (f *Filter) Accept(counter, limit uint64) bool {
	if counter >= limit {
		return false
	}
	block := counter / blockBits
	if counter >= f.last {
		// Advance: clear the blocks between the old head and the new one.
		var cur uint64 // block of the highest counter so far
		if f.last == 0 {
			f.ring[0] = 0
		} else {
			cur = (f.last - 1) / blockBits
		}
		diff := block - cur
		if diff > ringBlocks {
			diff = ringBlocks
		}
		for i := uint64(1); i <= diff; i++ {
			f.ring[(cur+i)&blockMask] = 0
		}
		f.last = counter + 1
	} else if f.last-counter > WindowSize {
		return false
	}
	idx := block & blockMask
	bit := uint64(1) << (counter & bitMask)
	if f.ring[idx]&bit != 0 {
		return false
	}
	f.ring[idx] |= bit
	return true
}
