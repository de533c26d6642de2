package meshdns

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/fall"
	"github.com/miekg/dns"

	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

// Name is the plugin's name in a Corefile.
const Name = "meshdns"

// MeshDNS is the plugin: it answers mesh names from the last netmap it
// received from the registry. Create it through the Corefile (setup); its
// watch runs between OnStartup and OnShutdown.
type MeshDNS struct {
	Next plugin.Handler
	// Zones are the origins the plugin looks at (its arguments, or the
	// server block's zones). Inside them it answers the mesh zone and the
	// reverse zones of the mesh prefix and passes everything else on.
	Zones   []string
	origins map[string]struct{} // Zones, for lookups
	// Fall lists the zones where names unknown to the netmap go to the next
	// plugin instead of getting NXDOMAIN.
	Fall fall.F

	zone       string        // mesh zone set in the Corefile; "" follows the netmap
	ttl        uint32        // TTL of every record and the SOA minimum
	staleAfter time.Duration // registry outage after which Ready reports false; 0: never
	creds      regclient.Credentials

	table        atomic.Pointer[table]
	failingSince atomic.Int64 // unix nanoseconds of the first failure since the last success; 0 when healthy

	mu      sync.Mutex // guards the fields below
	cancel  context.CancelFunc
	done    chan struct{}
	client  *regclient.Client
	lastLog time.Time // last "still unreachable" log line
}

// Name implements plugin.Handler.
func (m *MeshDNS) Name() string { return Name }

// Ready implements ready.Readiness. It is false until the first netmap has
// arrived, and false again while the registry has been unreachable for longer
// than the stale option (answers keep coming from the last netmap meanwhile).
func (m *MeshDNS) Ready() bool {
	if m.table.Load() == nil {
		return false
	}
	since := m.failingSince.Load()
	return m.staleAfter <= 0 || since == 0 || time.Since(time.Unix(0, since)) < m.staleAfter
}

// ServeDNS implements plugin.Handler.
func (m *MeshDNS) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if len(r.Question) != 1 {
		return plugin.NextOrFailure(m.Name(), m.Next, ctx, w, r)
	}
	q := r.Question[0]
	qname := lowerASCII(q.Name)
	// Mesh names never hold escapes; a name that does ("a\.mesh.", one
	// label) would fool the label walks below, so it is not ours.
	if q.Qclass != dns.ClassINET || strings.IndexByte(qname, '\\') >= 0 || !m.inOrigins(qname) {
		return plugin.NextOrFailure(m.Name(), m.Next, ctx, w, r)
	}
	t := m.table.Load()
	if t == nil {
		zone := m.zone
		if zone == "" {
			zone = DefaultZone
		}
		if dns.IsSubDomain(zone, qname) {
			countQuery(ctx, resultNoNetmap)
			return dns.RcodeServerFailure, nil
		}
		return plugin.NextOrFailure(m.Name(), m.Next, ctx, w, r)
	}
	zone := t.zoneOf(qname)
	if zone == "" {
		return plugin.NextOrFailure(m.Name(), m.Next, ctx, w, r)
	}

	e, ok := t.names[qname]
	if !ok && m.Fall.Through(qname) {
		countQuery(ctx, resultFallthrough)
		return plugin.NextOrFailure(m.Name(), m.Next, ctx, w, r)
	}

	msg := new(dns.Msg)
	msg.SetReply(r)
	msg.Authoritative = true
	result := resultAnswer
	switch {
	case !ok:
		msg.Rcode = dns.RcodeNameError
		msg.Ns = []dns.RR{t.soa(zone)}
		result = resultNXDomain
	default:
		owner := q.Name // the question's own spelling
		apex := qname == zone
		qtype := q.Qtype
		if qtype == dns.TypeA || qtype == dns.TypeANY {
			msg.Answer = appendCopies(msg.Answer, owner, e.a)
		}
		if qtype == dns.TypeSRV || qtype == dns.TypeANY {
			msg.Answer = appendCopies(msg.Answer, owner, e.srv)
			if len(e.srv) > 0 {
				msg.Extra = appendCopies(msg.Extra, "", e.extra)
			}
		}
		if qtype == dns.TypePTR || qtype == dns.TypeANY {
			msg.Answer = appendCopies(msg.Answer, owner, e.ptr)
		}
		if apex && (qtype == dns.TypeSOA || qtype == dns.TypeANY) {
			msg.Answer = appendCopies(msg.Answer, owner, []dns.RR{t.soa(zone)})
		}
		if apex && (qtype == dns.TypeNS || qtype == dns.TypeANY) {
			ns, extra := t.nsRecords(zone)
			msg.Answer = appendCopies(msg.Answer, owner, ns)
			msg.Extra = appendCopies(msg.Extra, "", extra)
		}
		if len(msg.Answer) == 0 {
			msg.Ns = []dns.RR{t.soa(zone)}
			result = resultNoData
		}
	}
	countQuery(ctx, result)
	if err := w.WriteMsg(msg); err != nil {
		return dns.RcodeServerFailure, plugin.Error(Name, err)
	}
	return msg.Rcode, nil
}

// appendCopies appends copies of rrs to dst, renamed to owner unless owner is
// empty. The copies are shallow (an A record's address bytes are shared, as
// the hosts plugin shares them): enough to keep the table's headers intact
// whatever later plugins do to the answer's TTLs and names.
func appendCopies(dst []dns.RR, owner string, rrs []dns.RR) []dns.RR {
	for _, rr := range rrs {
		var c dns.RR
		switch rr := rr.(type) {
		case *dns.A:
			cp := *rr
			c = &cp
		case *dns.SRV:
			cp := *rr
			c = &cp
		case *dns.PTR:
			cp := *rr
			c = &cp
		default:
			c = dns.Copy(rr)
		}
		if owner != "" {
			c.Header().Name = owner
		}
		dst = append(dst, c)
	}
	return dst
}

// inOrigins reports whether name (a lowercase FQDN) is in one of the
// plugin's zones: a map lookup per label instead of plugin.Zones.Matches's
// label-by-label comparison with every zone.
func (m *MeshDNS) inOrigins(name string) bool {
	for n := name; ; {
		if _, ok := m.origins[n]; ok {
			return true
		}
		i := strings.IndexByte(n, '.')
		if i < 0 {
			return false
		}
		if i == len(n)-1 {
			n = "."
			if _, ok := m.origins[n]; ok {
				return true
			}
			return false
		}
		n = n[i+1:]
	}
}

// lowerASCII lowercases s without allocating when it is lowercase already.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
