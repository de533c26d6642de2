// Package store is the registry's persistent state behind an interface: the
// mesh (ID, prefix, pre-shared key, netmap version), join tokens, nodes and
// their address leases. Package store/sqlite implements it on an embedded
// database (one registry), package store/postgres on PostgreSQL (several
// registry replicas on one database). Package store/storetest is the
// conformance suite both pass.
//
// Every method that changes what any node's netmap may show increments the
// mesh version in the same transaction and returns the new value.
package store

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// Errors the implementations return (wrapped); check with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrTokenInvalid  = errors.New("join token is unknown, used, expired or revoked")
	ErrNameTaken     = errors.New("node name is taken by another key")
	ErrRangeFull     = errors.New("no free address in the mesh prefix")
	ErrCIDRChanged   = errors.New("mesh prefix differs from the stored one while nodes exist")
	ErrAlreadyExists = errors.New("already exists")
)

// Mesh is the mesh's identity, created at first start and kept.
type Mesh struct {
	ID        string
	CIDR      netip.Prefix
	PSK       []byte
	CreatedAt time.Time
}

// PSKs are the mesh pre-shared key and, after a rotation, the previous one
// with the time until which it is still accepted.
type PSKs struct {
	Current       []byte
	Previous      []byte // nil when none
	PreviousUntil time.Time
}

// Token is a join token without its secret.
type Token struct {
	ID         string
	SecretHash []byte // SHA-256 of the secret
	Reusable   bool
	Tags       []string
	CreatedAt  time.Time
	ExpiresAt  time.Time // zero: never
	Uses       int
	Revoked    bool
}

// Node is a registered node.
type Node struct {
	ID          string
	Name        string
	IP          netip.Addr
	PublicKey   nodekey.PublicKey
	SecretHash  []byte // SHA-256 of the node credential's secret
	Endpoints   []netip.AddrPort
	SSHEndpoint netip.AddrPort
	SSHHostKey  *nodekey.PublicKey
	// SSHUser and SSHPacketPort go with SSHHostKey (an OpenSSH endpoint,
	// api.ValidateSSH).
	SSHUser       string
	SSHPacketPort uint16
	Tags          []string
	Services      []api.Service // what the node publishes (validated)
	TokenID       string        // token it last joined with
	CreatedAt     time.Time
	LastSeen      time.Time
	// HomeRelay is the relay the node listens on, recorded by a store
	// that replicas share (Relays); empty otherwise (the registry's own).
	HomeRelay string
}

// SSH is how peers reach a node over the SSH transport (api.Node's SSH
// fields): the endpoint, and for an OpenSSH server its host key, login user
// and the node's packet port.
type SSH struct {
	Endpoint   netip.AddrPort
	HostKey    *nodekey.PublicKey
	User       string
	PacketPort uint16
}

// SSH returns n's SSH fields.
func (n *Node) SSH() SSH {
	return SSH{Endpoint: n.SSHEndpoint, HostKey: n.SSHHostKey, User: n.SSHUser, PacketPort: n.SSHPacketPort}
}

// Equal reports whether a and b are the same.
func (a SSH) Equal(b SSH) bool {
	if (a.HostKey == nil) != (b.HostKey == nil) || (a.HostKey != nil && *a.HostKey != *b.HostKey) {
		return false
	}
	return a.Endpoint == b.Endpoint && a.User == b.User && a.PacketPort == b.PacketPort
}

// JoinParams is one join attempt.
type JoinParams struct {
	TokenID         string
	TokenSecretHash [32]byte
	Name            string
	PublicKey       nodekey.PublicKey
	Endpoints       []netip.AddrPort
	SSHEndpoint     netip.AddrPort
	SSHHostKey      *nodekey.PublicKey
	SSHUser         string
	SSHPacketPort   uint16
	Services        []api.Service
	// NewNodeID is used when the key is not registered yet; a re-joining
	// key keeps its node ID.
	NewNodeID string
	// CredentialHash replaces the node's credential secret hash.
	CredentialHash []byte
	Now            time.Time
	// HomeRelay, when set, is recorded as the relay the node listens on
	// (stores that keep it: Relays).
	HomeRelay string
}

