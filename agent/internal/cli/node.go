package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/engine"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/node"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/splitdns"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/state"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/tunif"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/logging"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	sshserver "github.com/tunnelmesh/tunnelmesh/sshgw/server"
)

// runFlags are the flags of the commands that run a node.
type runFlags struct {
	stateDir      string
	iface         string
	listenPort    uint
	mtu           int
	metricsListen string
	logLevel      string
	logFormat     string
	tunOffload    bool
	udpOffload    bool
	udpBatching   bool
	udpRcvbuf     int
	sshListen     string
	sshAdvertise  string
	packetPort    string
	sshHostKey    string
	sshUser       string
	stun          string
	relayProxy    string
	dns           bool
	dnsMode       string
	resolvConf    string
	advertiseDNS  bool
	advertiseS3   bool
	advertiseNFS  bool
	procs         int
}

func (f *runFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.stateDir, "state-dir", state.DefaultDir, "state directory (key, join record, local API socket)")
	fs.StringVar(&f.iface, "interface", "", "TUN interface name (default "+tunif.DefaultName+", or the one saved at join)")
	fs.UintVar(&f.listenPort, "listen-port", 0, "UDP port for tunnels (default: the one saved at join, else chosen by the system)")
	fs.IntVar(&f.mtu, "mtu", 0, "tunnel MTU (default: underlay MTU - 80, so 1420 on a 1500 network)")
	fs.StringVar(&f.metricsListen, "metrics-listen", node.MetricsOnMesh+"9101", "serve Prometheus metrics at http://ADDR/metrics: mesh:PORT (the node's mesh address, published as the service metrics-agent), HOST:PORT, or off")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&f.tunOffload, "tun-offload", true, "use TUN offloads (TSO/GSO, GRO); -tun-offload=false turns them off")
	fs.BoolVar(&f.udpOffload, "udp-offload", true, "use UDP GSO/GRO where the kernel offers them; -udp-offload=false turns them off")
	fs.BoolVar(&f.udpBatching, "udp-send-batching", true, "coalesce UDP sends (GSO); -udp-send-batching=false sends one packet per call")
	fs.IntVar(&f.udpRcvbuf, "udp-receive-buffer", 0, fmt.Sprintf("receive buffer of the tunnels' UDP sockets in bytes, %d to %d (0: %d); what arrives while the node is busy waits there, so a larger one holds more latency", minUDPReceiveBuffer, maxUDPReceiveBuffer, engine.DefaultUDPReceiveBuffer))
	fs.StringVar(&f.sshListen, "ssh-listen", "", "accept the SSH transport (sshgw inside the agent) on this TCP address, e.g. :2222; peers in the netmap may connect")
	fs.StringVar(&f.sshAdvertise, "ssh-advertise", "", "SSH endpoint IP:PORT reported to the registry, or :PORT for the node's first local address with PORT (default: the first local address with the --ssh-listen port); without --ssh-listen, the endpoint of an SSH server next to the agent that forwards to --packet-port: a standalone tunnelmesh-sshgw, or OpenSSH with --ssh-openssh-host-key")
	fs.StringVar(&f.packetPort, "packet-port", "", "serve the packet port on this loopback IP:PORT (e.g. 127.0.0.1:7600): peers' packets arrive there from an OpenSSH server (direct-tcpip) or a standalone tunnelmesh-sshgw")
	fs.StringVar(&f.sshHostKey, "ssh-openssh-host-key", "", "the --ssh-advertise endpoint is an OpenSSH server with this host key (a .pub file, e.g. /etc/ssh/ssh_host_ed25519_key.pub); peers log in as --ssh-user and open --packet-port with direct-tcpip")
	fs.StringVar(&f.sshUser, "ssh-user", "", "OpenSSH account whose authorized_keys lists the peers' node keys (default tunnelmesh; with --ssh-openssh-host-key)")
	fs.StringVar(&f.stun, "stun", "", "STUN server HOST:PORT for the public UDP address (default: the coordinator's host, port 3478); off: none")
	fs.StringVar(&f.relayProxy, "relay-proxy", "", "HTTP proxy for relay connections: http://HOST:PORT, direct, or empty for HTTPS_PROXY from the environment")
	fs.BoolVar(&f.dns, "dns", true, "point the system resolver at the mesh DNS servers for the mesh zone and its reverse zones (split DNS); --dns=false leaves the resolver alone")
	fs.StringVar(&f.dnsMode, "dns-mode", string(splitdns.ModeAuto), "how: auto (systemd-resolved when the system uses it, else resolv.conf), resolved, resolvconf or off")
	fs.StringVar(&f.resolvConf, "resolv-conf", "", "the file --dns-mode resolvconf manages (default "+splitdns.DefaultResolvConf+")")
	fs.IntVar(&f.procs, "procs", 0, "CPUs the node's own code may use at once (0: half of the CPUs available, at least 1; GOMAXPROCS in the environment replaces that default)")
	fs.BoolVar(&f.advertiseS3, "advertise-storage", false, "tunnelmesh-storage serves S3 on this node's mesh address (tcp 9000) and its credentials API (tcp 9001): publish both (storage.<node>.<zone>) and its /metrics on tcp 9104 (metrics-storage; the default policy opens 9104 to nodes tagged monitoring)")
	fs.BoolVar(&f.advertiseDNS, "advertise-dns", false, "tunnelmesh-meshdns answers on this node's mesh address, port 53: publish it (nodes with the dns tag become the mesh's DNS servers)")
	fs.BoolVar(&f.advertiseNFS, "advertise-nfs", false, "tunnelmesh-nfsd serves on this node's mesh address, tcp/2049: publish the service nfs (nfs.<node>.mesh, nfs.mesh; the default policy opens 2049 on nodes with the nfs tag) and its /metrics on tcp 9108 (metrics-nfsd)")
}

