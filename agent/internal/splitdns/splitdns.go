// Package splitdns points the system resolver at the mesh's DNS servers for
// the mesh zone (and the reverse zones of the mesh prefix) while the node
// runs, and puts everything back when it stops.
//
// Two backends:
//
//   - systemd-resolved: per-link DNS on the node's TUN interface through
//     resolvectl (servers, routing-only domains ~<zone> and ~<reverse zones>,
//     default-route off), so only mesh names go to the mesh servers; Close runs
//     `resolvectl revert <link>`. resolved forgets the settings by itself when
//     the link disappears, so a crashed node leaves nothing behind.
//   - /etc/resolv.conf: glibc has no split DNS, so the file is rewritten with
//     the mesh servers first and the original file after them, unchanged but
//     for "options rotate", which is dropped. The mesh DNS server forwards
//     every other name to its own upstreams, and the original servers stay as
//     fallback when the mesh servers cannot be reached. The original bytes,
//     permissions, owner and symlink-ness are saved in the state directory
//     before the first write and restored exactly on Close, or by the next
//     New after a crash, unless someone else has rewritten the file since.
//
// Mode off does nothing at all. Mode auto picks resolved when it runs and the
// system resolver goes through it, resolv.conf otherwise.
package splitdns

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/tunnelmesh/tunnelmesh/shared/logging"
	"github.com/tunnelmesh/tunnelmesh/shared/meshnet"
)

// Mode selects how the system resolver is configured.
type Mode string

// The modes. The zero Mode is ModeAuto.
const (
	ModeAuto       Mode = "auto"       // resolved if the system uses it, else resolv.conf
	ModeResolved   Mode = "resolved"   // systemd-resolved per-link DNS via resolvectl
	ModeResolvConf Mode = "resolvconf" // manage /etc/resolv.conf
	ModeOff        Mode = "off"        // leave the system resolver alone
)

// ParseMode parses a mode name; "" is ModeAuto.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return ModeAuto, nil
	case ModeAuto, ModeResolved, ModeResolvConf, ModeOff:
		return m, nil
	}
	return "", fmt.Errorf("dns mode %q: want auto, resolved, resolvconf or off", s)
}

// DefaultResolvConf is the file ModeResolvConf manages unless told otherwise.
const DefaultResolvConf = "/etc/resolv.conf"

// BackupFile is the name, inside Options.StateDir, of the saved original
// resolv.conf. It exists only while the file is rewritten.
const BackupFile = "resolv.conf.backup.json"

// ErrClosed is returned by Apply after Close.
var ErrClosed = errors.New("splitdns: manager closed")

// Options configure a Manager.
type Options struct {
	// Link is the node's TUN interface (tunnelmesh0). Required unless Mode
	// is off; resolved mode needs it to exist when Apply is called.
	Link string
	// StateDir holds BackupFile. Required for resolv.conf mode. When set, New
	// restores a resolv.conf left rewritten by a crashed run, whatever Mode.
	StateDir string
	// Logger gets a component=splitdns attribute; nil discards.
	Logger *slog.Logger
	// Mode; the zero value is ModeAuto.
	Mode Mode
	// ResolvConf is the file resolv.conf mode manages; DefaultResolvConf
	// when empty. Tests point it at a temporary file.
	ResolvConf string
	// Runner runs resolvectl; nil runs the real program (os/exec).
	Runner Runner

	// Test hooks; zero values mean the real system.
	resolvedDir string                         // /run/systemd/resolve
	nsswitch    string                         // /etc/nsswitch.conf
	linkIndex   func(name string) (int, error) // net.InterfaceByName(name).Index
}

// Config is the DNS part of a netmap.
type Config struct {
	// Zone is the mesh zone, "mesh" for names like db1.mesh. A trailing dot
	// is allowed; names are lowercased.
	Zone string
	// Servers are the mesh DNS servers. None means the mesh has no DNS:
	// Apply then undoes what an earlier Apply did.
	Servers []netip.Addr
	// MeshCIDR is the mesh prefix; its reverse zones go to the mesh servers
	// too. The zero Prefix means no reverse zones.
	MeshCIDR netip.Prefix
}

// enabled reports whether c asks for mesh DNS at all.
func (c Config) enabled() bool { return len(c.Servers) > 0 }

// normalize validates c and returns it lowercased, without trailing dot and
// with duplicate servers dropped, naming the bad field on error.
func (c Config) normalize() (Config, error) {
	var n Config
	for _, s := range c.Servers {
		switch {
		case !s.IsValid():
			return Config{}, fmt.Errorf("dns servers: invalid address")
		case s.Zone() != "":
			return Config{}, fmt.Errorf("dns servers: %s: address with zone", s)
		case s.IsUnspecified() || s.IsMulticast():
			return Config{}, fmt.Errorf("dns servers: %s: not a unicast address", s)
		}
		s = s.Unmap()
		if !slices.Contains(n.Servers, s) {
			n.Servers = append(n.Servers, s)
		}
	}
	if c.MeshCIDR.IsValid() {
		if err := meshnet.Validate(c.MeshCIDR); err != nil {
			return Config{}, fmt.Errorf("dns mesh cidr: %w", err)
		}
		n.MeshCIDR = c.MeshCIDR
	} else if c.MeshCIDR != (netip.Prefix{}) {
		return Config{}, fmt.Errorf("dns mesh cidr: invalid prefix")
	}
	zone := strings.ToLower(strings.TrimSuffix(c.Zone, "."))
	if zone == "" {
		if len(n.Servers) > 0 {
			return Config{}, fmt.Errorf("dns zone: empty while servers are set")
		}
		return n, nil
	}
	if err := validateZone(zone); err != nil {
		return Config{}, fmt.Errorf("dns zone %q: %w", c.Zone, err)
	}
	n.Zone = zone
	return n, nil
}