// JoinResult is a successful join.
type JoinResult struct {
	Node     Node
	Version  uint64
	Rejoined bool // the key was already registered
}

// Store is the registry's state. Implementations are safe for concurrent use.
type Store interface {
	// InitMesh returns the stored mesh, creating it with cidr and a fresh
	// ID and PSK on first use. A different cidr is adopted when no node
	// exists (old leases are dropped), and otherwise is ErrCIDRChanged.
	InitMesh(ctx context.Context, cidr netip.Prefix, now time.Time) (Mesh, error)
	// Version returns the mesh version.
	Version(ctx context.Context) (uint64, error)
	// BumpVersion increments the mesh version.
	BumpVersion(ctx context.Context) (uint64, error)

	// CreateToken stores a new token (ErrAlreadyExists for a used ID).
	CreateToken(ctx context.Context, t Token) error
	// Tokens lists all tokens, oldest first.
	Tokens(ctx context.Context) ([]Token, error)
	// RevokeToken revokes a token; ErrNotFound for an unknown ID.
	RevokeToken(ctx context.Context, id string) error

	// Join consumes the token (atomically: a single-use token admits one
	// join however many race for it), registers or updates the node and
	// gives it an address: the one its key held before if any, else the
	// lowest free one. Nothing changes when it fails (ErrTokenInvalid,
	// ErrNameTaken, ErrRangeFull).
	Join(ctx context.Context, p JoinParams) (JoinResult, error)
	// Nodes returns the mesh version and every node, by name, read
	// consistently.
	Nodes(ctx context.Context) (uint64, []Node, error)
	// RemoveNode deletes the node with the given ID or name; its credential
	// stops working. Its address stays leased to its key until the range
	// needs it. In the same transaction the mesh PSK is rotated, so the
	// removed node's copy stops working: a fresh PSK becomes current and
	// the old current one stays accepted until prevPSKUntil. ErrNotFound
	// for an unknown node.
	RemoveNode(ctx context.Context, ref string, prevPSKUntil time.Time) (Node, uint64, error)
	// PSKs returns the mesh PSKs.
	PSKs(ctx context.Context) (PSKs, error)
	// SetEndpoints replaces a node's endpoints; ErrNotFound for an
	// unknown node.
	SetEndpoints(ctx context.Context, id string, eps []netip.AddrPort, ssh SSH) (uint64, error)
	// SetServices replaces the services a node publishes; ErrNotFound for
	// an unknown node.
	SetServices(ctx context.Context, id string, svcs []api.Service) (uint64, error)
	// Touch records that the node was heard from (no version change).
	Touch(ctx context.Context, id string, at time.Time) error

	// Close releases the store.
	Close() error
}

// Secrets is implemented by stores that several registry replicas share:
// what a node or an admin must trust on every replica (the admin
// credential, the TLS key and certificate whose pin is in every join
// token) lives in the store rather than in each replica's data directory.
type Secrets interface {
	// Secret returns the secret called name; when there is none it stores
	// create's value first. Replicas racing to create one agree on one
	// value (the first stored).
	Secret(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error)
}

// Changes is implemented by stores that several registry replicas share.
type Changes interface {
	// WatchChanges calls fn after each change committed by any replica
	// (this one included), and with a zero Change when changes may have
	// been missed (after connecting or reconnecting), so the caller
	// reloads. It returns when ctx ends.
	WatchChanges(ctx context.Context, fn func(Change)) error
}

// Change is one committed change: the mesh version it made.
type Change struct {
	Version uint64
	// Node, when set, is the only thing the change touched: the record of
	// the node with this ID (added or updated; a removal also rotates the
	// PSK, so it is not such a change). Empty: anything may have changed.
	Node string
}

// NodeReader is implemented by stores that read one node by itself, so
// that a change of one node reloads that node only.
type NodeReader interface {
	// Node returns the mesh version and the node with the given ID, read
	// consistently (ErrNotFound, with the version, when there is none).
	Node(ctx context.Context, id string) (uint64, Node, error)
}