// dnsSettings returns the DNS mode and the services the node publishes.
func (f *runFlags) dnsSettings() (splitdns.Mode, []api.Service) {
	mode, _ := splitdns.ParseMode(f.dnsMode) // checked by check
	if !f.dns {
		mode = splitdns.ModeOff
	}
	var svcs []api.Service
	if f.advertiseDNS {
		svcs = append(svcs, api.Service{Name: api.ServiceDNS, Protocol: "udp", Port: 53})
	}
	if f.advertiseS3 {
		svcs = append(svcs, api.Service{Name: api.ServiceStorage, Protocol: "tcp", Port: api.StorageS3Port},
			api.Service{Name: api.ServiceStorageAuth, Protocol: "tcp", Port: api.StorageAuthPort},
			api.Service{Name: api.ServiceMetricsStorage, Protocol: "tcp", Port: api.StorageMetricsPort})
	}
	if f.advertiseNFS {
		svcs = append(svcs, api.Service{Name: api.ServiceNFS, Protocol: "tcp", Port: 2049},
			api.Service{Name: api.ServiceMetricsNFSD, Protocol: "tcp", Port: api.NFSDMetricsPort})
	}
	return mode, svcs
}

// metricsListenAddr is --metrics-listen as node.Config.MetricsListen
// takes it ("" for off).
func (f *runFlags) metricsListenAddr() string {
	if f.metricsListen == "off" {
		return ""
	}
	return f.metricsListen
}

