// Package dialer is a node's side of the SSH transport: it connects to a
// peer's SSH endpoint with golang.org/x/crypto/ssh, authenticates with the
// node key, always verifies the server's host key against the one expected
// for that peer, and opens a packet stream (sshgw/frame framing):
//
//   - ModeSSHGW: the "tunnelmesh-packets@tunnelmesh" channel of a TunnelMesh
//     SSH server (sshgw/server); the host key is the peer's node key from the
//     netmap;
//   - ModeDirectTCPIP: a direct-tcpip channel, through an existing OpenSSH
//     server that lists the node key in authorized_keys, to the peer agent's
//     packet port (sshgw/packetport) on its loopback; the host key is the one
//     the peer published for that server.
//
// Dial makes one connection; Client keeps one up, redialling with backoff.
// Neither ever accepts an unknown host key: there is no trust on first use.
package dialer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/sshgw/internal/link"
	"github.com/tunnelmesh/tunnelmesh/sshgw/server"
)

// Mode selects what the dialer opens on the SSH connection.
type Mode int

const (
	// ModeSSHGW opens the tunnelmesh-packets channel of an sshgw server.
	ModeSSHGW Mode = iota
	// ModeDirectTCPIP opens a direct-tcpip channel to Config.PacketPort.
	ModeDirectTCPIP
)