// PolicyDoc is one stored policy version (package policystore's).
type PolicyDoc struct {
	Version   uint64
	CreatedAt time.Time
	Doc       string // the policy file as uploaded
}

// Policies is implemented by stores that several registry replicas share:
// the policy versions live in the store instead of each replica's data
// directory.
type Policies interface {
	// PolicyVersions lists the stored version numbers, newest first.
	PolicyVersions(ctx context.Context) ([]uint64, error)
	// PolicyVersion returns version v (ErrNotFound).
	PolicyVersion(ctx context.Context, v uint64) (PolicyDoc, error)
	// CreatePolicyVersion stores d (ErrAlreadyExists when its version is
	// stored already, by another replica).
	CreatePolicyVersion(ctx context.Context, d PolicyDoc) error
	// DeletePolicyVersion removes version v (pruning).
	DeletePolicyVersion(ctx context.Context, v uint64) error
}

// Replays is implemented by stores that several registry replicas share:
// the signatures of accepted node requests and joins, so that one accepted
// by a replica is refused as a replay by every other.
type Replays interface {
	// AddReplay records the hash of an accepted signature at the given
	// time and reports whether it was new (false: some replica recorded
	// it already).
	AddReplay(ctx context.Context, hash [32]byte, at time.Time) (bool, error)
	// PruneReplays forgets the hashes recorded before the given time.
	PruneReplays(ctx context.Context, before time.Time) error
}

// ScrapeToken is a stored Prometheus scrape credential (package
// scrapecred): never its secret, only the secret's SHA-256 in hex.
type ScrapeToken struct {
	ID        string
	Name      string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	Hash      string
}

// ScrapeTokens is implemented by stores that several registry replicas
// share: a scrape token made on one replica works on every replica.
type ScrapeTokens interface {
	// ScrapeTokens lists the stored tokens.
	ScrapeTokens(ctx context.Context) ([]ScrapeToken, error)
	// CreateScrapeToken stores t unless max tokens are stored already
	// (ErrRangeFull) or its ID is taken (ErrAlreadyExists).
	CreateScrapeToken(ctx context.Context, t ScrapeToken, max int) error
	// DeleteScrapeToken removes a token (ErrNotFound).
	DeleteScrapeToken(ctx context.Context, id string) error
}

// Registries is implemented by stores that several registry replicas
// share: each replica registers the URL nodes reach its API at, and every
// netmap lists them all (api.Netmap.Registries), so a node turns to
// another replica by itself when its own fails.
type Registries interface {
	// RegisterRegistry stores a replica's URL, seen at now; it bumps the
	// version when the URL is new and returns 0 when it was registered
	// already (refreshing when it was seen).
	RegisterRegistry(ctx context.Context, url string, now time.Time) (uint64, error)
	// Registries lists the registered URLs, sorted.
	Registries(ctx context.Context) ([]string, error)
	// ExpireReplicas removes the registry URLs and relays last registered
	// before seenBefore (replicas gone for good), bumping the version once
	// when it removed any; it returns 0 when it removed none.
	ExpireReplicas(ctx context.Context, seenBefore time.Time) (uint64, error)
}

// Relays is implemented by stores that several registry replicas share:
// each replica's relay is registered, every netmap lists them all, and each
// node's home relay is the relay of the replica it watches, so peers on
// other replicas reach it there.
type Relays interface {
	// RegisterRelay stores (or replaces, by ID) a replica's relay, seen at
	// now; it bumps the version when the relay is new or changed and
	// returns 0 when it was registered as it is already.
	RegisterRelay(ctx context.Context, r api.Relay, now time.Time) (uint64, error)
	// Relays lists the registered relays by ID.
	Relays(ctx context.Context) ([]api.Relay, error)
	// SetHomeRelay records the relay a node listens on; it bumps the
	// version when that changed and returns 0 when it did not
	// (ErrNotFound for an unknown node).
	SetHomeRelay(ctx context.Context, nodeID, relayID string) (uint64, error)
}
