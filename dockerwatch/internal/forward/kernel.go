package forward

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/desired"
)

// Kernel installs the forward over netlink (no nft command needed), in one
// nftables transaction per call.
type Kernel struct {
	// NetNS is a file descriptor of the network namespace to act in; 0:
	// the current one.
	NetNS int
}

func (k Kernel) conn() (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if k.NetNS != 0 {
		opts = append(opts, nftables.WithNetNSFd(k.NetNS))
	}
	return nftables.New(opts...)
}

// Apply replaces Table with the forward of svcs to mesh, atomically: the
// table is created if missing, deleted and defined anew in one batch, so a
// refused batch changes nothing.
func (k Kernel) Apply(ctx context.Context, mesh netip.Addr, svcs []desired.Service) error {
	if len(svcs) > 0 && !mesh.Is4() {
		return fmt.Errorf("apply forward: node mesh address %v is not IPv4", mesh)
	}
	for _, s := range svcs {
		if (s.Proto != "tcp" && s.Proto != "udp") || !s.Target.Addr().Is4() {
			return fmt.Errorf("apply forward: service %s %d/%s to %v: want tcp or udp to an IPv4 address", s.Name, s.Port, s.Proto, s.Target)
		}
	}
	c, err := k.conn()
	if err != nil {
		return fmt.Errorf("apply forward: %w", err)
	}
	t := replaceTable(c)
	if len(svcs) > 0 {
		c.AddTable(t)
		nat := func(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
			return c.AddChain(&nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeNAT, Hooknum: hook, Priority: prio})
		}
		pre := nat("prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
		out := nat("output", nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
		post := nat("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
		for _, ch := range []*nftables.Chain{pre, out} {
			for _, s := range svcs {
				c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: dnatExprs(mesh, s)})
			}
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: masqExprs(mesh)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("apply forward: %w", err)
	}
	return nil
}

// Withdraw deletes Table.
func (k Kernel) Withdraw(ctx context.Context) error {
	c, err := k.conn()
	if err != nil {
		return fmt.Errorf("withdraw forward: %w", err)
	}
	replaceTable(c)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("withdraw forward: %w", err)
	}
	return nil
}

// replaceTable queues "table ip Table; delete table ip Table" (the first
// creates the table if it is missing so that the delete cannot fail) and
// returns the table for Apply to add again with its chains.
func replaceTable(c *nftables.Conn) *nftables.Table {
	t := &nftables.Table{Name: Table, Family: nftables.TableFamilyIPv4}
	c.AddTable(t)
	c.DelTable(t)
	return t
}

// ipsDstNAT is the conntrack status bit of a destination-NATed connection
// (IPS_DST_NAT in linux/netfilter/nf_conntrack_common.h).
const ipsDstNAT = 1 << 5

func port(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }

// dnatExprs is "ip daddr MESH PROTO dport PORT dnat to TARGET".
func dnatExprs(mesh netip.Addr, s desired.Service) []expr.Any {
	proto := byte(unix.IPPROTO_TCP)
	if s.Proto == "udp" {
		proto = unix.IPPROTO_UDP
	}
	m, dst := mesh.As4(), s.Target.Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: m[:]},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port(s.Port)},
		&expr.Immediate{Register: 1, Data: dst[:]},
		&expr.Immediate{Register: 2, Data: port(s.Target.Port())},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}

// masqExprs is "ct status dnat ct original ip daddr MESH masquerade".
func masqExprs(mesh netip.Addr) []expr.Any {
	m := mesh.As4()
	dnat := binary.NativeEndian.AppendUint32(nil, ipsDstNAT)
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: dnat, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		&expr.Ct{Register: 1, Key: expr.CtKeyDST, Direction: 0},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: m[:]},
		&expr.Masq{},
	}
}
