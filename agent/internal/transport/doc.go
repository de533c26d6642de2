// Package transport is the data plane's multi-transport bind (a
// device.KeyedBind): UDP (through an inner bind) plus the SSH transport and
// the WebSocket relay, whose endpoints are keyed by the peer's node key. The
// device (package device) sees one bind; its path selection ranks the
// endpoints (UDP > SSH > relay, device.PathEndpoint) and moves a peer
// between them only after authenticated packets, so the Noise session, and
// every connection in the tunnel, survives a change of path.
//
//	b := transport.NewBind(device.NewBind(true, 0))
//	relays := transport.NewRelays(transport.RelaysConfig{Key: k, Bind: b})
//	b.SetSender(device.PathRelay, relays)
//	ssh := transport.NewSSH(transport.SSHConfig{Key: k, Bind: b, Server: srv})
//	b.SetSender(device.PathSSH, ssh)
//	go relays.Run(ctx); go ssh.Run(ctx)
//	dev, _ := device.New(tun, b, cfg, log) // PeerConfig.Endpoints: device.UDPEndpoint(ap),
//	                                       // device.SSHEndpoint(key), device.RelayEndpoint(key)
//
// The bind also lets STUN answers through on the data plane's own UDP
// socket (so the learned public mapping is the data plane's): SendUDP sends
// a request, SetSTUNHandler receives the answers, which never reach the
// device. STUN success responses are told from tunnel messages by their
// first two bytes (0x01 0x01; tunnel messages have a zero second byte) and
// the magic cookie.
package transport
