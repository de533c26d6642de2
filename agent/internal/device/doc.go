// Package device is TunnelMesh's data plane engine: it moves IP packets
// between a TUN device and the node's peers over UDP, each pair of nodes on
// its own Noise IKpsk2 session (packages wire, handshake, cookie,
// ratelimit and wireguard-go's replay hold the protocol; package packet
// parses the packets). Its design follows wireguard-go's device/.
//
// # API
//
//	d, err := device.New(tunDev, device.NewBind(true, 0), cfg, logger) // opens UDP, starts
//	err = d.Reconfig(cfg)                 // declarative: peers added, updated, removed
//	st := d.Status()                      // per peer: name, IP, endpoint, path, last
//	                                      // handshake, rx/tx bytes and packets, RTT,
//	                                      // path latency and loss (PeerLatency)
//	c := d.Counters()                     // device counters, drops by DropReason
//	rtt, path, err := d.Ping(ctx, peerIP) // ICMP echo through the tunnel
//	err = d.Close()
//
// The Device owns tunDev and the bind from New on and closes both. tunDev
// is any golang.zx2c4.com/wireguard/tun.Device: CreateTUN (or tun.CreateTUN)
// on Linux, faketun in tests. The bind is a Bind: a
// golang.zx2c4.com/wireguard/conn.Bind that makes its endpoints from typed
// values. NewBind(true, 0) is conn.StdNetBind (recvmmsg/sendmmsg, UDP
// GSO/GRO), NewBind(false, 0) batches without offloads, memnet.Bind is an
// in-memory network for tests, transport.Bind adds SSH and relays (a
// KeyedBind). The device never talks to the registry: the caller (package
// engine) feeds it Config from the netmap.
//
// # Paths
//
// A peer's endpoints (PeerConfig.Endpoints) are typed values (Endpoint):
// UDP addresses, and the SSH and relay endpoints of package transport,
// known by the peer's key; the bind makes them (Bind.UDPEndpoint,
// KeyedBind.KeyEndpoint) once per Reconfig, with no string form in
// between. Handshakes go to all of them;
// a peer is then reachable over whatever answered, and the device keeps
// probing under the session to move it to the best path that works (UDP >
// SSH > relay), falling back when what it sent on the current path (traffic,
// or the probe an idle path gets every 5 s) goes unanswered for pathTimeout
// (2 s). An idle path is not a failed one: silence alone moves no peer.
// The rules are in paths.go; Status shows each peer's current path, every
// path it knows and how often it changed path. The probes on the current
// path (at least one every pathIdleProbe, idle or busy) measure its round
// trip times and loss (latency.go, PeerStatus.Latency).
//
// # Packet rules
//
//   - A decrypted packet is delivered only if its inner source address is the
//     sending peer's mesh IP (PeerConfig.IP) exactly: an IPv6 packet from the
//     IPv4-mapped form of it (::ffff:a.b.c.d) is not. Then only if
//     Config.Filter (if set) accepts it. A plaintext that is not a valid
//     IPv4 or IPv6 packet is dropped (DropMalformedInner).
//   - Each packet is parsed once (package packet), on either path, and
//     that parse serves the peer lookup, the allowed-IPs check, ping
//     replies, the filter, TUN GRO and the ICMP answers: the filter is
//     entered from the device only, Outbound for packets read from the TUN
//     that go to a peer, Inbound for packets about to be written to it.
//   - An echo reply completes a Ping only when it came through the session
//     of the peer that was pinged.
//   - The replay window moves and the peer's endpoint roams only after the
//     AEAD tag was checked.
//   - Every bad datagram is dropped and counted under a DropReason, never
//     disturbing a session; a removed peer's sessions are destroyed inside
//     Reconfig and its packets refused (DropUnknownIndex, DropUnknownKey)
//     from the moment Reconfig returns.
//   - Packets from the TUN for an address with no peer are dropped
//     (DropNoPeer); packets larger than Config.MTU are dropped (DropTooBig)
//     and answered with ICMP "fragmentation needed" (IPv4 with DF) or
//     "packet too big" (IPv6) written back into the TUN, so that the
//     sender's path MTU discovery works through the mesh (package icmp).
//   - Handshakes flooding in never starve established sessions: mac1 is
//     checked before any Diffie-Hellman, the handshake queue is bounded, and
//     when it fills up initiators must echo a cookie (mac2) and are rate
//     limited per source address; endpoints of the relay and SSH
//     transports have no source address, so there the cookie and the
//     bucket belong to the authenticated identity behind the endpoint
//     (the node key, or one packet-port connection). Handshake messages
//     of the wrong size are dropped before they are queued.
//   - When both sides initiate at once, the side with the greater static key
//     keeps its initiation and the other answers it: one session results.
//     The keeping side resends its pending initiation (the same bytes, once)
//     to where the other's came from, in case its own was lost (the other
//     did not know it yet): no one waits RekeyTimeout for a retransmission.
//     The initiation it ignores is recorded as consumed (its timestamp),
//     so a captured copy replayed later is refused as stale.
//   - An initiator's static key is looked up as soon as it is decrypted,
//     before the second Diffie-Hellman (package handshake).
//   - A change of mesh PSK (Config.PSK, PrevPSK, PrevPSKUntil: a rotation)
//     keeps established sessions; until PrevPSKUntil initiations made with
//     the previous PSK are accepted too, and retransmissions alternate
//     between the two.
//
// # Goroutines and queues
//
// Per device: one TUN reader, one reader per bind receive function, one TUN
// event drain, one pool trimmer, and per processor the Go scheduler may run
// at once (GOMAXPROCS, which the node sets: see cli.nodeProcs) an
// encryption, a decryption and a handshake worker. Per peer: a sequential sender, a sequential receiver
// and a timer goroutine. Packets travel in per-peer batches whose mutex is
// held until a crypto worker is done, so encryption runs on every core while
// each peer's packets leave and arrive in order. Elements come from bounded
// free lists (pools.go) that survive garbage collections: packets travel in
// 2 KiB buffers; 64 KiB ones are the UDP read slots (GRO) and the heads that
// UDP GSO runs and TUN GRO flows are coalesced into.
// The peer queues run FQ-CoDel (queue.go): packets of a flow with nothing
// queued (on receive: small datagrams) skip them, CoDel bounds them by
// sojourn time and a hard limit by count; PeerStatus.TxQueue and RxQueue
// hold their sojourn histograms and drops.
// The per-packet path does not allocate (TestPacketPathNoAlloc); the first
// quiet half second after load empties the lists and returns memory to the OS.
// Close stops everything in the order written on it.
//
// # Metrics
//
// Counters and Status are plain snapshots of atomic counters; the host
// exports them to Prometheus (drop reasons as the label values returned by
// DropReason.String).
package device
