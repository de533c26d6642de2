// Package frames holds what the relay server and client share on their
// per-packet paths: pooled message buffers, whole-message reads, and the
// coalescing of queued packet messages into batch messages
// (shared/relaywire).
package frames

import (
	"errors"
	"io"

	"github.com/tunnelmesh/tunnelmesh/shared/bufpool"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/relaywire"
)

// Queued messages come from two pools by size, so a queue of small datagrams
// does not pin 64 KiB per entry.
var bufs = bufpool.New(relaywire.PacketHeaderLen+2048, relaywire.MaxMessageLen)

// Get returns a pooled buffer of length n (n <= relaywire.MaxMessageLen).
func Get(n int) *[]byte { return bufs.Get(n) }

// Put returns a buffer from Get to its pool.
func Put(b *[]byte) { bufs.Put(b) }

// NewPacket returns a pooled packet message for key and payload.
func NewPacket(key nodekey.PublicKey, payload []byte) *[]byte {
	b := Get(relaywire.PacketHeaderLen + len(payload))
	*b = relaywire.AppendPacket((*b)[:0], key, payload)
	return b
}

// ReadMessage reads one whole WebSocket message from r into buf. The
// WebSocket's read limit keeps messages within relaywire.MaxMessageLen.
func ReadMessage(r io.Reader, buf []byte) (int, error) {
	n := 0
	for {
		if n == len(buf) {
			var one [1]byte
			if k, _ := r.Read(one[:]); k > 0 {
				return n, errors.New("relay message exceeds the read limit")
			}
			return n, nil
		}
		k, err := r.Read(buf[n:])
		n += k
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// Coalescer writes queued packet messages, packing whatever is queued behind
// the first into batch messages. One per writer goroutine.
type Coalescer struct {
	batch []byte
}

// NewCoalescer returns a Coalescer with its batch buffer.
func NewCoalescer() *Coalescer {
	return &Coalescer{batch: make([]byte, 0, relaywire.MaxMessageLen)}
}

// Drain writes first and then, without waiting, whatever else q holds, and
// returns every buffer to the pool. A lone message goes out as it is;
// several go out as batch messages of at most relaywire.MaxMessageLen. It
// returns the datagrams and payload bytes written before any error.
func (c *Coalescer) Drain(first *[]byte, q <-chan *[]byte, write func([]byte) error) (frames, bytes int, err error) {
	if len(q) == 0 {
		n := len(*first) - relaywire.PacketHeaderLen
		err := write(*first)
		Put(first)
		if err != nil {
			return 0, 0, err
		}
		return 1, n, nil
	}
	c.batch = append(c.batch[:0], relaywire.TypeBatch)
	var inBatch, batchBytes int
	flush := func() error {
		if inBatch == 0 {
			return nil
		}
		err := write(c.batch)
		if err == nil {
			frames += inBatch
			bytes += batchBytes
		}
		c.batch = append(c.batch[:0], relaywire.TypeBatch)
		inBatch, batchBytes = 0, 0
		return err
	}
	next := first
	for next != nil {
		m := *next
		var key nodekey.PublicKey
		copy(key[:], m[1:relaywire.PacketHeaderLen])
		payload := m[relaywire.PacketHeaderLen:]
		if 1+relaywire.BatchRecordHeaderLen+len(payload) > relaywire.MaxMessageLen {
			// Too big for any batch: it goes alone, as a packet message.
			if err := flush(); err != nil {
				Put(next)
				return frames, bytes, err
			}
			err := write(m)
			Put(next)
			if err != nil {
				return frames, bytes, err
			}
			frames++
			bytes += len(payload)
			select {
			case next = <-q:
			default:
				next = nil
			}
			continue
		}
		if len(c.batch)+relaywire.BatchRecordHeaderLen+len(payload) > relaywire.MaxMessageLen {
			if err := flush(); err != nil {
				Put(next)
				return frames, bytes, err
			}
		}
		c.batch = relaywire.AppendBatchRecord(c.batch, key, payload)
		inBatch++
		batchBytes += len(payload)
		Put(next)
		select {
		case next = <-q:
		default:
			next = nil
		}
	}
	err = flush()
	return frames, bytes, err
}
