package meshdns

import (
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/meshnet"
)

// DefaultZone is the mesh zone used when neither the Corefile nor the
// netmap names one.
const DefaultZone = "mesh."

// SOA timers. Serial is the netmap version; the minimum (the negative-caching
// TTL, RFC 2308) is the plugin's ttl.
const (
	soaRefresh = 7200
	soaRetry   = 1800
	soaExpire  = 86400
)

// table is an immutable index of one netmap: every name the plugin is
// authoritative for, with its records prebuilt. A new table replaces the old
// one atomically on every netmap; queries never lock.
type table struct {
	version uint64
	ttl     uint32
	zone    string              // forward zone, lowercase FQDN ("mesh.")
	zones   map[string]struct{} // zone and every reverse zone of the mesh prefix
	ns      []string            // NS targets (FQDNs under zone)
	names   map[string]*entry   // every existing name, including apexes and empty non-terminals
	nodes   int                 // nodes with an A record
	skipped int                 // nodes or services left out (invalid name or address)
}

// entry holds the records of one name. A name without records is an empty
// non-terminal or an apex: it exists (NODATA rather than NXDOMAIN).
type entry struct {
	a     []dns.RR
	srv   []dns.RR
	ptr   []dns.RR
	extra []dns.RR // additional section for SRV answers: the targets' A records
}

// normalizeZone turns s into a lowercase FQDN zone, or "" when s is not a
// usable zone (empty, the root, or not a domain name).
func normalizeZone(s string) string {
	z := strings.ToLower(dns.Fqdn(strings.TrimSpace(s)))
	if z == "." {
		return ""
	}
	if _, ok := dns.IsDomainName(z); !ok {
		return ""
	}
	return z
}

// buildTable indexes nm. zone overrides the netmap's DNS zone when not empty.
func buildTable(nm *api.Netmap, zone string, ttl uint32) *table {
	if zone == "" {
		zone = normalizeZone(nm.DNS.Zone)
	}
	if zone == "" {
		zone = DefaultZone
	}
	t := &table{
		version: nm.Version,
		ttl:     ttl,
		zone:    zone,
		zones:   map[string]struct{}{zone: {}},
		names:   map[string]*entry{zone: {}},
	}
	var reverse []string
	if meshnet.Validate(nm.MeshCIDR) == nil {
		reverse = meshnet.ReverseZones(nm.MeshCIDR)
		for _, z := range reverse {
			t.zones[z] = struct{}{}
			t.names[z] = &entry{}
		}
	}

	nodes := make([]api.Node, 0, 1+len(nm.Peers))
	nodes = append(nodes, nm.Self)
	nodes = append(nodes, nm.Peers...)
	byIP := make(map[netip.Addr]string, len(nodes))
	services := map[string][]netip.Addr{} // service name -> addresses of the nodes publishing it
	for _, n := range nodes {
		name := api.NormalizeName(n.Name)
		if api.ValidateName(name) != nil || !n.IP.Is4() {
			t.skipped++
			continue
		}
		host := name + "." + zone
		if _, dup := t.names[host]; dup {
			t.skipped++ // the registry keeps names unique; never answer two addresses for one
			continue
		}
		a := t.aRecord(host, n.IP)
		t.add(host, zone).a = []dns.RR{a}
		t.nodes++
		if _, seen := byIP[n.IP]; !seen {
			byIP[n.IP] = host
		}
		if nm.MeshCIDR.Contains(n.IP) && len(reverse) > 0 {
			rev := meshnet.PTRName(n.IP)
			if rz := t.zoneOf(rev); rz != "" && rz != zone {
				e := t.add(rev, rz)
				e.ptr = append(e.ptr, &dns.PTR{Hdr: t.hdr(rev, dns.TypePTR), Ptr: host})
			}
		}
		for _, svc := range t.addServices(host, n, a) {
			// Only the admin gives tags: publishing a service alone does
			// not put a node into the mesh-wide name.
			if hasTag(n.Tags, svc) && !slices.Contains(services[svc], n.IP) {
				services[svc] = append(services[svc], n.IP)
			}
		}
	}
	t.addMeshServices(services)

	t.addMeshWide(nodes)

	for _, ip := range nm.DNS.Servers {
		if host, ok := byIP[ip]; ok && !slices.Contains(t.ns, host) {
			t.ns = append(t.ns, host)
		}
	}
	if len(t.ns) == 0 {
		if host, ok := byIP[nm.Self.IP]; ok {
			t.ns = []string{host}
		} else {
			t.ns = []string{"ns." + zone} // no usable self record: a name nobody resolves, but a valid SOA
		}
	}
	slices.Sort(t.ns)
	return t
}

// addMeshServices adds <service>.<zone> (A) with the address of every node
// publishing the service and holding the tag of the same name, unless a
// node has that name (a node's own name wins).
func (t *table) addMeshServices(services map[string][]netip.Addr) {
	for svc, ips := range services {
		name := svc + "." + t.zone
		if e, ok := t.names[name]; ok && len(e.a) > 0 {
			continue
		}
		slices.SortFunc(ips, netip.Addr.Compare)
		e := t.add(name, t.zone)
		for _, ip := range ips {
			e.a = append(e.a, t.aRecord(name, ip))
		}
	}
}

