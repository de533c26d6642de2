// Package nodeapi is the wire contract of a node's local API: HTTP over the
// unix socket tunnelmesh.sock in the node's state directory (mode 0600 in a
// 0700 directory, so only root, or the user running the node, can use it).
// The agent serves it (agent/internal/localapi); the tunnelmesh CLI and
// processes next to the node (tunnelmesh-dockerwatch) call it.
//
//	GET  /v1/status              -> Status
//	POST /v1/ping?peer=NAME|IP   -> PingResult (or Error with 4xx/5xx)
//	PUT  /v1/services            ServicesRequest -> ServicesRequest (as stored)
//
// Every body is JSON, one object followed by a newline; errors are Error
// ({"error": "..."}) with a 4xx or 5xx status. testdata/ holds recorded
// bodies that the tests decode and encode again byte for byte.
package nodeapi

import (
	"net/netip"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// SocketFile is the local API socket's name in the node's state directory.
const SocketFile = "tunnelmesh.sock"

// Paths of the local API.
const (
	PathStatus = "/v1/status"
	PathPing   = "/v1/ping"
	// PathServices is where a process next to the node
	// (tunnelmesh-dockerwatch) sets the services it runs. The node
	// publishes them, with its own, in its next report to the registry.
	// Each owner's set replaces that owner's previous one; an empty set
	// withdraws them; a set not set again within 20 s (the agent's
	// node.ServicesTTL) is withdrawn, so an owner re-sends its set to keep
	// it.
	PathServices = "/v1/services"
)

// ServicesRequest is the body of PUT /v1/services, and of its answer (the
// set as stored).
type ServicesRequest struct {
	// Owner names the process (a DNS label, e.g. "dockerwatch").
	Owner    string        `json:"owner"`
	Services []api.Service `json:"services"`
}

// Status is the node's view of itself and its peers.
type Status struct {
	Name       string       `json:"name"`
	NodeID     string       `json:"node_id"`
	IP         netip.Addr   `json:"ip"`
	MeshID     string       `json:"mesh_id"`
	MeshCIDR   netip.Prefix `json:"mesh_cidr"`
	Interface  string       `json:"interface"`
	MTU        int          `json:"mtu"`
	ListenPort uint16       `json:"listen_port"`
	PublicKey  string       `json:"public_key"`
	Version    string       `json:"version"`

	Coordinator Coordinator `json:"coordinator"`

	// Removed is set while the registry refuses the node (an admin
	// removed it): it has no peers, and processes next to it withdraw
	// what they serve through it (tunnelmesh-dockerwatch).
	Removed       bool             `json:"removed,omitempty"`
	NetmapVersion uint64           `json:"netmap_version"`
	Endpoints     []netip.AddrPort `json:"endpoints,omitempty"`
	Peers         []Peer           `json:"peers"`
	// Services are the services the node publishes: its own and those set
	// through PathServices.
	Services []api.Service `json:"services,omitempty"`
	// Drops counts packets the data plane dropped, by reason.
	Drops map[string]uint64 `json:"drops,omitempty"`
}

// Coordinator says whether the node can reach its registry.
type Coordinator struct {
	URL       string    `json:"url"`
	Reachable bool      `json:"reachable"`
	LastOK    time.Time `json:"last_ok,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

// Peer is one peer as the node sees it.
type Peer struct {
	Name      string     `json:"name"`
	IP        netip.Addr `json:"ip"`
	PublicKey string     `json:"public_key"`
	Online    bool       `json:"online"` // as the registry reports it
	// Path is how the peer is reached: "udp 192.0.2.1:41641" (direct), or empty
	// before the first handshake.
	Path          string           `json:"path"`
	Endpoint      netip.AddrPort   `json:"endpoint,omitzero"`
	Endpoints     []netip.AddrPort `json:"endpoints,omitempty"` // candidates from the netmap
	LastHandshake time.Time        `json:"last_handshake,omitzero"`
	RxBytes       uint64           `json:"rx_bytes"`
	TxBytes       uint64           `json:"tx_bytes"`
	RxPackets     uint64           `json:"rx_packets"`
	TxPackets     uint64           `json:"tx_packets"`
	// RTT is the last measured round trip time through the tunnel, 0 if
	// none was measured.
	RTT time.Duration `json:"rtt_ns"`
	// PathChanges counts the peer's moves from one path to another.
	PathChanges uint64 `json:"path_changes"`
	// RTTP50, RTTP90 and RTTP99 are percentiles of the current path's
	// round trip times over the last probes (up to 64, about five
	// minutes); 0 when none was answered.
	RTTP50 time.Duration `json:"rtt_p50_ns"`
	RTTP90 time.Duration `json:"rtt_p90_ns"`
	RTTP99 time.Duration `json:"rtt_p99_ns"`
	// Loss is the share of those probes, sent at least 2 s ago, that went
	// unanswered (0 to 1); Probes is how many that is.
	Loss   float64 `json:"loss"`
	Probes int     `json:"probes"`
	// ProbesSent and ProbesAnswered count the current path's probes since
	// the peer was added.
	ProbesSent     uint64 `json:"probes_sent"`
	ProbesAnswered uint64 `json:"probes_answered"`
}

// PingResult is the answer to a ping.
type PingResult struct {
	Peer string        `json:"peer"`
	IP   netip.Addr    `json:"ip"`
	Path string        `json:"path"`
	RTT  time.Duration `json:"rtt_ns"`
}

// Error is the body of a failed call.
type Error struct {
	Error string `json:"error"`
}
