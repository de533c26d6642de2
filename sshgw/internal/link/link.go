// Package link runs one framed packet stream (sshgw/frame) over an
// io.ReadWriteCloser: a bounded send queue that drops rather than blocks, a
// writer goroutine that batches queued frames into few writes, and a reader
// loop that hands each packet to a callback. The SSH server, the dialer and
// the packet port all use it.
package link

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/tunnelmesh/tunnelmesh/sshgw/frame"
)

// Errors returned by Send; check them with errors.Is.
var (
	ErrQueueFull = errors.New("packet queue full")
	ErrClosed    = net.ErrClosed
)

// DefaultQueueLen is the send queue length when New is given 0.
const DefaultQueueLen = 512

// writeBuf is the writer's buffer: frames queued together leave in one write
// of up to this size (an SSH channel splits it into its own packets).
const writeBuf = 64 << 10

// Stats are a link's counters.
type Stats struct {
	Sent     uint64 // packets written
	Received uint64 // packets delivered to the callback
	Dropped  uint64 // packets Send refused because the queue was full
}

// Link is one framed packet stream. Create it with New, then call Run.
type Link struct {
	rw    io.ReadWriteCloser
	queue chan *[]byte
	done  chan struct{}

	closeOnce sync.Once
	closed    atomic.Bool           // Close was called
	writeErr  atomic.Pointer[error] // the writer's failure, if any

	sent, received, dropped atomic.Uint64
}

// New returns a link over rw with a send queue of queueLen frames.
func New(rw io.ReadWriteCloser, queueLen int) *Link {
	if queueLen <= 0 {
		queueLen = DefaultQueueLen
	}
	return &Link{rw: rw, queue: make(chan *[]byte, queueLen), done: make(chan struct{})}
}

// Send queues pkt (copied) and returns at once: ErrQueueFull when the queue
// is full (counted), ErrClosed after Close.
func (l *Link) Send(pkt []byte) error {
	if err := frame.Check(pkt); err != nil {
		return err
	}
	select {
	case <-l.done:
		return ErrClosed
	default:
	}
	b := bufs.Get(frame.HeaderLen + len(pkt))
	*b, _ = frame.Append((*b)[:0], pkt)
	select {
	case l.queue <- b:
		return nil
	default:
		bufs.Put(b)
		l.dropped.Add(1)
		return ErrQueueFull
	}
}

// Run writes queued packets and reads packets into onPacket (pkt valid only
// during the call) until the stream ends or Close is called; then it closes
// the stream and returns. The error is nil after Close and at a clean end of
// stream (EOF between frames).
func (l *Link) Run(onPacket func(pkt []byte)) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); l.writeLoop() }()
	err := l.readLoop(onPacket)
	l.shutdown()
	wg.Wait()
	for len(l.queue) > 0 {
		bufs.Put(<-l.queue)
	}
	if werr := l.writeErr.Load(); werr != nil {
		return (*werr)
	}
	if l.closed.Load() || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

func (l *Link) readLoop(onPacket func([]byte)) error {
	r := frame.NewReader(l.rw)
	for {
		p, err := r.Next()
		if err != nil {
			return err
		}
		l.received.Add(1)
		onPacket(p)
	}
}

func (l *Link) writeLoop() {
	bw := bufio.NewWriterSize(l.rw, writeBuf)
	for {
		var b *[]byte
		select {
		case <-l.done:
			return
		case b = <-l.queue:
		}
		n := uint64(0)
		for b != nil {
			_, err := bw.Write(*b)
			bufs.Put(b)
			if err != nil {
				l.failWrite(err)
				return
			}
			n++
			select {
			case b = <-l.queue:
			default:
				b = nil
			}
		}
		if err := bw.Flush(); err != nil {
			l.failWrite(err)
			return
		}
		l.sent.Add(n)
	}
}

// Close closes the stream; Run returns soon after (with a nil error). It is
// safe to call more than once and from any goroutine.
func (l *Link) Close() error {
	l.closed.Store(true)
	l.shutdown()
	return nil
}

func (l *Link) shutdown() {
	l.closeOnce.Do(func() {
		close(l.done)
		l.rw.Close()
	})
}

func (l *Link) failWrite(err error) {
	l.writeErr.CompareAndSwap(nil, &err)
	l.shutdown()
}

// Done is closed when the link is closed.
func (l *Link) Done() <-chan struct{} { return l.done }

// Stats returns the link's counters.
func (l *Link) Stats() Stats {
	return Stats{Sent: l.sent.Load(), Received: l.received.Load(), Dropped: l.dropped.Load()}
}