// hasTag reports whether tags holds tag ("nfs" or "tag:nfs"), ignoring case.
func hasTag(tags []string, tag string) bool {
	return slices.ContainsFunc(tags, func(t string) bool {
		return strings.EqualFold(strings.TrimPrefix(t, "tag:"), tag)
	})
}

// addServices adds <service>.<host> (A) and _<service>._<proto>.<host> (SRV)
// for each valid service of n, and returns the valid services' names.
func (t *table) addServices(host string, n api.Node, a dns.RR) []string {
	var names []string
	for _, s := range n.Services {
		svc := api.NormalizeName(s.Name)
		proto := strings.ToLower(s.Protocol)
		if api.ValidateName(svc) != nil || (proto != "tcp" && proto != "udp") || s.Port == 0 {
			t.skipped++
			continue
		}
		names = append(names, svc)
		name := svc + "." + host
		if e := t.add(name, t.zone); len(e.a) == 0 {
			e.a = []dns.RR{t.aRecord(name, n.IP)}
		}
		srvName := "_" + svc + "._" + proto + "." + host
		e := t.add(srvName, t.zone)
		if slices.ContainsFunc(e.srv, func(r dns.RR) bool { return r.(*dns.SRV).Port == s.Port }) {
			continue
		}
		e.srv = append(e.srv, &dns.SRV{Hdr: t.hdr(srvName, dns.TypeSRV), Port: s.Port, Target: host})
		if len(e.extra) == 0 {
			e.extra = []dns.RR{a}
		}
	}
	return names
}

// meshWideServices are named directly under the zone as well: <service>.<zone>
// (A: every node publishing it) and _<service>._<proto>.<zone> (SRV), so
// clients need not know which node runs them ("storage.mesh").
var meshWideServices = []string{api.ServiceStorage}

// addMeshWide adds the names of meshWideServices, unless a node holds the
// name (node names win).
func (t *table) addMeshWide(nodes []api.Node) {
	for _, svc := range meshWideServices {
		name := svc + "." + t.zone
		if e, ok := t.names[name]; ok && len(e.a) > 0 {
			continue
		}
		for _, n := range nodes {
			host := api.NormalizeName(n.Name) + "." + t.zone
			he, ok := t.names[host]
			if !ok || len(he.a) == 0 || he.a[0].(*dns.A).A.String() != n.IP.String() {
				continue // left out above
			}
			for _, s := range n.Services {
				proto := strings.ToLower(s.Protocol)
				if api.NormalizeName(s.Name) != svc || (proto != "tcp" && proto != "udp") || s.Port == 0 {
					continue
				}
				e := t.add(name, t.zone)
				if !slices.ContainsFunc(e.a, func(r dns.RR) bool { return r.(*dns.A).A.Equal(n.IP.AsSlice()) }) {
					e.a = append(e.a, t.aRecord(name, n.IP))
				}
				srvName := "_" + svc + "._" + proto + "." + t.zone
				se := t.add(srvName, t.zone)
				se.srv = append(se.srv, &dns.SRV{Hdr: t.hdr(srvName, dns.TypeSRV), Port: s.Port, Target: host})
				se.extra = append(se.extra, he.a[0])
			}
		}
	}
}

// add returns the entry for name (in zone), creating it and its ancestors up
// to the zone (empty non-terminals) as needed.
func (t *table) add(name, zone string) *entry {
	e, ok := t.names[name]
	if !ok {
		e = &entry{}
		t.names[name] = e
	}
	for n := name; n != zone; {
		i := strings.IndexByte(n, '.')
		if i < 0 || i == len(n)-1 {
			break
		}
		n = n[i+1:]
		if _, ok := t.names[n]; !ok {
			t.names[n] = &entry{}
		}
	}
	return e
}

// zoneOf returns the zone of t that holds name (a lowercase FQDN), or "".
func (t *table) zoneOf(name string) string {
	for n := name; ; {
		if _, ok := t.zones[n]; ok {
			return n
		}
		i := strings.IndexByte(n, '.')
		if i < 0 || i == len(n)-1 {
			return ""
		}
		n = n[i+1:]
	}
}

func (t *table) hdr(name string, typ uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: t.ttl}
}

func (t *table) aRecord(name string, ip netip.Addr) *dns.A {
	b := ip.As4()
	return &dns.A{Hdr: t.hdr(name, dns.TypeA), A: net.IPv4(b[0], b[1], b[2], b[3]).To4()}
}

// soa returns the SOA record of zone.
func (t *table) soa(zone string) *dns.SOA {
	return &dns.SOA{
		Hdr:     t.hdr(zone, dns.TypeSOA),
		Ns:      t.ns[0],
		Mbox:    "hostmaster." + t.zone,
		Serial:  uint32(t.version),
		Refresh: soaRefresh,
		Retry:   soaRetry,
		Expire:  soaExpire,
		Minttl:  t.ttl,
	}
}

// nsRecords returns the NS records of zone and, for the additional section,
// the A records of their targets.
func (t *table) nsRecords(zone string) (ns, extra []dns.RR) {
	for _, target := range t.ns {
		ns = append(ns, &dns.NS{Hdr: t.hdr(zone, dns.TypeNS), Ns: target})
		if e, ok := t.names[target]; ok {
			extra = append(extra, e.a...)
		}
	}
	return ns, extra
}
