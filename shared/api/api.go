// Package api holds the registry's HTTPS API: paths, request and response
// bodies, the netmap a node watches, and the error body. Every body is JSON.
//
// # Versioning
//
// ProtocolVersion is one integer. A node sends it in JoinRequest and in the
// X-Tunnelmesh-Protocol header; the registry refuses versions it does not
// speak with 426 and an Error naming the versions it does. Fields are only
// ever added; a field's meaning never changes within a version.
//
// # Authentication
//
//   - Join: the join token in the body, and a signature by the node key
//     proving the joiner holds it (JoinRequest.Signature).
//   - Node calls (/api/v1/node/...): package nodeauth, a per-node credential
//     plus an ed25519 signature by the node key over the request.
//   - Admin calls (/api/v1/admin/...): "Authorization: Bearer <admin credential>".
//
// # Watching the netmap
//
// GET /api/v1/node/netmap?since=V&wait=30s answers at once with the node's
// netmap when the mesh version is above V (always for V=0), and otherwise
// holds the request until it is, up to wait (at most MaxWatchWait), then
// answers 304 Not Modified. A node loops on it with since set to the last
// Version it saw, so it resumes after a reconnect without missing a change.
// With &delta= it may get only what changed (see NetmapDelta).
package api

import (
	"net/netip"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// ProtocolVersion is the version of this API and of the netmap.
const ProtocolVersion = 1

// ProtocolHeader carries ProtocolVersion on every request.
const ProtocolHeader = "X-Tunnelmesh-Protocol"

// Paths of the registry API.
const (
	PathInfo      = "/api/v1/info"
	PathJoin      = "/api/v1/join"
	PathNetmap    = "/api/v1/node/netmap"
	PathEndpoints = "/api/v1/node/endpoints"
	PathHeartbeat = "/api/v1/node/heartbeat"
	PathLeave     = "/api/v1/node/leave"

	PathAdminTokens = "/api/v1/admin/tokens" // GET list, POST create; DELETE /{id} revokes
	PathAdminNodes  = "/api/v1/admin/nodes"  // GET list; DELETE /{name or id} removes
	PathAdminPolicy = "/api/v1/admin/policy" // GET current, PUT new (policy as code, registry/policy)

	PathRelay   = "/relay"   // WebSocket relay served by the coordinator
	PathMetrics = "/metrics" // Prometheus
	PathHealth  = "/healthz"
)

// Limits every implementation enforces.
const (
	MaxBodyBytes     = 64 << 10 // request bodies larger than this get 413
	MaxEndpoints     = 32       // endpoints a node may report
	MaxTags          = 16       // tags on a token or node
	MaxServices      = 32       // services a node may publish
	MaxWatchWait     = 60 * time.Second
	DefaultWatchWait = 30 * time.Second
	PSKSize          = 32
	// MaxTokenExpiry is the longest lifetime a join token may be given.
	MaxTokenExpiry = 10 * 365 * 24 * time.Hour
)

// Error is the body of every non-2xx answer.
type Error struct {
	// Error is a human-readable message saying what failed.
	Error string `json:"error"`
	// Code is a stable machine-readable code, one of the Code* constants.
	Code string `json:"code"`
}

// Error codes.
const (
	CodeBadRequest       = "bad_request"
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeNotFound         = "not_found"
	CodeConflict         = "conflict"      // e.g. node name taken by another key
	CodeTokenInvalid     = "token_invalid" // unknown, used, expired or revoked token
	CodeRangeFull        = "range_full"    // no free address in the mesh prefix
	CodeRateLimited      = "rate_limited"  // 429
	CodeTooLarge         = "too_large"     // 413
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeVersion          = "unsupported_version"
	CodeInternal         = "internal"
)

// Info is the unauthenticated answer of GET PathInfo.
type Info struct {
	ProtocolVersions []int  `json:"protocol_versions"`
	MeshID           string `json:"mesh_id"`
	Version          string `json:"version"` // software version
}

// JoinRequest is the body of POST PathJoin.
type JoinRequest struct {
	ProtocolVersion int                `json:"protocol_version"`
	Token           string             `json:"token"`
	Name            string             `json:"name"`
	PublicKey       nodekey.PublicKey  `json:"public_key"`
	Endpoints       []netip.AddrPort   `json:"endpoints,omitempty"`
	SSHEndpoint     netip.AddrPort     `json:"ssh_endpoint,omitzero"`
	SSHHostKey      *nodekey.PublicKey `json:"ssh_host_key,omitempty"`
	// SSHUser and SSHPacketPort: see Node (OpenSSH endpoints only).
	SSHUser       string `json:"ssh_user,omitempty"`
	SSHPacketPort uint16 `json:"ssh_packet_port,omitempty"`
	// Services are the services the node publishes (see
	// EndpointsRequest.Services).
	Services []Service `json:"services,omitempty"`
	// Timestamp (unix milliseconds) and Signature prove that the joiner
	// holds the private half of PublicKey: Signature is the ed25519
	// signature by the node key over nodeauth.JoinPayload (token ID,
	// registry pin, Name, PublicKey, Timestamp). A join without it is
	// refused (400); one whose signature does not verify, is outside
	// nodeauth.MaxSkew or was seen before gets 401.
	Timestamp int64  `json:"timestamp"`
	Signature []byte `json:"signature"` // 64 bytes, base64 in JSON
}

// JoinResponse is the answer to a successful join. Credential and PSK are
// secrets: store them with mode 0600 and never log them.
type JoinResponse struct {
	NodeID     string       `json:"node_id"`
	Name       string       `json:"name"`
	IP         netip.Addr   `json:"ip"`
	MeshID     string       `json:"mesh_id"`
	MeshCIDR   netip.Prefix `json:"mesh_cidr"`
	PSK        []byte       `json:"psk"`        // 32 bytes, base64 in JSON
	Credential string       `json:"credential"` // node credential for nodeauth
	Tags       []string     `json:"tags,omitempty"`
}

// EndpointsRequest is the body of POST PathEndpoints: the node's current
// candidate UDP endpoints (local addresses and the STUN-learned public one).
type EndpointsRequest struct {
	Endpoints   []netip.AddrPort `json:"endpoints"`
	SSHEndpoint netip.AddrPort   `json:"ssh_endpoint,omitzero"`
	// SSHHostKey, SSHUser and SSHPacketPort describe an OpenSSH server at
	// SSHEndpoint (see Node). The SSH fields are reported together: they
	// replace the ones stored before (an absent host key clears it).
	SSHHostKey    *nodekey.PublicKey `json:"ssh_host_key,omitempty"`
	SSHUser       string             `json:"ssh_user,omitempty"`
	SSHPacketPort uint16             `json:"ssh_packet_port,omitempty"`
	// Services are all the services the node publishes now (none when
	// absent): they replace the ones reported before. A node holding the
	// registry's DNS tag that publishes ServiceDNS is listed in every
	// netmap's DNSConfig.Servers.
	Services []Service `json:"services,omitempty"`
}

// Netmap is what a node knows of its mesh. Each node gets its own: its own
// record, the peers it may see, and the inbound filter rules that concern it.
type Netmap struct {
	// Version is the mesh's change counter; it grows with every change that
	// may alter any node's netmap.
	Version  uint64       `json:"version"`
	MeshID   string       `json:"mesh_id"`
	MeshCIDR netip.Prefix `json:"mesh_cidr"`
	// PSK is the mesh's pre-shared key and, for a while after it was
	// rotated (a node was removed), the previous one. Nil: the node keeps
	// the PSK it got at join.
	PSK    *MeshPSK  `json:"psk,omitempty"`
	Self   Node      `json:"self"`
	Peers  []Node    `json:"peers"`
	DNS    DNSConfig `json:"dns"`
	Relays []Relay   `json:"relays,omitempty"`
	// Registries are the URLs ("https://host:port") of the registry
	// replicas that share this mesh (one database), in a stable order. A
	// node keeps them and turns to the next when the one it uses fails
	// (shared/regclient); every replica serves the same TLS key, so the
	// node's pin holds for all. Empty: a single registry, only the one
	// the node joined through.
	Registries []string `json:"registries,omitempty"`
	// Filter holds the node's compiled inbound rules. When Filter is nil the
	// registry has no policy for the mesh.
	Filter *Filter `json:"filter,omitempty"`
}

// Node is one mesh member as others see it.
type Node struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	IP        netip.Addr        `json:"ip"`
	PublicKey nodekey.PublicKey `json:"public_key"`
	// Endpoints are candidate UDP addresses for direct paths.
	Endpoints []netip.AddrPort `json:"endpoints,omitempty"`
	// SSHEndpoint is where the node accepts the SSH transport, if anywhere.
	SSHEndpoint netip.AddrPort `json:"ssh_endpoint,omitzero"`
	// SSHHostKey is the host key of an OpenSSH server at SSHEndpoint, when
	// that server does not use the node key as host key.
	SSHHostKey *nodekey.PublicKey `json:"ssh_host_key,omitempty"`
	// SSHUser is the account peers log in as on that OpenSSH server (its
	// authorized_keys lists their node keys), and SSHPacketPort the node's
	// packet port on the server's loopback, which peers open with a
	// direct-tcpip channel. Both are set exactly when SSHHostKey is (see
	// ValidateSSH).
	SSHUser       string `json:"ssh_user,omitempty"`
	SSHPacketPort uint16 `json:"ssh_packet_port,omitempty"`
	// HomeRelay is the ID of the relay (in Netmap.Relays) the node listens on.
	HomeRelay string   `json:"home_relay,omitempty"`
	Tags      []string `json:"tags,omitempty"`
	Online    bool     `json:"online"`
	// LastSeen is when the registry last heard from the node, as of the
	// node's last change (of its record or of Online): while the node
	// stays online it is not updated, so that heartbeats do not change
	// every netmap.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Services are names published by the node (for DNS SRV and
	// <service>.<node>.<zone> names).
	Services []Service `json:"services,omitempty"`
}

