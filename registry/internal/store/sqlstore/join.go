package sqlstore

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/netip"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/meshnet"
)

// JoinTx is the statements Join runs, each in the store's write
// transaction (which serialises it with every other write, on every
// replica where replicas share the store).
type JoinTx interface {
	Leases
	// JoinToken reads token id's row (locking it where the store needs
	// that); ok is false when there is none.
	JoinToken(ctx context.Context, id string) (r TokenRow, ok bool, err error)
	// CountTokenUse adds one use to token id.
	CountTokenUse(ctx context.Context, id string) error
	// MeshPrefix returns the stored mesh prefix (ErrNoMesh).
	MeshPrefix(ctx context.Context) (netip.Prefix, error)
	// NodeByKey reads the node with the given public key; ok is false
	// when there is none.
	NodeByKey(ctx context.Context, key []byte) (r NodeRow, ok bool, err error)
	// NameHolder returns the public key of the node called name; ok is
	// false when there is none.
	NameHolder(ctx context.Context, name string) (key []byte, ok bool, err error)
	// InsertNode stores a new node.
	InsertNode(ctx context.Context, r NodeRow) error
	// UpdateNode rewrites node r.ID on a rejoin: every column but its
	// public key and creation time.
	UpdateNode(ctx context.Context, r NodeRow) error
	// Bump increments the mesh version and returns the new one; the
	// change touched the node with ID node only (store.Change).
	Bump(ctx context.Context, node string) (uint64, error)
}

// Join is store.Store's Join in the caller's transaction: on an error the
// caller rolls back, so a failed join changes nothing.
func Join(ctx context.Context, tx JoinTx, p store.JoinParams) (store.JoinResult, error) {
	tok, ok, err := tx.JoinToken(ctx, p.TokenID)
	if err != nil {
		return store.JoinResult{}, err
	}
	if !ok {
		return store.JoinResult{}, store.ErrTokenInvalid
	}
	tags, err := tok.Admit(p)
	if err != nil {
		return store.JoinResult{}, err
	}
	if err := tx.CountTokenUse(ctx, p.TokenID); err != nil {
		return store.JoinResult{}, err
	}
	cidr, err := tx.MeshPrefix(ctx)
	if err != nil {
		return store.JoinResult{}, err
	}
	// The node this key already is, if any.
	var existing *store.Node
	if row, ok, err := tx.NodeByKey(ctx, p.PublicKey[:]); err != nil {
		return store.JoinResult{}, err
	} else if ok {
		n, err := row.Node(cidr)
		if err != nil {
			return store.JoinResult{}, err
		}
		existing = &n
	}
	// The name must be free or already this key's.
	if holder, ok, err := tx.NameHolder(ctx, p.Name); err != nil {
		return store.JoinResult{}, err
	} else if ok && subtle.ConstantTimeCompare(holder, p.PublicKey[:]) != 1 {
		return store.JoinResult{}, fmt.Errorf("%w: %q", store.ErrNameTaken, p.Name)
	}
	idx, err := Allocate(ctx, tx, cidr, p.PublicKey, p.Now)
	if err != nil {
		return store.JoinResult{}, err
	}
	ip, err := meshnet.HostAt(cidr, idx)
	if err != nil {
		return store.JoinResult{}, err
	}
	res := store.JoinResult{Node: JoinedNode(p, existing, tags, ip), Rejoined: existing != nil}
	row, err := EncodeNode(&res.Node, idx)
	if err != nil {
		return store.JoinResult{}, err
	}
	if existing != nil {
		err = tx.UpdateNode(ctx, row)
	} else {
		err = tx.InsertNode(ctx, row)
	}
	if err != nil {
		return store.JoinResult{}, err
	}
	if res.Version, err = tx.Bump(ctx, res.Node.ID); err != nil {
		return store.JoinResult{}, err
	}
	return res, nil
}

// Admit checks a join against the token's row and returns the token's
// tags, which the node gets; the error wraps store.ErrTokenInvalid when the
// token does not admit the join.
func (r TokenRow) Admit(p store.JoinParams) ([]string, error) {
	switch {
	case subtle.ConstantTimeCompare(r.SecretHash, p.TokenSecretHash[:]) != 1:
		return nil, store.ErrTokenInvalid
	case r.Revoked:
		return nil, fmt.Errorf("%w: revoked", store.ErrTokenInvalid)
	case r.ExpiresAt != 0 && p.Now.UnixNano() >= r.ExpiresAt:
		return nil, fmt.Errorf("%w: expired", store.ErrTokenInvalid)
	case !r.Reusable && r.Uses > 0:
		return nil, fmt.Errorf("%w: already used", store.ErrTokenInvalid)
	}
	return r.tags()
}

// JoinedNode is the node a join stores: a key that is a node already
// (existing) keeps its ID, creation time and, when p names none, its home
// relay; everything else comes from p, the token's tags and the allocated
// address.
func JoinedNode(p store.JoinParams, existing *store.Node, tags []string, ip netip.Addr) store.Node {
	n := store.Node{
		ID: p.NewNodeID, Name: p.Name, IP: ip, PublicKey: p.PublicKey, SecretHash: p.CredentialHash,
		Endpoints: p.Endpoints, SSHEndpoint: p.SSHEndpoint, SSHHostKey: p.SSHHostKey,
		SSHUser: p.SSHUser, SSHPacketPort: p.SSHPacketPort, Tags: tags,
		Services: p.Services, TokenID: p.TokenID, CreatedAt: p.Now, LastSeen: p.Now,
		HomeRelay: p.HomeRelay,
	}
	if len(n.Services) == 0 {
		n.Services = nil
	}
	if existing != nil {
		n.ID = existing.ID
		n.CreatedAt = existing.CreatedAt
		if n.HomeRelay == "" {
			n.HomeRelay = existing.HomeRelay
		}
	}
	return n
}
