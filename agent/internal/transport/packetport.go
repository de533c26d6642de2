package transport

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/sshgw/packetport"
)

// Packet port: where packets arrive when a peer reaches this node through
// an OpenSSH server (a direct-tcpip channel to the port) or a standalone
// tunnelmesh-sshgw (a connection per peer). A connection does not say which
// peer it carries, and nothing it says is trusted: each connection gets an
// endpoint of its own (kind device.PathSSH), its packets enter the device
// like any others, and the device, once a packet from the endpoint
// authenticated as a peer's (device.PeerBinder), binds the endpoint to that
// peer. The device's answers to the endpoint go back on the connection;
// packets the device sends to the peer's SSH endpoint ("ssh:<key>") use the
// newest connection bound to the peer when this node has no other SSH
// connection to it.

// ppConn is one packet-port connection's state behind its Endpoint.
type ppConn struct {
	c    *packetport.Conn
	ssh  *SSH
	peer atomic.Pointer[nodekey.PublicKey] // set by BindPeer
}

func (pc *ppConn) alive() bool {
	select {
	case <-pc.c.Done():
		return false
	default:
		return true
	}
}

func (pc *ppConn) bound() (nodekey.PublicKey, bool) {
	if k := pc.peer.Load(); k != nil {
		return *k, true
	}
	return nodekey.PublicKey{}, false
}

// send sends on the connection, or, once it closed, to the peer it was
// bound to by whatever SSH connection the peer has now.
func (pc *ppConn) send(e *Endpoint, bufs [][]byte) error {
	if !pc.alive() {
		if k, ok := pc.bound(); ok {
			var first error
			for _, buf := range bufs {
				if err := pc.ssh.Send(k, buf); err != nil && first == nil {
					first = err
				}
			}
			return first
		}
		return packetport.ErrClosed
	}
	var first error
	for _, buf := range bufs {
		if err := pc.c.Send(buf); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (pc *ppConn) ready(e *Endpoint) bool {
	if pc.alive() {
		return true
	}
	k, ok := pc.bound()
	return ok && pc.ssh.Ready(k)
}

func (pc *ppConn) path(e *Endpoint) string {
	if pc.alive() {
		return "ssh in"
	}
	if k, ok := pc.bound(); ok {
		return pc.ssh.PathName(k)
	}
	return "ssh in (closed)"
}

// BindPeer implements device.PeerBinder: a packet from a packet-port
// connection authenticated as peer's. For other endpoints it does nothing.
func (e *Endpoint) BindPeer(peer nodekey.PublicKey) {
	pc := e.pp
	if pc == nil {
		return
	}
	if k := pc.peer.Load(); k != nil && *k == peer {
		return
	}
	pc.peer.Store(&peer)
	pc.ssh.bindPacketPort(peer, e)
}

var _ device.PeerBinder = (*Endpoint)(nil)

// PacketPort serves the packet port into a Bind.
type PacketPort struct {
	ln  *packetport.Listener
	b   *Bind
	ssh *SSH

	mu  sync.RWMutex // guards eps
	eps map[*packetport.Conn]*Endpoint
}

// ListenPacketPort binds the packet port on addr (a loopback ip:port) for
// b; packets the device sends to a connection's endpoint go back on it, and
// ssh routes packets for a peer bound to a connection.
func ListenPacketPort(addr string, b *Bind, ssh *SSH, log *slog.Logger) (*PacketPort, error) {
	p := &PacketPort{b: b, ssh: ssh, eps: make(map[*packetport.Conn]*Endpoint)}
	ln, err := packetport.Listen(packetport.Config{Addr: addr, OnPacket: p.onPacket, OnConn: p.onConn, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	p.ln = ln
	return p, nil
}

// Addr is the bound address.
func (p *PacketPort) Addr() netip.AddrPort { return p.ln.Addr() }

// Listener is the packet port's listener (Serve it, Close it).
func (p *PacketPort) Listener() *packetport.Listener { return p.ln }

func (p *PacketPort) onConn(c *packetport.Conn, up bool) {
	if up {
		ep := &Endpoint{b: p.b, kind: device.PathSSH, str: "ssh-in:packet-port#" + strconv.FormatUint(c.ID(), 10),
			pp: &ppConn{c: c, ssh: p.ssh}}
		p.mu.Lock()
		p.eps[c] = ep
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	ep := p.eps[c]
	delete(p.eps, c)
	p.mu.Unlock()
	if ep != nil {
		if k, ok := ep.pp.bound(); ok {
			p.ssh.unbindPacketPort(k, ep)
		}
	}
}

func (p *PacketPort) onPacket(c *packetport.Conn, pkt []byte) {
	p.mu.RLock()
	ep := p.eps[c]
	p.mu.RUnlock()
	if ep != nil {
		p.b.deliver(ep, pkt)
	}
}
