package stun

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	pion "github.com/pion/stun/v3"
)

func startServer(t *testing.T) *Server {
	t.Helper()
	s, err := Listen("127.0.0.1:0", slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

// TestPionClient asks the responder with a real STUN client library.
func TestPionClient(t *testing.T) {
	s := startServer(t)
	c, err := pion.Dial("udp4", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, withFingerprint := range []bool{false, true} {
		setters := []pion.Setter{pion.TransactionID, pion.BindingRequest, pion.NewSoftware("tunnelmesh-test")}
		if withFingerprint {
			setters = append(setters, pion.Fingerprint)
		}
		msg := pion.MustBuild(setters...)
		var got pion.XORMappedAddress
		var cbErr error
		if err := c.Do(msg, func(ev pion.Event) {
			if ev.Error != nil {
				cbErr = ev.Error
				return
			}
			if ev.Message.Type != pion.BindingSuccess {
				cbErr = errors.New("not a binding success: " + ev.Message.Type.String())
				return
			}
			if err := pion.Fingerprint.Check(ev.Message); err != nil {
				cbErr = err
				return
			}
			cbErr = got.GetFrom(ev.Message)
		}); err != nil {
			t.Fatal(err)
		}
		if cbErr != nil {
			t.Fatalf("binding (fingerprint %v): %v", withFingerprint, cbErr)
		}
		if !got.IP.Equal(net.IPv4(127, 0, 0, 1)) || got.Port == 0 {
			t.Fatalf("XOR-MAPPED-ADDRESS = %s:%d, want 127.0.0.1:<client port>", got.IP, got.Port)
		}
	}
}

// TestMappedAddressMatchesSender checks the answer names the exact sender.
func TestMappedAddressMatchesSender(t *testing.T) {
	s := startServer(t)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := pion.MustBuild(pion.TransactionID, pion.BindingRequest)
	if _, err := conn.WriteToUDPAddrPort(msg.Raw, s.Addr()); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	resp := &pion.Message{Raw: append([]byte(nil), buf[:n]...)}
	if err := resp.Decode(); err != nil {
		t.Fatal(err)
	}
	if resp.TransactionID != msg.TransactionID {
		t.Fatal("transaction ID not echoed")
	}
	var xa pion.XORMappedAddress
	var ma pion.MappedAddress
	if err := xa.GetFrom(resp); err != nil {
		t.Fatal(err)
	}
	if err := ma.GetFrom(resp); err != nil {
		t.Fatal(err)
	}
	want := conn.LocalAddr().(*net.UDPAddr)
	if xa.Port != want.Port || ma.Port != want.Port || !xa.IP.Equal(want.IP) || !ma.IP.Equal(want.IP) {
		t.Fatalf("mapped %s:%d / %s:%d, want %s", xa.IP, xa.Port, ma.IP, ma.Port, want)
	}
}

func TestIPv6Response(t *testing.T) {
	var req Request
	msg := pion.MustBuild(pion.TransactionID, pion.BindingRequest)
	if err := Parse(msg.Raw, &req); err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddrPort("[2001:db8::42]:51820")
	resp := &pion.Message{Raw: AppendResponse(nil, &req, src)}
	if err := resp.Decode(); err != nil {
		t.Fatal(err)
	}
	var xa pion.XORMappedAddress
	if err := xa.GetFrom(resp); err != nil {
		t.Fatal(err)
	}
	if xa.String() != "[2001:db8::42]:51820" {
		t.Fatalf("XOR-MAPPED-ADDRESS = %s, want %s", xa.String(), src)
	}
	if err := pion.Fingerprint.Check(resp); err != nil {
		t.Fatalf("fingerprint: %v", err)
	}
}

func TestParse(t *testing.T) {
	valid := pion.MustBuild(pion.TransactionID, pion.BindingRequest, pion.Fingerprint).Raw
	badFP := append([]byte(nil), valid...)
	badFP[len(badFP)-1] ^= 1
	unknown := pion.MustBuild(pion.TransactionID, pion.BindingRequest, pion.RawAttribute{Type: 0x0777, Value: []byte{1, 2, 3}}).Raw
	indication := pion.MustBuild(pion.TransactionID, pion.NewType(pion.MethodBinding, pion.ClassIndication)).Raw
	truncatedAttr := append([]byte(nil), valid[:HeaderSize]...)
	truncatedAttr = append(truncatedAttr, 0x80, 0x28, 0, 40, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(truncatedAttr[2:], 8)
	for _, tt := range []struct {
		name    string
		in      []byte
		want    error
		unknown int
	}{
		{"valid with fingerprint", valid, nil, 0},
		{"empty", nil, ErrNotSTUN, 0},
		{"short", valid[:19], ErrNotSTUN, 0},
		{"length mismatch", valid[:len(valid)-4], ErrNotSTUN, 0},
		{"bad fingerprint", badFP, ErrBadFingerprnt, 0},
		{"indication", indication, ErrNotBinding, 0},
		{"attribute past end", truncatedAttr, ErrMalformed, 0},
		{"unknown required attribute", unknown, nil, 1},
		{"not stun", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ErrNotSTUN, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var req Request
			err := Parse(tt.in, &req)
			if !errors.Is(err, tt.want) || (err == nil && req.NumUnknown != tt.unknown) {
				t.Fatalf("Parse = %v (unknown %d), want %v (unknown %d)", err, req.NumUnknown, tt.want, tt.unknown)
			}
		})
	}
}

func TestUnknownAttributeGets420(t *testing.T) {
	var req Request
	in := pion.MustBuild(pion.TransactionID, pion.BindingRequest, pion.RawAttribute{Type: 0x0777, Value: []byte{1}}).Raw
	if err := Parse(in, &req); err != nil {
		t.Fatal(err)
	}
	resp := &pion.Message{Raw: AppendResponse(nil, &req, netip.MustParseAddrPort("127.0.0.1:5"))}
	if err := resp.Decode(); err != nil {
		t.Fatal(err)
	}
	var code pion.ErrorCodeAttribute
	var unk pion.UnknownAttributes
	if err := code.GetFrom(resp); err != nil || code.Code != 420 {
		t.Fatalf("error code = %v, %v; want 420", code.Code, err)
	}
	if err := unk.GetFrom(resp); err != nil || len(unk) != 1 || unk[0] != 0x0777 {
		t.Fatalf("unknown attributes = %v, %v; want [0x777]", unk, err)
	}
}

func TestHandleDoesNotAllocate(t *testing.T) {
	s := &Server{}
	pkt := pion.MustBuild(pion.TransactionID, pion.BindingRequest, pion.Fingerprint).Raw
	src := netip.MustParseAddrPort("198.51.100.7:40000")
	out := make([]byte, 0, 128)
	var req Request
	allocs := testing.AllocsPerRun(1000, func() {
		if s.handle(pkt, src, &req, out[:0]) == nil {
			t.Fatal("no answer")
		}
	})
	if allocs != 0 {
		t.Fatalf("handle allocates %v times per packet, want 0", allocs)
	}
}

func TestConcurrentClients(t *testing.T) {
	s := startServer(t)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pion.Dial("udp4", s.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			if err := c.Do(pion.MustBuild(pion.TransactionID, pion.BindingRequest), func(ev pion.Event) {
				if ev.Error != nil {
					t.Error(ev.Error)
				}
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func FuzzParse(f *testing.F) {
	f.Add(pion.MustBuild(pion.TransactionID, pion.BindingRequest, pion.Fingerprint).Raw)
	f.Add(pion.MustBuild(pion.TransactionID, pion.BindingRequest, pion.NewSoftware("x"), pion.RawAttribute{Type: 0x0777, Value: []byte{1}}).Raw)
	f.Add([]byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Fuzz(func(t *testing.T, in []byte) {
		var req Request
		if err := Parse(in, &req); err != nil {
			return
		}
		// Every accepted request gets a well-formed answer.
		out := AppendResponse(nil, &req, netip.MustParseAddrPort("192.0.2.1:9"))
		m := &pion.Message{Raw: out}
		if err := m.Decode(); err != nil {
			t.Fatalf("answer to %x does not decode: %v", in, err)
		}
		if err := pion.Fingerprint.Check(m); err != nil {
			t.Fatalf("answer to %x: fingerprint: %v", in, err)
		}
	})
}
