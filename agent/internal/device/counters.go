package device

import "sync/atomic"

// DropReason says why a packet was dropped.
type DropReason int

// Drop reasons. Each has its own counter in Counters.Drops.
const (
	DropJunk            DropReason = iota // not a protocol message: bad type, version, reserved bytes or length
	DropBadMAC1                           // handshake message whose mac1 is wrong (not for us, or garbage)
	DropHandshakeFailed                   // Noise decryption failed: wrong PSK, wrong mesh, forged
	DropUnknownKey                        // initiation from a static key that is not a peer
	DropStaleInitiation                   // initiation with an old timestamp (replay) or too soon after the last
	DropRateLimited                       // handshake over the per-source limit while under load
	DropCookieReply                       // cookie reply that does not decrypt or answers nothing
	DropUnknownIndex                      // message for a receiver index we do not hold (removed peer, old session)
	DropDecrypt                           // transport AEAD check failed
	DropReplay                            // transport counter already seen (a duplicate or a replay)
	DropExpired                           // session past RejectAfterTime or RejectAfterMessages
	DropAllowedIPs                        // inner source address is not the sending peer's mesh IP
	DropMalformedInner                    // decrypted payload, or packet from the TUN, is not a valid IP packet
	DropFilter                            // refused by the packet filter
	DropNoPeer                            // packet from the TUN for an address with no peer
	DropTooBig                            // packet from the TUN larger than the MTU
	DropNoEndpoint                        // no UDP endpoint known for the peer
	DropQueueFull                         // a queue was full (overload)
	DropSendFailed                        // the bind refused a send
	DropTooLate                           // transport counter behind the replay window: arrived too late to check
	DropCoDel                             // dropped by the peer queue's CoDel (queue.go): queued too long
	NumDropReasons
)

var dropNames = [NumDropReasons]string{
	"junk", "bad_mac1", "handshake_failed", "unknown_key", "stale_initiation", "rate_limited",
	"cookie_reply", "unknown_index", "decrypt", "replay", "expired", "allowed_ips",
	"malformed_inner", "filter", "no_peer", "too_big", "no_endpoint", "queue_full", "send_failed", "too_late",
	"codel",
}

// String returns the reason's metric label, e.g. "bad_mac1".
func (r DropReason) String() string {
	if r < 0 || r >= NumDropReasons {
		return "unknown"
	}
	return dropNames[r]
}

// Counters is a snapshot of device-wide counters.
type Counters struct {
	RxPackets, RxBytes  uint64 // authenticated transport packets/bytes received (wire size)
	TxPackets, TxBytes  uint64 // transport packets/bytes sent (wire size)
	HandshakesInitiated uint64 // initiations sent
	HandshakesCompleted uint64 // sessions established (either role)
	// HandshakesPreviousPSK counts initiations accepted for the mesh's
	// previous PSK during a rotation's overlap (Config.PrevPSK).
	HandshakesPreviousPSK uint64
	CookieRepliesSent     uint64
	FragNeededSent        uint64 // ICMP frag-needed / packet-too-big written to the TUN for DropTooBig packets
	Drops                 [NumDropReasons]uint64
}

type counters struct {
	rxPackets, rxBytes atomic.Uint64
	txPackets, txBytes atomic.Uint64
	hsInitiated        atomic.Uint64
	hsCompleted        atomic.Uint64
	hsPreviousPSK      atomic.Uint64
	cookieRepliesSent  atomic.Uint64
	fragNeededSent     atomic.Uint64
	drops              [NumDropReasons]atomic.Uint64
}

func (c *counters) drop(r DropReason) { c.drops[r].Add(1) }

// replayWindow is how far behind the highest counter accepted the replay
// window (golang.zx2c4.com/wireguard/replay) still tells a new counter from
// one seen before: its windowSize, (128 - 1) * 64.
const replayWindow = (128 - 1) * 64

// replayDrop is why the replay window refused counter, highest being the
// highest counter it accepted: too late (behind the window, so it cannot
// tell) or a replay (seen before).
func replayDrop(highest, counter uint64) DropReason {
	if counter < highest && highest-counter > replayWindow {
		return DropTooLate
	}
	return DropReplay
}

func (c *counters) snapshot() Counters {
	s := Counters{
		RxPackets: c.rxPackets.Load(), RxBytes: c.rxBytes.Load(),
		TxPackets: c.txPackets.Load(), TxBytes: c.txBytes.Load(),
		HandshakesInitiated: c.hsInitiated.Load(), HandshakesCompleted: c.hsCompleted.Load(),
		HandshakesPreviousPSK: c.hsPreviousPSK.Load(),
		CookieRepliesSent:     c.cookieRepliesSent.Load(), FragNeededSent: c.fragNeededSent.Load(),
	}
	for i := range s.Drops {
		s.Drops[i] = c.drops[i].Load()
	}
	return s
}