func (f *runFlags) check() error {
	if f.listenPort > 65535 {
		return fmt.Errorf("--listen-port %d: must be at most 65535", f.listenPort)
	}
	if f.mtu != 0 && (f.mtu < tunif.MinMTU || f.mtu > tunif.MaxMTU) {
		return fmt.Errorf("--mtu %d: must be between %d and %d", f.mtu, tunif.MinMTU, tunif.MaxMTU)
	}
	if f.sshAdvertise != "" {
		if _, err := parseSSHAdvertise(f.sshAdvertise); err != nil {
			return err
		}
	}
	if f.sshListen != "" {
		if _, _, err := net.SplitHostPort(f.sshListen); err != nil {
			return fmt.Errorf("--ssh-listen %q: want [HOST]:PORT", f.sshListen)
		}
	}
	if f.packetPort != "" {
		ap, err := netip.ParseAddrPort(f.packetPort)
		if err != nil || !ap.Addr().IsLoopback() || ap.Port() == 0 {
			return fmt.Errorf("--packet-port %q: want a loopback IP:PORT with a port, e.g. 127.0.0.1:7600", f.packetPort)
		}
	}
	if f.sshAdvertise != "" && f.sshListen == "" && f.packetPort == "" {
		return errors.New("--ssh-advertise without --ssh-listen needs --packet-port (the SSH server next to the agent forwards there)")
	}
	if f.sshHostKey != "" {
		switch {
		case f.sshListen != "":
			return errors.New("--ssh-openssh-host-key and --ssh-listen exclude each other (the in-agent SSH server's host key is the node key)")
		case f.sshAdvertise == "":
			return errors.New("--ssh-openssh-host-key needs --ssh-advertise (the OpenSSH server's IP:PORT)")
		}
	}
	if f.sshUser != "" {
		if f.sshHostKey == "" {
			return errors.New("--ssh-user needs --ssh-openssh-host-key")
		}
		if err := api.ValidateSSHUser(f.sshUser); err != nil {
			return fmt.Errorf("--ssh-user: %w", err)
		}
	}
	if err := checkProcs(f.procs); err != nil {
		return err
	}
	if f.udpRcvbuf != 0 && (f.udpRcvbuf < minUDPReceiveBuffer || f.udpRcvbuf > maxUDPReceiveBuffer) {
		return fmt.Errorf("--udp-receive-buffer %d: must be 0 (the default) or %d to %d bytes", f.udpRcvbuf, minUDPReceiveBuffer, maxUDPReceiveBuffer)
	}
	if err := node.CheckMetricsListen(f.metricsListenAddr()); err != nil {
		return fmt.Errorf("--metrics-listen: %w", err)
	}
	if _, err := splitdns.ParseMode(f.dnsMode); err != nil {
		return fmt.Errorf("--dns-mode: %w", err)
	}
	if f.iface != "" {
		if err := (tunif.Config{Name: f.iface, MTU: tunif.MinMTU}).Validate(); err != nil && strings.HasPrefix(err.Error(), "interface") {
			return fmt.Errorf("--interface: %w", err)
		}
	}
	return nil
}

// parseSSHAdvertise parses --ssh-advertise: IP:PORT, or :PORT (the
// unspecified address: node.Config.SSHAdvertise then takes the node's first
// local address). "" is the zero AddrPort.
func parseSSHAdvertise(s string) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, nil
	}
	if rest, ok := strings.CutPrefix(s, ":"); ok {
		port, err := strconv.ParseUint(rest, 10, 16)
		if err != nil || port == 0 {
			return netip.AddrPort{}, fmt.Errorf("--ssh-advertise %q: want IP:PORT or :PORT", s)
		}
		return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(port)), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 || ap.Addr().IsUnspecified() {
		return netip.AddrPort{}, fmt.Errorf("--ssh-advertise %q: want IP:PORT or :PORT", s)
	}
	return ap, nil
}

// openSSH returns the node's OpenSSH endpoint (nil without
// --ssh-openssh-host-key), reading the host key file; check ran before.
func (f *runFlags) openSSH() (*node.OpenSSHEndpoint, error) {
	if f.sshHostKey == "" {
		return nil, nil
	}
	b, err := os.ReadFile(f.sshHostKey)
	if err != nil {
		return nil, fmt.Errorf("--ssh-openssh-host-key: %w", err)
	}
	hk, err := nodekey.ParsePublicKey(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("--ssh-openssh-host-key %s: %w (want an ssh-ed25519 public key line)", f.sshHostKey, err)
	}
	user := f.sshUser
	if user == "" {
		user = sshserver.User
	}
	pp, _ := netip.ParseAddrPort(f.packetPort) // checked by check
	return &node.OpenSSHEndpoint{HostKey: hk, User: user, PacketPort: pp.Port()}, nil
}

