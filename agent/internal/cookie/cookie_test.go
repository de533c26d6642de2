package cookie

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
)

func pubs() (a, b [32]byte) {
	for i := range a {
		a[i] = byte(i)
		b[i] = byte(100 + i)
	}
	return
}

func initiation(sender uint32) []byte {
	m := wire.Initiation{Sender: sender}
	for i := range m.Noise {
		m.Noise[i] = byte(i)
	}
	return m.MarshalTo(make([]byte, wire.InitiationSize))
}

func TestMAC1Golden(t *testing.T) {
	_, resp := pubs()
	g := NewGenerator(resp)
	msg := initiation(1)
	g.AddMACs(msg, time.Unix(0, 0))
	// Computed independently with Python's hashlib:
	// blake2s(msg[:116], key=blake2s(b"mac1----"+pub).digest(), digest_size=16).
	const want = "c9762e1a933e8d219b0941b20943cdf8"
	if got := hex.EncodeToString(msg[116:132]); got != want {
		t.Fatalf("mac1 = %s, want %s", got, want)
	}
	if !NewChecker(resp).CheckMAC1(msg) {
		t.Fatal("CheckMAC1(own generator's message) = false, want true")
	}
	if !bytes.Equal(msg[132:], make([]byte, 16)) {
		t.Fatalf("mac2 without cookie = %x, want zeros", msg[132:])
	}
}

func TestMAC1Rejects(t *testing.T) {
	other, resp := pubs()
	c := NewChecker(resp)
	msg := initiation(1)
	NewGenerator(other).AddMACs(msg, time.Now()) // keyed for the wrong responder
	if c.CheckMAC1(msg) {
		t.Fatal("CheckMAC1(mac1 for another key) = true, want false")
	}
	NewGenerator(resp).AddMACs(msg, time.Now())
	msg[20] ^= 1
	if c.CheckMAC1(msg) {
		t.Fatal("CheckMAC1(tampered body) = true, want false")
	}
	if c.CheckMAC1(msg[:10]) {
		t.Fatal("CheckMAC1(short) = true, want false")
	}
}

func TestCookieRoundTrip(t *testing.T) {
	_, resp := pubs()
	c := NewChecker(resp)
	g := NewGenerator(resp)
	src := netip.MustParseAddrPort("192.0.2.7:51820")
	now := time.Unix(5000, 0)

	msg := initiation(9)
	g.AddMACs(msg, now)
	if c.CheckMAC2(msg, AddrBytes(src), now) {
		t.Fatal("CheckMAC2 without cookie = true, want false")
	}
	reply, err := c.CreateReply(msg, 9, AddrBytes(src), now)
	if err != nil {
		t.Fatal(err)
	}
	if reply.Receiver != 9 {
		t.Fatalf("reply.Receiver = %d, want 9", reply.Receiver)
	}
	// Round trip through the wire encoding.
	parsed, err := wire.ParseCookieReply(reply.MarshalTo(make([]byte, wire.CookieReplySize)))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.ConsumeReply(&parsed, now); err != nil {
		t.Fatalf("ConsumeReply = %v", err)
	}
	if err := g.ConsumeReply(&parsed, now); !errors.Is(err, ErrBadReply) {
		t.Fatalf("second ConsumeReply = %v, want ErrBadReply", err)
	}
	msg2 := initiation(10)
	g.AddMACs(msg2, now.Add(time.Second))
	if !c.CheckMAC1(msg2) || !c.CheckMAC2(msg2, AddrBytes(src), now.Add(time.Second)) {
		t.Fatal("MACs with cookie not accepted")
	}
	if c.CheckMAC2(msg2, AddrBytes(netip.MustParseAddrPort("192.0.2.7:51821")), now) {
		t.Fatal("CheckMAC2 from another port = true, want false")
	}
	if c.CheckMAC2(msg2, AddrBytes(src), now.Add(wire.CookieRefreshTime+time.Second)) {
		t.Fatal("CheckMAC2 after secret expiry = true, want false")
	}
	// A stale cookie is not used.
	msg3 := initiation(11)
	g.AddMACs(msg3, now.Add(wire.CookieRefreshTime))
	if !bytes.Equal(msg3[132:], make([]byte, 16)) {
		t.Fatal("stale cookie used for mac2")
	}
}

func TestConsumeReplyTampered(t *testing.T) {
	_, resp := pubs()
	c := NewChecker(resp)
	g := NewGenerator(resp)
	src := netip.MustParseAddrPort("[2001:db8::1]:1")
	msg := initiation(1)
	g.AddMACs(msg, time.Now())
	reply, err := c.CreateReply(msg, 1, AddrBytes(src), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	reply.Cookie[3] ^= 1
	if err := g.ConsumeReply(&reply, time.Now()); !errors.Is(err, ErrBadReply) {
		t.Fatalf("ConsumeReply(tampered) = %v, want ErrBadReply", err)
	}
}

func FuzzConsumeReply(f *testing.F) {
	f.Add(make([]byte, wire.CookieReplySize))
	f.Add([]byte{3, 1, 0, 0})
	_, resp := pubs()
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := wire.ParseCookieReply(b)
		if err != nil {
			return
		}
		g := NewGenerator(resp)
		g.AddMACs(initiation(1), time.Now())
		if g.ConsumeReply(&r, time.Now()) == nil {
			t.Fatal("random cookie reply accepted")
		}
	})
}

func FuzzCheckMACs(f *testing.F) {
	f.Add(initiation(1))
	f.Add([]byte{})
	_, resp := pubs()
	c := NewChecker(resp)
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = c.CheckMAC1(b)
		_ = c.CheckMAC2(b, AddrBytes(netip.MustParseAddrPort("192.0.2.1:1")), time.Now())
	})
}
