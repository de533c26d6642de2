package sqlstore

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/meshnet"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// MeshRow is the mesh row's identity columns.
type MeshRow struct {
	ID        string
	CIDR      string
	PSK       []byte
	CreatedAt int64
}

// Dest is the scan destinations of mesh_id, cidr, psk, created_at.
func (r *MeshRow) Dest() []any { return []any{&r.ID, &r.CIDR, &r.PSK, &r.CreatedAt} }

// Mesh decodes the row.
func (r MeshRow) Mesh() (store.Mesh, error) {
	cidr, err := netip.ParsePrefix(r.CIDR)
	if err != nil {
		return store.Mesh{}, fmt.Errorf("stored mesh prefix %q: %w", r.CIDR, err)
	}
	return store.Mesh{ID: r.ID, CIDR: cidr, PSK: r.PSK, CreatedAt: time.Unix(0, r.CreatedAt)}, nil
}

// CheckCIDRChange reports whether the mesh prefix may change from stored
// to configured while nodes nodes exist (ErrCIDRChanged when not).
func CheckCIDRChange(stored, configured netip.Prefix, nodes int) error {
	if nodes > 0 {
		return fmt.Errorf("%w: stored %s, configured %s, %d nodes", store.ErrCIDRChanged, stored, configured, nodes)
	}
	return nil
}

// PSKRow is the mesh row's PSK columns.
type PSKRow struct {
	Current       []byte
	Previous      []byte
	PreviousUntil int64
}

// Dest is the scan destinations of psk, prev_psk, prev_psk_until.
func (r *PSKRow) Dest() []any { return []any{&r.Current, &r.Previous, &r.PreviousUntil} }

// PSKs decodes the row.
func (r PSKRow) PSKs() store.PSKs {
	p := store.PSKs{Current: r.Current}
	if len(r.Previous) > 0 {
		p.Previous = r.Previous
		p.PreviousUntil = time.Unix(0, r.PreviousUntil).UTC()
	}
	return p
}

// TokenRow is a tokens row.
type TokenRow struct {
	ID         string
	SecretHash []byte
	Reusable   bool
	Tags       string // JSON list
	CreatedAt  int64
	ExpiresAt  int64 // 0: never
	Uses       int64
	Revoked    bool
}

// Dest is the scan destinations of id, secret_hash, reusable, tags,
// created_at, expires_at, uses, revoked.
func (r *TokenRow) Dest() []any {
	return []any{&r.ID, &r.SecretHash, &r.Reusable, &r.Tags, &r.CreatedAt, &r.ExpiresAt, &r.Uses, &r.Revoked}
}

// EncodeToken is t's row (no uses, not revoked).
func EncodeToken(t store.Token) (TokenRow, error) {
	tags, err := EncodeList(t.Tags)
	if err != nil {
		return TokenRow{}, fmt.Errorf("token %s tags: %w", t.ID, err)
	}
	return TokenRow{ID: t.ID, SecretHash: t.SecretHash, Reusable: t.Reusable, Tags: tags,
		CreatedAt: t.CreatedAt.UnixNano(), ExpiresAt: UnixNano(t.ExpiresAt)}, nil
}

// Token decodes the row. A token's tags are an empty list, not nil, when
// it has none.
func (r TokenRow) Token() (store.Token, error) {
	tags, err := r.tags()
	if err != nil {
		return store.Token{}, err
	}
	return store.Token{ID: r.ID, SecretHash: r.SecretHash, Reusable: r.Reusable, Tags: tags,
		CreatedAt: time.Unix(0, r.CreatedAt), ExpiresAt: Time(r.ExpiresAt), Uses: int(r.Uses), Revoked: r.Revoked}, nil
}

func (r TokenRow) tags() ([]string, error) {
	var tags []string
	if err := json.Unmarshal([]byte(r.Tags), &tags); err != nil {
		return nil, fmt.Errorf("token %s tags: %w", r.ID, err)
	}
	return tags, nil
}

// NodeRow is a nodes row.
type NodeRow struct {
	ID            string
	Name          string
	PublicKey     []byte
	IPIndex       int64
	SecretHash    []byte
	Endpoints     string // JSON list of netip.AddrPort
	SSHEndpoint   string // AddrPortText
	SSHHostKey    []byte // nil: none
	SSHUser       string
	SSHPacketPort int64
	Tags          string // JSON list
	Services      string // JSON list of api.Service
	TokenID       string
	CreatedAt     int64
	LastSeen      int64 // 0: never
	// HomeRelay is kept by the stores that replicas share (store.Relays);
	// it is not among Dest's columns.
	HomeRelay string
}

