package desired

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Labels dockerwatch reads.
const (
	LabelExpose = "tunnelmesh.expose"
	LabelName   = "tunnelmesh.name"
	LabelAllow  = "tunnelmesh.allow"
)

// Service is one exposed port: Port on the node's mesh address forwards to
// Target.
type Service struct {
	Name      string         // DNS label: <Name>.<node>.<zone>
	Proto     string         // "tcp" or "udp"
	Port      uint16         // on the node's mesh address
	Target    netip.AddrPort // the container's address (or the host's published port)
	Allow     []string       // selectors from tunnelmesh.allow; empty: the policy's ceiling
	Container string         // container ID
	Via       string         // "label" or "auto_publish"
}

// Skip is a container that asked to be exposed (or would be under
// auto_publish) and is not, with the reason.
type Skip struct {
	Container string // container name
	Reason    string
}

// Options are the inputs besides the container list.
type Options struct {
	AutoPublish bool
	// Reachable are the networks of the node's namespace (its interfaces'
	// prefixes): a container is forwarded to its address in one of them.
	Reachable []netip.Prefix
	// Host is the Docker host as the node's namespace reaches it: the
	// namespace's IPv4 default gateway, which on a Docker bridge network is
	// the host's address on that network. A container on no network in
	// Reachable is forwarded through the host, to the host port it
	// publishes; invalid: no such forward.
	Host netip.Addr
}

// Compute returns the services of the running containers in list, sorted
// by protocol and port, and the containers skipped, sorted by name.
func Compute(list []container.Summary, o Options) ([]Service, []Skip) {
	// Oldest first, so that the container that claimed a port or name
	// first keeps it whatever order the engine lists them in.
	cs := slices.Clone(list)
	slices.SortFunc(cs, func(a, b container.Summary) int {
		return cmp.Or(cmp.Compare(a.Created, b.Created), cmp.Compare(a.ID, b.ID))
	})
	var out []Service
	var skips []Skip
	type key struct {
		proto string
		port  uint16
	}
	ports := map[key]string{}    // claimed by container name
	names := map[string]string{} // service name -> container ID
	for _, c := range cs {
		name := containerName(c)
		svcs, reason := services(c, o)
		if reason != "" {
			skips = append(skips, Skip{Container: name, Reason: reason})
			continue
		}
		if len(svcs) == 0 {
			continue
		}
		if owner, ok := names[svcs[0].Name]; ok && owner != c.ID {
			skips = append(skips, Skip{Container: name, Reason: fmt.Sprintf("service name %q is taken by an older container", svcs[0].Name)})
			continue
		}
		var taken []string
		for _, s := range svcs {
			if other, ok := ports[key{s.Proto, s.Port}]; ok {
				taken = append(taken, fmt.Sprintf("%d/%s (by %s)", s.Port, s.Proto, other))
			}
		}
		if len(taken) > 0 {
			skips = append(skips, Skip{Container: name, Reason: "port " + strings.Join(taken, ", ") + " already forwarded for an older container"})
			continue
		}
		names[svcs[0].Name] = c.ID
		for _, s := range svcs {
			ports[key{s.Proto, s.Port}] = name
		}
		out = append(out, svcs...)
	}
	slices.SortFunc(out, func(a, b Service) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port))
	})
	slices.SortFunc(skips, func(a, b Skip) int { return cmp.Compare(a.Container, b.Container) })
	return out, skips
}

// services returns c's services, or the reason it asked for some and gets
// none; nothing for a container that did not ask.
func services(c container.Summary, o Options) ([]Service, string) {
	expose, labelled := c.Labels[LabelExpose]
	published := publishedPorts(c)
	auto := !labelled && o.AutoPublish && len(published) > 0
	if !labelled && !auto {
		return nil, ""
	}
	if c.State != container.StateRunning {
		return nil, "" // not running: not exposed, nothing to say
	}
	switch mode := c.HostConfig.NetworkMode; {
	case mode == "host":
		return nil, "host network: the container shares the host's ports, there is no container address to forward to"
	case mode == "none":
		return nil, "network none: the container has no address to forward to"
	case strings.HasPrefix(mode, "container:"):
		return nil, "shares another container's network (" + mode + "): expose that container instead"
	}
	name, err := serviceName(c)
	if err != nil {
		return nil, err.Error()
	}
	allow, err := parseAllow(c.Labels[LabelAllow])
	if err != nil {
		return nil, err.Error()
	}
	var ports []Port
	via := "label"
	if labelled {
		if ports, err = ParseExpose(expose); err != nil {
			return nil, err.Error()
		}
	} else {
		via = "auto_publish"
		ports = published
	}
	addr, ok := reachableAddr(c, o.Reachable)
	if !ok {
		return throughHost(c, ports, labelled, o.Host, name, allow, via)
	}
	out := make([]Service, 0, len(ports))
	for _, p := range ports {
		out = append(out, Service{
			Name: name, Proto: p.Proto, Port: p.Port, Target: netip.AddrPortFrom(addr, p.Container),
			Allow: allow, Container: c.ID, Via: via,
		})
	}
	return out, ""
}

