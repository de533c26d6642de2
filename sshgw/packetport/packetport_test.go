package packetport_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/sshgw/frame"
	"github.com/tunnelmesh/tunnelmesh/sshgw/internal/sshtest"
	"github.com/tunnelmesh/tunnelmesh/sshgw/packetport"
	"github.com/tunnelmesh/tunnelmesh/testkit/daemontest"
)

func start(t *testing.T, cfg packetport.Config) *packetport.Listener {
	t.Helper()
	cfg.Logger = sshtest.Quiet
	l, err := packetport.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Serve(context.Background()) }()
	t.Cleanup(func() {
		l.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v, want nil after Close", err)
		}
	})
	return l
}

func TestEchoAndClose(t *testing.T) {
	daemontest.CheckGoroutines(t)
	ups := make(chan bool, 4)
	l := start(t, packetport.Config{
		OnPacket: func(c *packetport.Conn, p []byte) { c.Send(append([]byte("re:"), p...)) },
		OnConn:   func(_ *packetport.Conn, up bool) { ups <- up },
	})
	if !l.Addr().Addr().IsLoopback() || l.Port() == 0 {
		t.Fatalf("Addr() = %v", l.Addr())
	}
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	out, _ := frame.Append(nil, []byte("one"))
	out, _ = frame.Append(out, []byte("two"))
	nc.Write(out)
	r := frame.NewReader(nc)
	nc.SetReadDeadline(time.Now().Add(time.Minute))
	for _, want := range []string{"re:one", "re:two"} {
		p, err := r.Next()
		if err != nil || string(p) != want {
			t.Fatalf("Next() = %q, %v; want %q", p, err, want)
		}
	}
	if up := <-ups; !up {
		t.Error("OnConn(up) not called first")
	}
	if n := len(l.Conns()); n != 1 {
		t.Errorf("Conns() = %d, want 1", n)
	}
	l.Close()
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("read after Close = %v, want EOF", err)
	}
	if up := <-ups; up {
		t.Error("OnConn(down) not called")
	}
}

func TestBadFrameClosesConn(t *testing.T) {
	daemontest.CheckGoroutines(t)
	got := make(chan []byte, 4)
	l := start(t, packetport.Config{OnPacket: func(_ *packetport.Conn, p []byte) { got <- bytes.Clone(p) }})
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte{0, 0, 0, 1, 'x'}) // zero-length frame first
	nc.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := nc.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after a bad frame = %v, want EOF", err)
	}
	if len(got) != 0 {
		t.Errorf("packets delivered from a bad stream: %d", len(got))
	}
}

func TestMaxConns(t *testing.T) {
	daemontest.CheckGoroutines(t)
	l := start(t, packetport.Config{MaxConns: 1, OnPacket: func(*packetport.Conn, []byte) {}})
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	daemontest.Eventually(t, 5*time.Second, "first connection", func() bool { return len(l.Conns()) == 1 })
	b, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := b.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("second connection read = %v, want EOF (refused)", err)
	}
}

func TestListenErrors(t *testing.T) {
	on := func(*packetport.Conn, []byte) {}
	tests := []struct {
		name string
		cfg  packetport.Config
	}{
		{"not loopback", packetport.Config{Addr: "0.0.0.0:0", OnPacket: on}},
		{"host name", packetport.Config{Addr: "localhost:0", OnPacket: on}},
		{"no callback", packetport.Config{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if l, err := packetport.Listen(tt.cfg); err == nil {
				l.Close()
				t.Errorf("Listen(%+v) = nil error", tt.cfg)
			}
		})
	}
}