func (c Config) equal(o Config) bool {
	return c.Zone == o.Zone && c.MeshCIDR == o.MeshCIDR && slices.Equal(c.Servers, o.Servers)
}

// routeDomains are the names routed to the mesh servers, without trailing
// dots: the zone, then the reverse zones of the mesh prefix.
func (c Config) routeDomains() []string {
	d := []string{c.Zone}
	if c.MeshCIDR.IsValid() {
		for _, z := range meshnet.ReverseZones(c.MeshCIDR) {
			d = append(d, strings.TrimSuffix(z, "."))
		}
	}
	return d
}

// validateZone checks a lowercased name without trailing dot: labels of
// letters, digits and hyphens (RFC 1123), at most 253 characters.
func validateZone(z string) error {
	if len(z) > 253 {
		return errors.New("longer than 253 characters")
	}
	for _, l := range strings.Split(z, ".") {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("label %q: must be 1 to 63 characters", l)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("label %q: starts or ends with a hyphen", l)
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("label %q: only letters, digits and hyphens", l)
			}
		}
	}
	return nil
}

// backend is one way of configuring the system resolver. Calls are
// serialised by the Manager.
type backend interface {
	// apply makes the system resolve cfg (normalized, enabled); unchanged
	// config is a no-op.
	apply(cfg Config) error
	// revert undoes apply; without an earlier apply it does nothing.
	revert() error
}

// Manager keeps the system resolver pointed at the mesh DNS servers. Its
// methods are safe for concurrent use.
type Manager struct {
	mode Mode // the effective mode: resolved, resolvconf or off

	mu     sync.Mutex // guards the fields below
	b      backend    // nil in ModeOff
	closed bool
}

// New returns a Manager for opts. With Options.StateDir set it first restores
// a resolv.conf that a crashed run left rewritten (see the package doc). It
// changes nothing else until Apply.
func New(opts Options) (*Manager, error) {
	mode := opts.Mode
	if mode == "" {
		mode = ModeAuto
	}
	if _, err := ParseMode(string(mode)); err != nil {
		return nil, fmt.Errorf("splitdns: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	log := logging.Component(opts.Logger, "splitdns")
	if opts.ResolvConf == "" {
		opts.ResolvConf = DefaultResolvConf
	}
	if opts.Runner == nil {
		opts.Runner = execRunner
	}
	if opts.resolvedDir == "" {
		opts.resolvedDir = defaultResolvedDir
	}
	if opts.nsswitch == "" {
		opts.nsswitch = "/etc/nsswitch.conf"
	}
	if opts.linkIndex == nil {
		opts.linkIndex = interfaceIndex
	}
	if mode != ModeOff && opts.Link == "" {
		return nil, fmt.Errorf("splitdns: link: required unless mode is off")
	}
	if opts.StateDir != "" {
		if err := recoverResolvConf(opts.StateDir, log); err != nil {
			return nil, fmt.Errorf("splitdns: %w", err)
		}
	}
	m := &Manager{}
	if mode == ModeAuto {
		var why string
		mode, why = detect(opts)
		log.Info("dns mode chosen", "mode", mode, "reason", why)
	}
	m.mode = mode
	switch mode {
	case ModeResolved:
		m.b = &resolved{link: opts.Link, run: opts.Runner, linkIndex: opts.linkIndex, log: log}
	case ModeResolvConf:
		if opts.StateDir == "" {
			return nil, fmt.Errorf("splitdns: state dir: required for resolv.conf mode")
		}
		if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("splitdns: state dir: %w", err)
		}
		m.b = &resolvConf{path: opts.ResolvConf, backupPath: backupPath(opts.StateDir), log: log}
	}
	return m, nil
}

// Mode returns the mode in effect: ModeResolved, ModeResolvConf or ModeOff
// (never ModeAuto).
func (m *Manager) Mode() Mode { return m.mode }

// Apply makes the system resolve cfg.Zone and the reverse zones of
// cfg.MeshCIDR through cfg.Servers. It is idempotent and cheap when nothing
// changed; call it with each netmap. A Config without servers undoes earlier
// Applies. An invalid cfg is an error and changes nothing. In resolv.conf
// mode, a file that someone else rewrote since the last Apply is taken as the
// new original and the mesh servers are put back in front of it.
func (m *Manager) Apply(cfg Config) error {
	n, err := cfg.normalize()
	if err != nil {
		return fmt.Errorf("splitdns: apply: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if m.b == nil {
		return nil
	}
	if !n.enabled() {
		err = m.b.revert()
	} else {
		err = m.b.apply(n)
	}
	if err != nil {
		return fmt.Errorf("splitdns: apply: %w", err)
	}
	return nil
}

// Close undoes what Apply did: resolvectl revert, or the original
// resolv.conf restored byte for byte (unless someone else rewrote it since,
// which is then left alone). Later Applies return ErrClosed; a second Close
// does nothing.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	if m.b == nil {
		return nil
	}
	if err := m.b.revert(); err != nil {
		return fmt.Errorf("splitdns: close: %w", err)
	}
	return nil
}
