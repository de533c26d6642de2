// Package engine is the node's data plane as one piece: the packet filter
// (package filter), the transports (package transport: UDP, SSH, relays)
// and the device (package device), wired together and configured with one
// Config. The node (package node) never reaches past it; the engine never
// talks to the registry. The shape is tailscale's wgengine.Engine.Reconfig
// fed by wgcfg/nmcfg.
//
// # API
//
//	cfg, skipped := engine.FromNetmap(nm, local) // the netmap, converted once
//	e, err := engine.New(tunDev, cfg, opts, log) // opts: the node's flags
//	err = e.Reconfig(cfg)                        // every later netmap
//	st := e.Status()                             // device.Status + drops by name + filter counters
//	                                             // (with the TCP handshake histograms)
//	rtt, path, err := e.Ping(ctx, peerIP)
//	pub, err := e.PublicAddr(ctx, stunServer)    // STUN on the data plane's own socket
//	err = e.Close()                              // device (bind, TUN), then transports
//
// # The netmap path
//
// FromNetmap is the only place where api types become the data plane's:
// it checks and sorts the peers, fills in the coordinator's relay URL and
// gives each peer its endpoints as typed values (device.Endpoint: UDP
// addresses, IPv4 or IPv6, then SSH and relay endpoints known by the
// peer's key). Config holds the three parts' own configurations
// (device.Config, transport.Config, the api.Filter) and Reconfig hands each
// its part unchanged: filter first (a policy change applies with the
// netmap that carries it), then transport.Stack.Set, then device.Reconfig,
// where the bind turns each typed endpoint into its conn.Endpoint
// (device.Bind.UDPEndpoint, device.KeyedBind.KeyEndpoint) before
// peer.update. No endpoint is written as a string and parsed back.
//
//	regclient.Watch -> node.apply -> engine.FromNetmap -> Engine.Reconfig
//	    -> filter.SetFilter, transport.Stack.Set, device.Reconfig -> peer.update
//
// # Wiring
//
// The filter is the device's (device.Config.Filter, set here and nowhere
// else): the device parses each packet once (package packet) and calls
// Filter.Outbound with packets read from the TUN for a peer (so it learns
// the node's flows) and Filter.Inbound with decrypted ones before the TUN
// write. Options are the node's flags, fixed for the
// engine's life; everything else comes with Config.
package engine
