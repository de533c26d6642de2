package meshdns

import (
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	clog "github.com/coredns/coredns/plugin/pkg/log"

	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

// Defaults of the Corefile options.
const (
	DefaultTTL        = 30               // seconds
	MaxTTL            = 3600             // seconds
	DefaultStaleAfter = 30 * time.Second // registry outage before Ready reports false
)

// log is CoreDNS's per-plugin logger: meshdns runs inside CoreDNS, whose log
// and debug plugins govern the output ("[INFO] plugin/meshdns: ...").
var log = clog.NewWithPlugin(Name)

func init() { plugin.Register(Name, setup) }

func setup(c *caddy.Controller) error {
	m, err := parse(c)
	if err != nil {
		return plugin.Error(Name, err)
	}
	c.OnStartup(m.OnStartup)
	c.OnShutdown(m.OnShutdown)
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		m.Next = next
		return m
	})
	return nil
}

// parse reads the meshdns block:
//
//	meshdns [ZONES...] {
//	    credentials FILE
//	    zone ZONE
//	    ttl SECONDS
//	    stale DURATION
//	    fallthrough [ZONES...]
//	}
func parse(c *caddy.Controller) (*MeshDNS, error) {
	m := &MeshDNS{ttl: DefaultTTL, staleAfter: DefaultStaleAfter}
	var credsPath string
	blocks := 0
	for c.Next() {
		if blocks++; blocks > 1 {
			return nil, plugin.ErrOnce
		}
		m.Zones = plugin.OriginsFromArgsOrServerBlock(c.RemainingArgs(), c.ServerBlockKeys)
		for c.NextBlock() {
			switch opt := c.Val(); opt {
			case "credentials":
				args := c.RemainingArgs()
				if len(args) != 1 {
					return nil, c.Errf("credentials: want one file, got %d arguments", len(args))
				}
				credsPath = args[0]
			case "zone":
				args := c.RemainingArgs()
				if len(args) != 1 {
					return nil, c.Errf("zone: want one zone, got %d arguments", len(args))
				}
				if m.zone = normalizeZone(args[0]); m.zone == "" {
					return nil, c.Errf("zone %q: not a domain name below the root", args[0])
				}
			case "ttl":
				args := c.RemainingArgs()
				if len(args) != 1 {
					return nil, c.Errf("ttl: want one number of seconds, got %d arguments", len(args))
				}
				n, err := strconv.ParseUint(args[0], 10, 32)
				if err != nil || n > MaxTTL {
					return nil, c.Errf("ttl %q: want seconds from 0 to %d", args[0], MaxTTL)
				}
				m.ttl = uint32(n)
			case "stale":
				args := c.RemainingArgs()
				if len(args) != 1 {
					return nil, c.Errf("stale: want one duration, got %d arguments", len(args))
				}
				d, err := time.ParseDuration(args[0])
				if err != nil || d < 0 {
					return nil, c.Errf("stale %q: want a duration such as 30s, or 0", args[0])
				}
				m.staleAfter = d
			case "fallthrough":
				m.Fall.SetZonesFromArgs(c.RemainingArgs())
			default:
				return nil, c.Errf("unknown property %q", opt)
			}
		}
	}
	if credsPath == "" {
		return nil, c.Err("credentials: a credentials file is required")
	}
	if !filepath.IsAbs(credsPath) {
		if root := dnsserver.GetConfig(c).Root; root != "" {
			credsPath = filepath.Join(root, credsPath)
		}
	}
	creds, err := regclient.LoadCredentials(credsPath)
	if err != nil {
		return nil, err
	}
	if _, err := regclient.New(creds); err != nil {
		return nil, fmt.Errorf("credentials %s: %w", credsPath, err)
	}
	m.creds = creds
	m.origins = make(map[string]struct{}, len(m.Zones))
	for _, z := range m.Zones {
		m.origins[z] = struct{}{}
	}
	return m, nil
}
