package link

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/sshgw/frame"
)

func TestExchangeAndClose(t *testing.T) {
	a, b := net.Pipe()
	la, lb := New(a, 0), New(b, 0)
	got := make(chan string, 100)
	errA, errB := make(chan error, 1), make(chan error, 1)
	go func() { errA <- la.Run(func(p []byte) { got <- "a:" + string(p) }) }()
	go func() { errB <- lb.Run(func(p []byte) { got <- "b:" + string(p) }) }()
	for i := range 10 {
		if err := la.Send(fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := lb.Send([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 11 {
		select {
		case s := <-got:
			seen[s] = true
		case <-time.After(time.Minute):
			t.Fatalf("timeout; got %v", seen)
		}
	}
	if !seen["b:0"] || !seen["b:9"] || !seen["a:hi"] {
		t.Errorf("received %v", seen)
	}
	la.Close()
	if err := <-errA; err != nil {
		t.Errorf("Run after Close = %v, want nil", err)
	}
	if err := <-errB; err != nil {
		t.Errorf("peer Run after the other side closed = %v, want nil (EOF)", err)
	}
	if err := la.Send([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
	if st := la.Stats(); st.Sent != 10 || st.Received != 1 {
		t.Errorf("stats = %+v, want 10 sent, 1 received", st)
	}
}

func TestBadFrameEndsRun(t *testing.T) {
	a, b := net.Pipe()
	l := New(a, 0)
	errc := make(chan error, 1)
	go func() { errc <- l.Run(func([]byte) {}) }()
	b.Write([]byte{0, 0})
	if err := <-errc; !errors.Is(err, frame.ErrEmpty) {
		t.Errorf("Run after a zero-length frame = %v, want ErrEmpty", err)
	}
	b.Close()
}

func TestQueueFullDrops(t *testing.T) {
	a, _ := net.Pipe() // nobody reads: the writer blocks
	l := New(a, 4)
	var full int
	for range 20 {
		if err := l.Send(bytes.Repeat([]byte{1}, 100)); errors.Is(err, ErrQueueFull) {
			full++
		}
	}
	if full < 15 || l.Stats().Dropped != uint64(full) {
		t.Errorf("queue full %d times, dropped %d; want >= 15 and equal", full, l.Stats().Dropped)
	}
	l.Close()
}