// Service is a named port a node publishes. A name and protocol may be
// published with several ports (one SRV record each).
type Service struct {
	Name     string `json:"name"`
	Protocol string `json:"protocol"` // "tcp" or "udp"
	Port     uint16 `json:"port"`
	// Owner is the process next to the agent that set the service through
	// its local API (ServiceOwnerDocker), empty for the node's own. The
	// agent sets it; the policy's docker section applies to
	// ServiceOwnerDocker services.
	Owner string `json:"owner,omitempty"`
	// Allow narrows who may reach a docker service below the policy's
	// docker ceiling: comma-separated policy selectors ("tag:web,group:devs",
	// see ValidateSelectors); empty leaves the ceiling.
	Allow string `json:"allow,omitempty"`
}

// ServiceOwnerDocker owns the services of containers that
// tunnelmesh-dockerwatch exposes.
const ServiceOwnerDocker = "dockerwatch"

// ServiceDNS is the service a mesh DNS server (tunnelmesh-meshdns next to
// the node's agent) publishes: {Name: ServiceDNS, Protocol: "udp", Port: 53}.
const ServiceDNS = "dns"

// ServiceNFS is the service tunnelmesh-nfsd next to the node's agent
// publishes: {Name: ServiceNFS, Protocol: "tcp", Port: 2049} (NFSv3 and
// MOUNT on one port).
const ServiceNFS = "nfs"