func (m Mode) String() string {
	switch m {
	case ModeSSHGW:
		return "sshgw"
	case ModeDirectTCPIP:
		return "direct-tcpip"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// Defaults for Config fields left zero.
const (
	DefaultTimeout   = 10 * time.Second
	DefaultKeepAlive = 15 * time.Second
)

// Errors; check them with errors.Is.
var (
	ErrQueueFull    = link.ErrQueueFull
	ErrClosed       = link.ErrClosed
	ErrNotConnected = errors.New("ssh transport not connected")
	ErrHostKey      = errors.New("ssh host key does not match the expected key")
)

// Stats are a connection's counters: packets sent, received, and refused by
// Send because the queue was full.
type Stats = link.Stats

// Config configures Dial and Client.
type Config struct {
	// Addr is the peer's SSH endpoint, "host:port".
	Addr string
	// Key is this node's key; the dialer authenticates with it.
	Key nodekey.PrivateKey
	// HostKey is the host key the server must present: the peer's node key
	// (nodekey.PublicKey.SSH()) for ModeSSHGW, the peer's published OpenSSH
	// host key for ModeDirectTCPIP. Required.
	HostKey ssh.PublicKey
	// User is the SSH user name. Default "tunnelmesh" (for OpenSSH, the
	// account whose authorized_keys lists the node key).
	User string
	// Mode selects the channel.
	Mode Mode
	// PacketPort is the peer agent's packet port, reached through the
	// OpenSSH server (ModeDirectTCPIP only); PacketHost defaults to
	// 127.0.0.1.
	PacketPort uint16
	PacketHost string
	// OnPacket receives every packet from the peer; it is called from one
	// goroutine per connection and pkt is valid only during the call.
	// Required.
	OnPacket func(pkt []byte)
	// QueueLen is the send queue length. Default 512.
	QueueLen int
	// Timeout bounds the TCP connect, the SSH handshake and the channel open.
	Timeout time.Duration
	// KeepAlive is the interval of keepalive requests; a connection that
	// does not answer one within Timeout is closed.
	KeepAlive time.Duration
	// MinBackoff and MaxBackoff bound Client's wait between attempts
	// (exponential with jitter). Defaults 250 ms and 15 s.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives connection events. Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("addr %q: want host:port", c.Addr)
	}
	if c.Key.IsZero() {
		return errors.New("key: required")
	}
	if c.HostKey == nil {
		return errors.New("host key: required (an unknown host key is never accepted)")
	}
	if c.OnPacket == nil {
		return errors.New("on packet: required")
	}
	switch c.Mode {
	case ModeSSHGW:
	case ModeDirectTCPIP:
		if c.PacketPort == 0 {
			return errors.New("packet port: required for direct-tcpip")
		}
		if c.PacketHost == "" {
			c.PacketHost = "127.0.0.1"
		}
	default:
		return fmt.Errorf("mode %d: unknown", c.Mode)
	}
	if c.User == "" {
		c.User = server.User
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 250 * time.Millisecond
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(15*time.Second, c.MinBackoff)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// hostKeyAlgorithms returns the algorithms that make the server present a key
// of k's type (a server may hold several host keys).
func hostKeyAlgorithms(k ssh.PublicKey) []string {
	switch k.Type() {
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	default:
		return []string{k.Type()}
	}
}

// Conn is one SSH transport connection to a peer.
type Conn struct {
	client *ssh.Client
	link   *link.Link
	done   chan struct{}
	err    error // set before done closes
	wg     sync.WaitGroup
}

// Dial connects to the peer and opens the packet channel. Close the Conn
// when done; it closes itself when the connection fails (see Done and Err).
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("ssh dial: %w", err)
	}
	return dial(ctx, &cfg)
}

func dial(ctx context.Context, cfg *Config) (*Conn, error) {
	signer, err := cfg.Key.Signer()
	if err != nil {
		return nil, fmt.Errorf("ssh dial: %w", err)
	}
	want := cfg.HostKey
	sshCfg := &ssh.ClientConfig{
		User: cfg.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(_ string, _ net.Addr, got ssh.PublicKey) error {
			if got.Type() != want.Type() || string(got.Marshal()) != string(want.Marshal()) {
				return fmt.Errorf("%w: got %s, want %s", ErrHostKey, ssh.FingerprintSHA256(got), ssh.FingerprintSHA256(want))
			}
			return nil
		},
		HostKeyAlgorithms: hostKeyAlgorithms(want),
		Timeout:           cfg.Timeout,
		ClientVersion:     "SSH-2.0-TunnelMesh",
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	d := net.Dialer{KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("ssh dial %s: %w", cfg.Addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	// The handshake and channel open honour ctx through the deadline.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	sc, chans, reqs, err := ssh.NewClientConn(nc, cfg.Addr, sshCfg)
	if err != nil {
		stop()
		nc.Close()
		return nil, fmt.Errorf("ssh handshake with %s: %w", cfg.Addr, err)
	}
	client := ssh.NewClient(sc, chans, reqs)
	ch, creqs, err := openChannel(client, cfg)
	if !stop() || err != nil {
		client.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("ssh open %s channel at %s: %w", cfg.Mode, cfg.Addr, err)
	}
	nc.SetDeadline(time.Time{})
	c := &Conn{client: client, link: link.New(ch, cfg.QueueLen), done: make(chan struct{})}
	c.wg.Add(3)
	go func() { defer c.wg.Done(); ssh.DiscardRequests(creqs) }()
	go func() {
		defer c.wg.Done()
		err := c.link.Run(cfg.OnPacket)
		client.Close()
		c.err = err
		close(c.done)
	}()
	go func() { defer c.wg.Done(); c.keepAlive(cfg) }()
	return c, nil
}

func openChannel(client *ssh.Client, cfg *Config) (ssh.Channel, <-chan *ssh.Request, error) {
	if cfg.Mode == ModeSSHGW {
		return client.OpenChannel(server.ChannelType, nil)
	}
	// RFC 4254 7.2 direct-tcpip: host and port to connect to, then the
	// originator's address and port.
	orig := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	if la, ok := client.LocalAddr().(*net.TCPAddr); ok {
		orig = la.AddrPort()
	}
	payload := ssh.Marshal(struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}{cfg.PacketHost, uint32(cfg.PacketPort), orig.Addr().Unmap().String(), uint32(orig.Port())})
	return client.OpenChannel("direct-tcpip", payload)
}

func (c *Conn) keepAlive(cfg *Config) {
	t := time.NewTicker(cfg.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		replied := make(chan error, 1)
		go func() {
			// OpenSSH and sshgw both answer (with failure) any request
			// they do not know; an answer is what proves the peer alive.
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			replied <- err
		}()
		select {
		case err := <-replied:
			if err != nil {
				c.link.Close()
				return
			}
		case <-time.After(cfg.Timeout):
			c.link.Close()
			<-replied // returns once the closed connection fails it
			return
		case <-c.done:
			<-replied
			return
		}
	}
}

// Send queues pkt (copied) without blocking: ErrQueueFull when the queue is
// full, ErrClosed after the connection ended.
func (c *Conn) Send(pkt []byte) error { return c.link.Send(pkt) }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended (nil after Close or a clean close by
// the peer); valid after Done is closed.
func (c *Conn) Err() error {
	<-c.done
	return c.err
}

// Stats returns the connection's counters.
func (c *Conn) Stats() Stats { return c.link.Stats() }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() netip.AddrPort {
	if ta, ok := c.client.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	return netip.AddrPort{}
}

// Close closes the connection and waits for its goroutines.
func (c *Conn) Close() error {
	c.link.Close()
	c.wg.Wait()
	return nil
}