func (f *runFlags) logger(env Env) (*slog.Logger, error) {
	log, err := logging.New(env.Stderr, f.logLevel, f.logFormat)
	if err != nil {
		return nil, err
	}
	return log, nil
}

func runJoin(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "join", "--coordinator https://HOST:8443 --token TOKEN [flags]")
	var rf runFlags
	rf.register(fs)
	coord := fs.String("coordinator", "", "coordinator URL, https://HOST:8443 (required)")
	token := fs.String("token", "", "join token (from: tunnelmesh admin tokens create); other users see it in ps: prefer --token-file or TUNNELMESH_TOKEN in the environment")
	name := fs.String("name", "", "node name (default: the hostname)")
	keyPath := fs.String("key", "", "use this existing ed25519 key (e.g. ~/.ssh/id_ed25519) instead of generating one")
	tokenFile := fs.String("token-file", "", "read the join token from this file, waiting up to --token-wait for it to appear (instead of --token); a file still missing or empty then is an error")
	tokenWait := fs.Duration("token-wait", 2*time.Minute, "how long to wait for --token-file to appear")
	once := fs.Bool("once", false, "when the state directory already holds a join, start from it (like `up`) instead of joining again")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *coord == "" || *token == "" && *tokenFile == "" && os.Getenv(EnvToken) == "" {
		fmt.Fprintln(env.Stderr, "--coordinator and one of --token, --token-file or "+EnvToken+" are required")
		fs.Usage()
		return errUsage
	}
	if *token != "" && *tokenFile != "" {
		fmt.Fprintln(env.Stderr, "--token and --token-file exclude each other")
		fs.Usage()
		return errUsage
	}
	if err := rf.check(); err != nil {
		return err
	}
	if *name == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("no --name and no hostname: %w", err)
		}
		*name = hostnameToNodeName(h)
	}
	log, err := rf.logger(env)
	if err != nil {
		return err
	}
	dir := state.Dir(rf.stateDir)
	release, err := dir.Lock()
	if err != nil {
		return err
	}
	defer release()
	if *once {
		st, err := dir.LoadNode()
		if err == nil {
			log.Info("already joined, starting from the saved state", "component", "cli", "name", st.Name, "ip", st.IP, "state_dir", dir)
			return runNode(ctx, log, dir, st, rf)
		}
		if !errors.Is(err, state.ErrNotJoined) {
			return err
		}
	}
	if *token, err = joinToken(ctx, *token, *tokenFile, *tokenWait, os.Getenv); err != nil {
		return err
	}
	key, keyFile, err := dir.LoadKey(*keyPath)
	if err != nil {
		return err
	}
	jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, services := rf.dnsSettings()
	st, err := node.Join(jctx, node.JoinRequest{Coordinator: *coord, Token: *token, Name: *name, Key: key, KeyFile: keyFile, Services: services})
	cancel()
	if err != nil {
		return err
	}
	st.Interface = rf.iface
	st.ListenPort = uint16(rf.listenPort)
	st.MTU = rf.mtu
	if err := dir.SaveNode(st); err != nil {
		return err
	}
	log.Info("joined", "component", "cli", "name", st.Name, "ip", st.IP, "mesh", st.MeshID, "cidr", st.MeshCIDR,
		"key", key.Public().Fingerprint(), "state_dir", dir)
	return runNode(ctx, log, dir, st, rf)
}

func runUp(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "up", "[flags]")
	var rf runFlags
	rf.register(fs)
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if err := rf.check(); err != nil {
		return err
	}
	log, err := rf.logger(env)
	if err != nil {
		return err
	}
	dir := state.Dir(rf.stateDir)
	release, err := dir.Lock()
	if err != nil {
		return err
	}
	defer release()
	st, err := dir.LoadNode()
	if err != nil {
		return err
	}
	return runNode(ctx, log, dir, st, rf)
}

