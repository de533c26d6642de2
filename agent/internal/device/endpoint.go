package device

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// Endpoint is one way to reach a peer, as a typed value: a UDP address
// (IPv4 or IPv6), or the peer's SSH or relay endpoint, which the transports
// know by the peer's node key. The configuration carries endpoints in this
// form from the netmap to the bind (Bind.Endpoint); they are never written
// out as strings and parsed back.
type Endpoint struct {
	Kind PathKind
	// Addr is the UDP address (PathUDP only; IPv4-mapped IPv6 addresses
	// are unmapped by UDPEndpoint).
	Addr netip.AddrPort
	// Key is the peer's node key (PathSSH and PathRelay only).
	Key nodekey.PublicKey
}

// UDPEndpoint is the endpoint of a UDP address.
func UDPEndpoint(ap netip.AddrPort) Endpoint {
	return Endpoint{Kind: PathUDP, Addr: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}
}

// SSHEndpoint is the SSH transport's endpoint of the peer with key k.
func SSHEndpoint(k nodekey.PublicKey) Endpoint { return Endpoint{Kind: PathSSH, Key: k} }

// RelayEndpoint is the relay transport's endpoint of the peer with key k.
func RelayEndpoint(k nodekey.PublicKey) Endpoint { return Endpoint{Kind: PathRelay, Key: k} }

// String is for logs and errors: "udp 192.0.2.1:41641", "ssh <key>",
// "relay <key>". It is not a format any code parses.
func (e Endpoint) String() string {
	switch e.Kind {
	case PathUDP:
		return "udp " + e.Addr.String()
	case PathSSH, PathRelay:
		return e.Kind.String() + " " + e.Key.ShortID()
	}
	return "none"
}

// Validate reports what is wrong with e, if anything.
func (e Endpoint) Validate() error {
	switch e.Kind {
	case PathUDP:
		if !e.Addr.IsValid() || e.Addr.Port() == 0 {
			return fmt.Errorf("udp address %s invalid", e.Addr)
		}
	case PathSSH, PathRelay:
		if err := e.Key.Validate(); err != nil {
			return fmt.Errorf("%s endpoint: %w", e.Kind, err)
		}
	default:
		return fmt.Errorf("kind %d unknown", e.Kind)
	}
	return nil
}

// Bind is the conn.Bind a Device sends and receives through. Besides
// conn.Bind it makes its own endpoints from typed values, so the device
// turns a PeerConfig into endpoints without formatting or parsing strings.
// Every bind carries UDP.
type Bind interface {
	conn.Bind
	// UDPEndpoint returns the bind's endpoint for the UDP address ap; the
	// same address gives an endpoint the device treats as the same path.
	UDPEndpoint(ap netip.AddrPort) conn.Endpoint
}

// KeyedBind is a Bind that also carries transports whose endpoints are
// known by the peer's node key (SSH and relay: package transport).
type KeyedBind interface {
	Bind
	// KeyEndpoint returns the bind's endpoint of kind (PathSSH or
	// PathRelay) for the peer with key; ErrEndpointKind for a kind it does
	// not carry.
	KeyEndpoint(kind PathKind, key nodekey.PublicKey) (conn.Endpoint, error)
}

// ErrEndpointKind is returned for an endpoint of a kind the bind does not
// carry.
var ErrEndpointKind = errors.New("endpoint kind not carried by this bind")

// endpoint makes the bind's endpoint of e.
func (d *Device) endpoint(e Endpoint) (conn.Endpoint, error) {
	switch e.Kind {
	case PathUDP:
		return d.bind.UDPEndpoint(e.Addr), nil
	case PathSSH, PathRelay:
		if kb, ok := d.bind.(KeyedBind); ok {
			return kb.KeyEndpoint(e.Kind, e.Key)
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrEndpointKind, e.Kind)
}