// Dest is the scan destinations of id, name, public_key, ip_index,
// secret_hash, endpoints, ssh_endpoint, ssh_host_key, ssh_user,
// ssh_packet_port, tags, services, token_id, created_at, last_seen.
func (r *NodeRow) Dest() []any {
	return []any{&r.ID, &r.Name, &r.PublicKey, &r.IPIndex, &r.SecretHash, &r.Endpoints, &r.SSHEndpoint,
		&r.SSHHostKey, &r.SSHUser, &r.SSHPacketPort, &r.Tags, &r.Services, &r.TokenID, &r.CreatedAt, &r.LastSeen}
}

// EncodeNode is n's row with its address at host index idx.
func EncodeNode(n *store.Node, idx uint32) (NodeRow, error) {
	r := NodeRow{ID: n.ID, Name: n.Name, PublicKey: n.PublicKey[:], IPIndex: int64(idx), SecretHash: n.SecretHash,
		TokenID: n.TokenID, CreatedAt: n.CreatedAt.UnixNano(), LastSeen: n.LastSeen.UnixNano(), HomeRelay: n.HomeRelay}
	if err := r.PutEndpoints(n.Endpoints, n.SSH()); err != nil {
		return NodeRow{}, err
	}
	var err error
	if r.Tags, err = EncodeList(n.Tags); err != nil {
		return NodeRow{}, fmt.Errorf("node %s tags: %w", n.ID, err)
	}
	if r.Services, err = EncodeList(n.Services); err != nil {
		return NodeRow{}, fmt.Errorf("node %s services: %w", n.ID, err)
	}
	return r, nil
}

// PutEndpoints sets the endpoint and SSH columns (SetEndpoints' update).
func (r *NodeRow) PutEndpoints(eps []netip.AddrPort, ssh store.SSH) error {
	var err error
	if r.Endpoints, err = EncodeList(eps); err != nil {
		return fmt.Errorf("node %s endpoints: %w", r.ID, err)
	}
	r.SSHEndpoint = AddrPortText(ssh.Endpoint)
	r.SSHHostKey = HostKeyBytes(ssh.HostKey)
	r.SSHUser = ssh.User
	r.SSHPacketPort = int64(ssh.PacketPort)
	return nil
}

// Node decodes the row; cidr is the mesh prefix its address index is in.
// Empty lists decode as nil, and a stored value out of its range is an
// error naming the node.
func (r NodeRow) Node(cidr netip.Prefix) (store.Node, error) {
	n := store.Node{ID: r.ID, Name: r.Name, SecretHash: r.SecretHash, SSHUser: r.SSHUser, TokenID: r.TokenID,
		CreatedAt: time.Unix(0, r.CreatedAt), LastSeen: Time(r.LastSeen), HomeRelay: r.HomeRelay}
	if r.SSHPacketPort < 0 || r.SSHPacketPort > 65535 {
		return store.Node{}, fmt.Errorf("node %s: stored ssh packet port %d out of range", r.ID, r.SSHPacketPort)
	}
	n.SSHPacketPort = uint16(r.SSHPacketPort)
	if len(r.PublicKey) != nodekey.PublicKeySize {
		return store.Node{}, fmt.Errorf("node %s: stored key has %d bytes", r.ID, len(r.PublicKey))
	}
	copy(n.PublicKey[:], r.PublicKey)
	if len(r.SSHHostKey) == nodekey.PublicKeySize {
		var hk nodekey.PublicKey
		copy(hk[:], r.SSHHostKey)
		n.SSHHostKey = &hk
	}
	if r.IPIndex < 0 || r.IPIndex > int64(^uint32(0)) {
		return store.Node{}, fmt.Errorf("node %s: stored address index %d out of range", r.ID, r.IPIndex)
	}
	var err error
	if n.IP, err = meshnet.HostAt(cidr, uint32(r.IPIndex)); err != nil {
		return store.Node{}, fmt.Errorf("node %s: %w", r.ID, err)
	}
	if n.Endpoints, err = decodeList[netip.AddrPort](r.Endpoints); err != nil {
		return store.Node{}, fmt.Errorf("node %s endpoints: %w", r.ID, err)
	}
	if n.SSHEndpoint, err = ParseAddrPortText(r.SSHEndpoint); err != nil {
		return store.Node{}, fmt.Errorf("node %s ssh endpoint: %w", r.ID, err)
	}
	if n.Tags, err = decodeList[string](r.Tags); err != nil {
		return store.Node{}, fmt.Errorf("node %s tags: %w", r.ID, err)
	}
	if n.Services, err = decodeList[api.Service](r.Services); err != nil {
		return store.Node{}, fmt.Errorf("node %s services: %w", r.ID, err)
	}
	return n, nil
}