func runNode(ctx context.Context, log *slog.Logger, dir state.Dir, st state.Node, rf runFlags) error {
	key, _, err := dir.LoadKey(dir.KeyPath(st))
	if err != nil {
		return err
	}
	iface, port, mtu := st.Interface, st.ListenPort, st.MTU
	if rf.iface != "" {
		iface = rf.iface
	}
	if rf.listenPort != 0 {
		port = uint16(rf.listenPort)
	}
	if rf.mtu != 0 {
		mtu = rf.mtu
	}
	sshAdv, _ := parseSSHAdvertise(rf.sshAdvertise) // checked by rf.check
	openSSH, err := rf.openSSH()
	if err != nil {
		return err
	}
	dnsMode, services := rf.dnsSettings()
	applyProcs(rf.procs, log)
	n, err := node.New(node.Config{
		Dir: dir, State: st, Key: key,
		Interface: iface, MTU: mtu, ListenPort: port,
		MetricsListen: rf.metricsListenAddr(),
		NoTUNOffload:  !rf.tunOffload,
		Version:       version(),
		Log:           log,
		Engine: engine.Options{UDPOffload: rf.udpOffload, UDPReceiveBuffer: rf.udpRcvbuf, DisableUDPSendBatching: !rf.udpBatching,
			SSHListen: rf.sshListen, PacketPort: rf.packetPort, RelayProxy: rf.relayProxy},
		STUN:         rf.stun,
		SSHAdvertise: sshAdv,
		SSHOpenSSH:   openSSH,
		Services:     services,
		DNSMode:      dnsMode,
		ResolvConf:   rf.resolvConf,
	})
	if err != nil {
		return err
	}
	return n.Run(ctx)
}

// hostnameToNodeName turns a hostname into a valid node name: its first
// label, lowercased, with invalid characters replaced by hyphens.
func hostnameToNodeName(h string) string {
	h, _, _ = strings.Cut(api.NormalizeName(h), ".")
	b := []byte(h)
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			b[i] = '-'
		}
	}
	s := strings.Trim(string(b), "-")
	if len(s) > api.MaxNameLen {
		s = strings.Trim(s[:api.MaxNameLen], "-")
	}
	if s == "" {
		s = "node"
	}
	return s
}

// waitTokenFile reads a join token from path, waiting up to wait for the
// file to appear with a token in it (it may be written by a coordinator
// that is still starting).
// EnvToken is the environment variable join reads the token from when
// neither --token nor --token-file is given.
const EnvToken = "TUNNELMESH_TOKEN"

// Bounds of --udp-receive-buffer.
const (
	minUDPReceiveBuffer = 64 << 10
	maxUDPReceiveBuffer = 64 << 20
)

// joinToken returns the join token from flag (--token), else from file
// (--token-file, waiting up to wait for it), else from getenv(EnvToken).
// The file and the environment keep the token out of ps.
func joinToken(ctx context.Context, flag, file string, wait time.Duration, getenv func(string) string) (string, error) {
	switch {
	case flag != "" && file != "":
		return "", errors.New("join token: --token and --token-file exclude each other")
	case flag != "":
		return flag, nil
	case file != "":
		return waitTokenFile(ctx, file, wait)
	}
	if tok := strings.TrimSpace(getenv(EnvToken)); tok != "" {
		return tok, nil
	}
	return "", errors.New("join token: one of --token, --token-file or " + EnvToken + " is required")
}

func waitTokenFile(ctx context.Context, path string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(bytes.TrimSpace(b)) > 0 {
			return string(bytes.TrimSpace(b)), nil
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("--token-file %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			if err != nil {
				return "", fmt.Errorf("--token-file %s: no such file after %s", path, wait)
			}
			return "", fmt.Errorf("--token-file %s: empty after %s", path, wait)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