// DNSConfig tells nodes how mesh names resolve.
type DNSConfig struct {
	Zone    string       `json:"zone"`              // e.g. "mesh"
	Servers []netip.Addr `json:"servers,omitempty"` // mesh addresses of meshdns servers
}

// Relay is a WebSocket relay nodes can reach each other through.
type Relay struct {
	ID  string `json:"id"`
	URL string `json:"url"` // wss://host:port/relay
	// TLSPin, if set, is the tlspin pin of the relay's certificate (for a
	// self-signed relay, or the coordinator's own relay); empty means the
	// system roots.
	TLSPin string `json:"tls_pin,omitempty"`
}

// Filter is a node's compiled inbound packet filter: default deny, and a
// packet from the mesh is accepted when any rule allows it.
type Filter struct {
	PolicyVersion uint64       `json:"policy_version"`
	Rules         []FilterRule `json:"rules"`
	// Storage is set on a node that publishes ServiceStorageAuth: the
	// policy's storage grants (see StorageGrants).
	Storage *StorageGrants `json:"storage,omitempty"`
	// NFS is set on a node that publishes ServiceNFS when the policy has
	// an nfs section: who may mount which export (see NFSGrants).
	NFS *NFSGrants `json:"nfs,omitempty"`
}

// StorageGrants are the policy's storage grants of every member: by node
// name (normalized), SeaweedFS actions ("Read:mesh", "Write:logs"), sorted;
// a member with no grant is absent. The storage service gives each node's
// S3 identity exactly these actions.
type StorageGrants struct {
	Nodes map[string][]string `json:"nodes"`
}

// FilterRule allows packets from Sources to this node, for Protocol on Ports.
type FilterRule struct {
	// Name identifies the policy rule this came from (for metrics and logs).
	Name    string         `json:"name"`
	Sources []netip.Prefix `json:"sources"`
	// Protocol is "tcp", "udp", "icmp" or "any".
	Protocol string `json:"protocol"`
	// Ports are destination port ranges; empty means every port. Ignored
	// for icmp.
	Ports []PortRange `json:"ports,omitempty"`
}

// PortRange is an inclusive range of ports.
type PortRange struct {
	First uint16 `json:"first"`
	Last  uint16 `json:"last"`
}

// Admin API bodies.

// CreateTokenRequest is the body of POST PathAdminTokens.
type CreateTokenRequest struct {
	Reusable bool     `json:"reusable"`
	Expiry   Duration `json:"expiry,omitempty"` // 0: the registry's default
	Tags     []string `json:"tags,omitempty"`
}

// CreateTokenResponse carries the token; it is shown once and stored hashed.
type CreateTokenResponse struct {
	Token string    `json:"token"`
	Info  TokenInfo `json:"info"`
}

// TokenInfo describes a join token without its secret.
type TokenInfo struct {
	ID        string    `json:"id"`
	Reusable  bool      `json:"reusable"`
	Tags      []string  `json:"tags,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Uses      int       `json:"uses"`
	Revoked   bool      `json:"revoked"`
}

// NodeInfo is a node as the admin sees it.
type NodeInfo struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	IP          netip.Addr        `json:"ip"`
	Fingerprint string            `json:"fingerprint"`
	PublicKey   nodekey.PublicKey `json:"public_key"`
	Tags        []string          `json:"tags,omitempty"`
	Endpoints   []netip.AddrPort  `json:"endpoints,omitempty"`
	Online      bool              `json:"online"`
	LastSeen    time.Time         `json:"last_seen,omitzero"`
	CreatedAt   time.Time         `json:"created_at"`
}