// throughHost returns the services of c, which is on no network of the
// node's namespace, forwarded to the host ports it publishes on host: each
// of ports must be published on an IPv4 address the namespace reaches
// through the host (every address, or a specific non-loopback one), else
// c gets none and the reason.
func throughHost(c container.Summary, ports []Port, labelled bool, host netip.Addr, name string, allow []string, via string) ([]Service, string) {
	notOn := "not attached to a network the agent's namespace is on (networks: " + strings.Join(networkNames(c), ", ") + ")"
	if !host.Is4() {
		return nil, notOn + ", and the namespace has no IPv4 default gateway to reach the host's published ports through"
	}
	out := make([]Service, 0, len(ports))
	for _, p := range ports {
		b, ok := p.binding, !labelled
		if labelled {
			b, ok = publishedAt(c, p.Container, p.Proto)
		}
		if !ok {
			return nil, fmt.Sprintf("%s, and port %d/%s is not published on the host (docker run -p)", notOn, p.Container, p.Proto)
		}
		target := host
		switch {
		case b.IP.Is4() && b.IP.IsLoopback():
			return nil, fmt.Sprintf("%s, and port %d/%s is published on the host's loopback only (%s), which the namespace cannot reach", notOn, p.Container, p.Proto, netip.AddrPortFrom(b.IP, b.PublicPort))
		case b.IP.IsValid() && !b.IP.Is4():
			return nil, fmt.Sprintf("%s, and port %d/%s is published on IPv6 only (%s)", notOn, p.Container, p.Proto, netip.AddrPortFrom(b.IP, b.PublicPort))
		case b.IP.Is4() && !b.IP.IsUnspecified():
			target = b.IP // published on one of the host's addresses only
		}
		out = append(out, Service{
			Name: name, Proto: p.Proto, Port: p.Port, Target: netip.AddrPortFrom(target, b.PublicPort),
			Allow: allow, Container: c.ID, Via: via,
		})
	}
	return out, ""
}

// Port is a port and its protocol ("tcp" or "udp").
type Port struct {
	Port  uint16
	Proto string
	// Container is the container's port: Port for a label, the private
	// port of a port published on the host under auto_publish.
	Container uint16
	// binding is where a port published on the host (auto_publish) is
	// bound.
	binding container.PortSummary
}

// ParseExpose parses a tunnelmesh.expose label: comma-separated PORT/PROTO
// (tcp or udp; a bare PORT is tcp), no port twice.
func ParseExpose(s string) ([]Port, error) {
	var out []Port
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		ps, proto, ok := strings.Cut(f, "/")
		if !ok {
			proto = "tcp"
		}
		proto = strings.ToLower(proto)
		if proto != "tcp" && proto != "udp" {
			return nil, fmt.Errorf("label %s: %q: protocol must be tcp or udp", LabelExpose, f)
		}
		n, err := strconv.ParseUint(ps, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("label %s: %q: port must be 1 to 65535", LabelExpose, f)
		}
		p := Port{Port: uint16(n), Proto: proto, Container: uint16(n)}
		if slices.Contains(out, p) {
			return nil, fmt.Errorf("label %s: %q listed twice", LabelExpose, f)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("label %s: %q: no ports (want e.g. 8080/tcp,5353/udp)", LabelExpose, s)
	}
	return out, nil
}

// publishedPorts returns the ports that c publishes on the host: under
// auto_publish the same port on the node's mesh address forwards to the
// container's port. One per host port and protocol (Docker lists a port
// published on every address once per address family): the IPv4 binding.
func publishedPorts(c container.Summary) []Port {
	var out []Port
	for _, b := range bindings(c) {
		out = append(out, Port{Port: b.PublicPort, Proto: b.Type, Container: b.PrivatePort, binding: b})
	}
	return out
}

