package device

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/cookie"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/handshake"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// relayEndpoint stands for a transport endpoint keyed by an authenticated
// node key (a relay frame's source, an SSH-authenticated key), as package
// transport's are: it has no source address.
type relayEndpoint struct{ key nodekey.PublicKey }

func (e *relayEndpoint) ClearSrc()              {}
func (e *relayEndpoint) SrcToString() string    { return "" }
func (e *relayEndpoint) DstToString() string    { return "relay:" + e.key.ShortID() }
func (e *relayEndpoint) DstToBytes() []byte     { return e.key[:] }
func (e *relayEndpoint) DstIP() netip.Addr      { return netip.Addr{} }
func (e *relayEndpoint) SrcIP() netip.Addr      { return netip.Addr{} }
func (e *relayEndpoint) PathKind() PathKind     { return PathRelay }
func (e *relayEndpoint) Path() string           { return "relay test" }
func (e *relayEndpoint) Ready() bool            { return true }
func (e *relayEndpoint) Key() nodekey.PublicKey { return e.key }

// capturingBind records what is sent to relayEndpoints.
type capturingBind struct {
	Bind
	mu   sync.Mutex
	sent map[*relayEndpoint][][]byte
}

func (b *capturingBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	if re, ok := ep.(*relayEndpoint); ok {
		b.mu.Lock()
		for _, buf := range bufs {
			b.sent[re] = append(b.sent[re], append([]byte(nil), buf...))
		}
		b.mu.Unlock()
		return nil
	}
	return b.Bind.Send(bufs, ep)
}

// lastSent returns the last message sent to ep.
func (b *capturingBind) lastSent(t *testing.T, ep *relayEndpoint) []byte {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.sent[ep]
	if len(s) == 0 {
		t.Fatalf("nothing sent to %s", ep.DstToString())
	}
	return s[len(s)-1]
}

// relayedInitiator builds initiations to target as key would, keeping the
// cookie it is given.
type relayedInitiator struct {
	params *handshake.Params
	target [32]byte
	gen    *cookie.Generator
}

func newRelayedInitiator(t *testing.T, key nodekey.PrivateKey, psk [32]byte, target *node) *relayedInitiator {
	st, err := handshake.NewStaticKey(key)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := target.key.Public().X25519()
	if err != nil {
		t.Fatal(err)
	}
	return &relayedInitiator{params: &handshake.Params{Local: st, PSK: psk, Prologue: wire.Prologue("test-mesh")},
		target: tx, gen: cookie.NewGenerator(tx)}
}

func (r *relayedInitiator) initiation(t *testing.T, now time.Time) []byte {
	_, msg, err := handshake.Initiate(r.params, r.target, 7, now)
	if err != nil {
		t.Fatal(err)
	}
	out := msg.MarshalTo(make([]byte, wire.InitiationSize))
	r.gen.AddMACs(out, now)
	return out
}

// takeCookie consumes the cookie reply in msg.
func (r *relayedInitiator) takeCookie(t *testing.T, msg []byte, now time.Time) {
	t.Helper()
	reply, err := wire.ParseCookieReply(msg)
	if err != nil {
		t.Fatalf("expected a cookie reply, got type %d: %v", msg[0], err)
	}
	if err := r.gen.ConsumeReply(&reply, now); err != nil {
		t.Fatal(err)
	}
}

// TestRelayedFloodDoesNotStarveOtherRelayedPeers: handshakes that come
// over the relay (or SSH) have no source address. Under load, the cookie
// and the rate limit are keyed by the authenticated identity behind the
// endpoint, so one member flooding through the relay (echoing its cookie,
// as a determined attacker does) uses up its own bucket only, and another
// relayed peer still gets its handshake answered.
func TestRelayedFloodDoesNotStarveOtherRelayedPeers(t *testing.T) {
	tm := fastTiming()
	tm.alwaysUnderLoad = true
	m := newMeshStopped(t, 3, tm)
	var cb *capturingBind
	m.bindWrap = func(i int, b Bind) Bind {
		if i != 0 {
			return b
		}
		cb = &capturingBind{Bind: b, sent: map[*relayEndpoint][][]byte{}}
		return cb
	}
	m.startAll()
	a, b, c := m.nodes[0], m.nodes[1], m.nodes[2]
	now := time.Now()

	// c floods a through the relay, with a valid cookie.
	flooder := newRelayedInitiator(t, c.key, m.psk, a)
	cep := &relayEndpoint{key: c.key.Public()}
	a.dev.handleHandshakeMessage(flooder.initiation(t, now), cep, now)
	flooder.takeCookie(t, cb.lastSent(t, cep), now)
	for range 100 {
		a.dev.handleHandshakeMessage(flooder.initiation(t, now), cep, now)
	}
	if drops(a, DropRateLimited) == 0 {
		t.Fatal("the flood was never rate limited; the test proves nothing")
	}

	// b, also relayed, gets a cookie and then an answer.
	bi := newRelayedInitiator(t, b.key, m.psk, a)
	bep := &relayEndpoint{key: b.key.Public()}
	a.dev.handleHandshakeMessage(bi.initiation(t, now), bep, now)
	bi.takeCookie(t, cb.lastSent(t, bep), now)
	limited := drops(a, DropRateLimited)
	a.dev.handleHandshakeMessage(bi.initiation(t, now.Add(time.Millisecond)), bep, now.Add(time.Millisecond))
	if d := drops(a, DropRateLimited); d != limited {
		t.Fatalf("b's handshake over the relay was rate limited behind c's flood")
	}
	if resp := cb.lastSent(t, bep); resp[0] != wire.TypeResponse {
		t.Fatalf("b got message type %d, want a response (%d)", resp[0], wire.TypeResponse)
	}
}
