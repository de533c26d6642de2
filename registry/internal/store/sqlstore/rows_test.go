package sqlstore

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

var (
	now  = time.Unix(1700000000, 0)
	cidr = netip.MustParsePrefix("10.1.0.0/24")
)

func key(b byte) nodekey.PublicKey {
	var k nodekey.PublicKey
	for i := range k {
		k[i] = b
	}
	return k
}

func TestNodeRowRoundTrip(t *testing.T) {
	hk := key(2)
	for _, tc := range []struct {
		name string
		node store.Node
	}{
		{"bare", store.Node{ID: "n1", Name: "a", PublicKey: key(1), SecretHash: []byte("h"), TokenID: "t", CreatedAt: now, LastSeen: now}},
		{"every field", store.Node{ID: "n2", Name: "b", PublicKey: key(1), SecretHash: []byte("h"),
			Endpoints:   []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:51820"), netip.MustParseAddrPort("[2001:db8::1]:51820")},
			SSHEndpoint: netip.MustParseAddrPort("192.0.2.1:22"), SSHHostKey: &hk, SSHUser: "mesh", SSHPacketPort: 65535,
			Tags: []string{"db"}, Services: []api.Service{{Name: "dns", Protocol: "udp", Port: 53}},
			TokenID: "t", CreatedAt: now, LastSeen: now.Add(time.Minute), HomeRelay: "r-a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.node.IP = netip.MustParseAddr("10.1.0.8")
			row, err := EncodeNode(&tc.node, 7)
			if err != nil {
				t.Fatal(err)
			}
			if row.Endpoints == "" || row.Tags == "" || row.Services == "" {
				t.Fatalf("EncodeNode left a list column empty: %+v", row)
			}
			got, err := row.Node(cidr)
			if err != nil || !reflect.DeepEqual(got, tc.node) {
				t.Fatalf("EncodeNode then Node = %+v, %v;\nwant %+v", got, err, tc.node)
			}
		})
	}
}

// A stored value out of its range is an error that names the node and
// the column.
func TestNodeRowRejectsBadValues(t *testing.T) {
	good := func() NodeRow {
		n := store.Node{ID: "n1", Name: "a", PublicKey: key(1), CreatedAt: now}
		r, err := EncodeNode(&n, 0)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tc := range []struct {
		name   string
		mangle func(*NodeRow)
		want   string
	}{
		{"packet port", func(r *NodeRow) { r.SSHPacketPort = 65536 }, "ssh packet port 65536 out of range"},
		{"negative packet port", func(r *NodeRow) { r.SSHPacketPort = -1 }, "ssh packet port -1 out of range"},
		{"key size", func(r *NodeRow) { r.PublicKey = []byte{1} }, "stored key has 1 bytes"},
		{"negative index", func(r *NodeRow) { r.IPIndex = -1 }, "address index -1 out of range"},
		{"index past the prefix", func(r *NodeRow) { r.IPIndex = 254 }, "host index 254 out of range"},
		{"endpoints", func(r *NodeRow) { r.Endpoints = "[1" }, "endpoints"},
		{"ssh endpoint", func(r *NodeRow) { r.SSHEndpoint = "nowhere" }, "ssh endpoint"},
		{"tags", func(r *NodeRow) { r.Tags = "{}" }, "tags"},
		{"services", func(r *NodeRow) { r.Services = "x" }, "services"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good()
			tc.mangle(&r)
			_, err := r.Node(cidr)
			if err == nil || !strings.Contains(err.Error(), "node n1") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Node() = %v, want an error naming node n1 and %q", err, tc.want)
			}
		})
	}
	// A host key of another size is no host key (an sshgw endpoint).
	r := good()
	r.SSHHostKey = []byte{}
	if n, err := r.Node(cidr); err != nil || n.SSHHostKey != nil {
		t.Fatalf("Node() with an empty host key = %v, %v; want none", n.SSHHostKey, err)
	}
}

func TestTokenRow(t *testing.T) {
	tok := store.Token{ID: "t1", SecretHash: []byte("h"), Reusable: true, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	row, err := EncodeToken(tok)
	if err != nil || row.Tags != "[]" || row.ExpiresAt != now.Add(time.Hour).UnixNano() {
		t.Fatalf("EncodeToken = %+v, %v", row, err)
	}
	got, err := row.Token()
	tok.Tags = []string{} // listed tokens show an empty list, not none
	if err != nil || !reflect.DeepEqual(got, tok) {
		t.Fatalf("Token() = %+v, %v; want %+v", got, err, tok)
	}
	row.ExpiresAt = 0
	if got, _ := row.Token(); !got.ExpiresAt.IsZero() {
		t.Fatalf("Token() without expiry = %v, want zero", got.ExpiresAt)
	}
	row.Tags = "nope"
	if _, err := row.Token(); err == nil || !strings.Contains(err.Error(), "token t1 tags") {
		t.Fatalf("Token() with broken tags = %v", err)
	}
}

func TestMeshAndPSKRows(t *testing.T) {
	m, err := MeshRow{ID: "m", CIDR: "10.1.0.0/24", PSK: []byte("k"), CreatedAt: now.UnixNano()}.Mesh()
	if err != nil || m.CIDR != cidr || !m.CreatedAt.Equal(now) {
		t.Fatalf("Mesh() = %+v, %v", m, err)
	}
	if _, err := (MeshRow{CIDR: "10.1.0.0"}).Mesh(); err == nil || !strings.Contains(err.Error(), "stored mesh prefix") {
		t.Fatalf("Mesh() with a broken prefix = %v", err)
	}
	if err := CheckCIDRChange(cidr, netip.MustParsePrefix("10.2.0.0/24"), 0); err != nil {
		t.Fatalf("CheckCIDRChange without nodes = %v", err)
	}
	if err := CheckCIDRChange(cidr, netip.MustParsePrefix("10.2.0.0/24"), 3); !errors.Is(err, store.ErrCIDRChanged) {
		t.Fatalf("CheckCIDRChange with nodes = %v, want ErrCIDRChanged", err)
	}
	p := PSKRow{Current: []byte("c"), Previous: []byte{}, PreviousUntil: 5}.PSKs()
	if p.Previous != nil || !p.PreviousUntil.IsZero() {
		t.Fatalf("PSKs() without a previous = %+v; want none", p)
	}
	p = PSKRow{Current: []byte("c"), Previous: []byte("p"), PreviousUntil: now.UnixNano()}.PSKs()
	if string(p.Previous) != "p" || !p.PreviousUntil.Equal(now) || p.PreviousUntil.Location() != time.UTC {
		t.Fatalf("PSKs() = %+v", p)
	}
}
