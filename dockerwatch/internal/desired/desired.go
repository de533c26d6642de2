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
		return nil, "not on a network the node's namespace is attached to (networks: " + strings.Join(networkNames(c), ", ") + ")"
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

// Port is a port and its protocol ("tcp" or "udp").
type Port struct {
	Port  uint16
	Proto string
	// Container is the container's port: Port for a label, the private
	// port of a port published on the host under auto_publish.
	Container uint16
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
// container's port.
func publishedPorts(c container.Summary) []Port {
	var out []Port
	for _, p := range c.Ports {
		if p.PublicPort == 0 || (p.Type != "tcp" && p.Type != "udp") {
			continue
		}
		pp := Port{Port: p.PublicPort, Proto: p.Type, Container: p.PrivatePort}
		if !slices.Contains(out, pp) { // once per address family
			out = append(out, pp)
		}
	}
	return out
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
