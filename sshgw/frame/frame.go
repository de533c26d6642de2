// Package frame is the packet framing of the SSH transport: the byte stream
// on the "tunnelmesh-packets@tunnelmesh" SSH channel, on a direct-tcpip
// channel to an agent's packet port, and on the packet port's TCP
// connections is a sequence of frames
//
//	[0:2]    n, the packet length, big-endian uint16, 1..65535
//	[2:2+n]  the packet: one opaque tunnel datagram (already encrypted)
//
// and nothing else. A zero length is an error (it would make an empty
// packet indistinguishable from padding); so is a stream that ends inside a
// frame. There is no version byte: the channel type names the protocol.
package frame

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Sizes.
const (
	HeaderLen = 2
	MaxPacket = 65535
)

// Errors; check them with errors.Is.
var (
	ErrEmpty     = errors.New("frame: empty packet")
	ErrTooLarge  = errors.New("frame: packet larger than 65535 bytes")
	ErrTruncated = errors.New("frame: stream ended inside a frame")
)

// Append appends the frame of pkt to b.
func Append(b, pkt []byte) ([]byte, error) {
	if err := Check(pkt); err != nil {
		return b, err
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(pkt)))
	return append(b, pkt...), nil
}

// Check returns an error if pkt cannot be framed.
func Check(pkt []byte) error {
	switch {
	case len(pkt) == 0:
		return ErrEmpty
	case len(pkt) > MaxPacket:
		return fmt.Errorf("%w (%d)", ErrTooLarge, len(pkt))
	}
	return nil
}

// Reader reads frames from a stream without allocating per frame.
type Reader struct {
	r   *bufio.Reader
	hdr [HeaderLen]byte
	buf [MaxPacket]byte
}

// NewReader returns a Reader on r with a 64 KiB read buffer.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next packet. The slice is valid until the next call.
// At a clean end of stream (between frames) it returns io.EOF.
func (fr *Reader) Next() ([]byte, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, ErrTruncated
		}
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(fr.hdr[:]))
	if n == 0 {
		return nil, ErrEmpty
	}
	p := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, ErrTruncated
		}
		return nil, err
	}
	return p, nil
}
