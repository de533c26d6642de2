package node

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// DefaultSTUNPort is the registry's STUN port.
const DefaultSTUNPort = 3478

// discoverEndpoints returns what the node reports: its local addresses with
// the listen port, the public address:port the data plane's socket maps to
// (STUN, when the data plane can ask), and its SSH endpoint.
func (n *Node) discoverEndpoints(ctx context.Context) api.EndpointsRequest {
	eps := localEndpoints(n.ifname, n.cfg.State.MeshCIDR, n.listenPort)
	var req api.EndpointsRequest
	src, ok := n.eng.(EndpointSource)
	if ok {
		if srv, ok := n.stunServer(); ok {
			// Short: a node whose UDP is blocked must not report late.
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			pub, err := src.PublicAddr(sctx, srv)
			cancel()
			switch {
			case err != nil:
				n.log.Debug("stun", "server", srv, "err", err)
			case !slices.Contains(eps, pub) && usableEndpoint(pub.Addr(), n.cfg.State.MeshCIDR):
				eps = append(eps, pub)
				if len(eps) > api.MaxEndpoints {
					eps = eps[len(eps)-api.MaxEndpoints:]
				}
			}
		}
		adv := n.cfg.SSHAdvertise
		if adv.IsValid() && adv.Addr().IsUnspecified() {
			// ":PORT": the first local address.
			adv = netip.AddrPort{}
			if len(eps) > 0 {
				adv = netip.AddrPortFrom(eps[0].Addr(), n.cfg.SSHAdvertise.Port())
			}
		}
		if l := src.SSHListenAddr(); !l.IsValid() && n.cfg.SSHAdvertise.IsValid() {
			// An SSH server next to the agent (OpenSSH or a standalone
			// sshgw) forwards to the data plane's packet port.
			req.SSHEndpoint = adv
			if o := n.cfg.SSHOpenSSH; o != nil && adv.IsValid() {
				hk := o.HostKey
				req.SSHHostKey, req.SSHUser, req.SSHPacketPort = &hk, o.User, o.PacketPort
			}
		} else if l.IsValid() {
			req.SSHEndpoint = adv
			if !req.SSHEndpoint.IsValid() {
				a := l.Addr()
				if a.IsUnspecified() && len(eps) > 0 {
					a = eps[0].Addr()
				}
				if !a.IsUnspecified() {
					req.SSHEndpoint = netip.AddrPortFrom(a, l.Port())
				}
			}
		}
	}
	if e := req.SSHEndpoint; e.IsValid() && !usableEndpoint(e.Addr().Unmap(), n.cfg.State.MeshCIDR) {
		// The registry refuses loopback, link-local and unspecified
		// endpoints; one of them would cost the node its whole report.
		n.log.Warn("ssh endpoint not reported: not reachable from other hosts", "endpoint", e)
		req.SSHEndpoint, req.SSHHostKey, req.SSHUser, req.SSHPacketPort = netip.AddrPort{}, nil, "", 0
	}
	req.Endpoints = eps
	return req
}

// stunServer is Config.STUN, or the host of the registry replica in use on
// DefaultSTUNPort.
func (n *Node) stunServer() (netip.AddrPort, bool) {
	s := n.cfg.STUN
	switch s {
	case "off":
		return netip.AddrPort{}, false
	case "":
		u, err := url.Parse(n.client.Current())
		if err != nil || u.Hostname() == "" {
			return netip.AddrPort{}, false
		}
		s = net.JoinHostPort(u.Hostname(), strconv.Itoa(DefaultSTUNPort))
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, false
	}
	addrs, err := net.LookupHost(host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, false
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(addrs[0], port))
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// watchInterfaces returns a channel that gets a value (coalesced, 200 ms
// after the last event) whenever an address is added or removed on this
// host, so endpoints are rediscovered at once. Without netlink (not Linux,
// no permission) the channel never fires and the periodic refresh remains.
// The watcher stops when ctx ends; wait waits for that.
func (n *Node) watchInterfaces(ctx context.Context) (changed <-chan struct{}, wait func()) {
	out := make(chan struct{}, 1)
	var wg sync.WaitGroup
	updates := make(chan netlink.AddrUpdate, 16)
	done := make(chan struct{})
	if err := netlink.AddrSubscribeWithOptions(updates, done, netlink.AddrSubscribeOptions{
		ErrorCallback: func(err error) { n.log.Debug("address watch", "err", err) },
	}); err != nil {
		n.log.Debug("address watch unavailable", "err", err)
		return out, wg.Wait
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		var debounce <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-updates:
				if !ok {
					return
				}
				if u.LinkAddress.IP.IsLinkLocalUnicast() || u.LinkAddress.IP.IsLoopback() {
					continue
				}
				if ifc, err := net.InterfaceByName(n.ifname); err == nil && ifc.Index == u.LinkIndex {
					continue // the mesh interface's own address
				}
				debounce = time.After(200 * time.Millisecond)
			case <-debounce:
				debounce = nil
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out, wg.Wait
}

// networkChanged drops what may be bound to a vanished address: idle
// registry connections and the data plane's relay connections.
func (n *Node) networkChanged() {
	n.log.Info("host addresses changed; rediscovering endpoints")
	n.client.HTTP.CloseIdleConnections()
	if src, ok := n.eng.(EndpointSource); ok {
		src.NetworkChanged()
	}
}