// publishedAt returns the binding of c's port private/proto on the host
// (the lowest host port when it is published on several).
func publishedAt(c container.Summary, private uint16, proto string) (container.PortSummary, bool) {
	for _, b := range bindings(c) {
		if b.PrivatePort == private && b.Type == proto {
			return b, true
		}
	}
	return container.PortSummary{}, false
}

// bindings returns c's tcp and udp ports published on the host, one per
// host port and protocol (the binding the namespace reaches best, see
// reach), sorted by host port and protocol.
func bindings(c container.Summary) []container.PortSummary {
	var out []container.PortSummary
	for _, p := range c.Ports {
		if p.PublicPort == 0 || (p.Type != "tcp" && p.Type != "udp") {
			continue
		}
		i := slices.IndexFunc(out, func(o container.PortSummary) bool { return o.PublicPort == p.PublicPort && o.Type == p.Type })
		switch {
		case i < 0:
			out = append(out, p)
		case reach(p.IP) > reach(out[i].IP):
			out[i] = p
		}
	}
	slices.SortFunc(out, func(a, b container.PortSummary) int {
		return cmp.Or(cmp.Compare(a.PublicPort, b.PublicPort), cmp.Compare(a.Type, b.Type))
	})
	return out
}

// reach ranks a published port's host address by how well the node's
// namespace reaches it through the host: every IPv4 address or one that is
// not loopback, then IPv4 loopback, then IPv6 (none of these two).
func reach(a netip.Addr) int {
	switch {
	case a.Is4() && !a.IsLoopback():
		return 3
	case !a.IsValid():
		return 2 // Docker lists no address: every address
	case a.Is4():
		return 1
	}
	return 0
}

func containerName(c container.Summary) string {
	if len(c.Names) > 0 {
		return strings.TrimPrefix(c.Names[0], "/")
	}
	return c.ID
}

// serviceName is the label tunnelmesh.name, else the container name made
// into a DNS label (lower case, "_" and "." as "-").
func serviceName(c container.Summary) (string, error) {
	if n, ok := c.Labels[LabelName]; ok {
		n = api.NormalizeName(n)
		if err := api.ValidateName(n); err != nil {
			return "", fmt.Errorf("label %s: %v", LabelName, err)
		}
		return n, nil
	}
	n := strings.NewReplacer("_", "-", ".", "-").Replace(api.NormalizeName(containerName(c)))
	n = strings.Trim(n, "-")
	if err := api.ValidateName(n); err != nil {
		return "", fmt.Errorf("container name is no DNS label (%v): set the label %s", err, LabelName)
	}
	return n, nil
}

// parseAllow parses tunnelmesh.allow: comma-separated policy selectors
// (*, NODE, tag:NAME, group:NAME).
func parseAllow(s string) ([]string, error) {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		var err error
		switch {
		case f == "*":
		case strings.HasPrefix(f, "tag:"):
			err = api.ValidateName(strings.TrimPrefix(f, "tag:"))
		case strings.HasPrefix(f, "group:"):
			err = api.ValidateName(strings.TrimPrefix(f, "group:"))
		default:
			err = api.ValidateName(f)
		}
		if err != nil {
			return nil, fmt.Errorf("label %s: selector %q: %v (want *, a node name, tag:NAME or group:NAME)", LabelAllow, f, err)
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) > api.MaxSelectors {
		return nil, fmt.Errorf("label %s: %d selectors, at most %d", LabelAllow, len(out), api.MaxSelectors)
	}
	slices.Sort(out)
	return out, nil
}

// reachableAddr returns c's IPv4 address on a network whose prefix is one
// of reachable; the first by network name when several are.
func reachableAddr(c container.Summary, reachable []netip.Prefix) (netip.Addr, bool) {
	if c.NetworkSettings == nil {
		return netip.Addr{}, false
	}
	for _, n := range networkNames(c) {
		ep := c.NetworkSettings.Networks[n]
		if ep == nil || !ep.IPAddress.Is4() {
			continue
		}
		for _, p := range reachable {
			if p.Contains(ep.IPAddress) {
				return ep.IPAddress, true
			}
		}
	}
	return netip.Addr{}, false
}

func networkNames(c container.Summary) []string {
	if c.NetworkSettings == nil {
		return nil
	}
	var ns []string
	for n := range c.NetworkSettings.Networks {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns
}
