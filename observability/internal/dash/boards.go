package dash

// The PromQL below uses only metrics the components export (the catalogue
// in README.md, checked by TestMetricNamesExist) and the target labels the
// registry's service discovery gives every target: node, service, mesh_id
// and tags. $node, $peer and $__rate_interval are Grafana variables.

const rate = "[$__rate_interval]"

var nodeVar = variable{name: "node", label: "Node", query: "label_values(tunnelmesh_agent_peers, node)", multi: true}

var peerVar = variable{name: "peer", label: "Peer", query: `label_values(tunnelmesh_agent_peer_path{node=~"$node"}, peer)`, multi: true}

// peerLoss is the share of probes unanswered per node and peer path,
// over the series that sel selects; topk(10, ...) without a selector.
func peerLoss(sel string) string {
	loss := "1 - sum by (node, peer) (rate(tunnelmesh_agent_peer_path_rtt_seconds_count" + sel + rate + "))" +
		" / sum by (node, peer) (rate(tunnelmesh_agent_peer_probes_sent_total" + sel + rate + "))"
	if sel == "" {
		return "topk(10, " + loss + ")"
	}
	return loss
}

func boards() []board {
	return []board{overview(), nodeDetail(), peerPaths(), relay(), registry(), dns(), filter(), storage(), nfs(), docker()}
}

func overview() board {
	return board{
		file: "mesh-overview", uid: "tunnelmesh-overview", title: "TunnelMesh / Mesh overview",
		desc: "The whole mesh: nodes, the transport of every peer path, traffic, drops, round trip times, loss and TCP handshake times.",
		rows: []row{
			{title: "Nodes", panels: []panel{
				st("Registered nodes", "none", "Nodes in the registry.", q("sum(tunnelmesh_registry_nodes)", "")),
				st("Online nodes", "none", "Nodes heard from within the registry's online timeout.", q("sum(tunnelmesh_registry_nodes_online)", "")),
				st("Agents scraped up", "none", "Agents whose /metrics answered the last scrape.", q(`sum(up{service="agent"})`, "")),
				st("Agents down", "none", "Agents discovered through the registry whose /metrics did not answer.", q(`count(up{service="agent"} == 0) or vector(0)`, "")),
				ts("Agents up by node", "none", "1 when the node's agent answered the last scrape.", q(`up{service="agent"}`, "{{node}}")),
				ts("Netmap version: registry and nodes", "none", "A node below the registry's line has not applied the newest netmap.",
					q("max(tunnelmesh_registry_netmap_version)", "registry"),
					q("tunnelmesh_agent_netmap_version", "{{node}}")),
			}},
			{title: "Paths", panels: []panel{
				ts("Peer paths by kind", "none", "Peer paths over each transport (udp, ssh, relay), summed over every node.",
					q("sum by (transport) (tunnelmesh_agent_peer_path)", "{{transport}}")),
				ts("Peer paths on the relay by node", "none", "Peers each node reaches only through a relay.",
					q(`sum by (node) (tunnelmesh_agent_peer_path{transport="relay"})`, "{{node}}")),
			}},
			{title: "Traffic", panels: []panel{
				ts("Mesh traffic", "Bps", "Transport bytes per second, all nodes (wire size).",
					q("sum(rate(tunnelmesh_agent_rx_bytes_total"+rate+"))", "received"),
					q("sum(rate(tunnelmesh_agent_tx_bytes_total"+rate+"))", "sent")),
				ts("Traffic by node", "Bps", "Transport bytes per second received and sent by each node.",
					q("sum by (node) (rate(tunnelmesh_agent_rx_bytes_total"+rate+"))", "{{node}} rx"),
					q("sum by (node) (rate(tunnelmesh_agent_tx_bytes_total"+rate+"))", "{{node}} tx")),
				ts("Data plane drops by reason", "pps", "Packets dropped by the agents' data plane, by reason (filter_* reasons come from the packet filter).",
					q("sum by (reason) (rate(tunnelmesh_agent_drops_total"+rate+")) > 0", "{{reason}}")),
				ts("Handshakes", "ops", "Sessions established and initiations sent per second, all nodes.",
					q("sum(rate(tunnelmesh_agent_handshakes_total"+rate+"))", "completed"),
					q("sum(rate(tunnelmesh_agent_handshake_initiations_total"+rate+"))", "initiated")),
			}},
			{title: "Latency and loss", panels: []panel{
				hm("Peer path round trip times", "s", "Distribution of the probe round trip times of every peer path in the mesh (each agent probes its peers' current paths at least every 5 s).",
					q("sum by (le) (rate(tunnelmesh_agent_peer_path_rtt_seconds_bucket"+rate+"))", "{{le}}")),
				ts("Slowest peer paths (p90)", "s", "The ten peer paths with the highest 90th percentile probe round trip time.",
					q("topk(10, histogram_quantile(0.9, sum by (node, peer, le) (rate(tunnelmesh_agent_peer_path_rtt_seconds_bucket"+rate+"))))", "{{node}} → {{peer}}")),
				ts("Lossiest peer paths", "percentunit", "The ten peer paths with the highest share of probes unanswered (probes on the path that carries the peer's packets).",
					q(peerLoss("")+" > 0", "{{node}} → {{peer}}")),
				hm("TCP handshake times", "s", "Distribution of the time from SYN to SYN-ACK of the TCP connections the nodes open through the mesh.",
					q("sum by (le) (rate(tunnelmesh_agent_peer_tcp_handshake_seconds_bucket"+rate+"))", "{{le}}")),
			}},
		},
	}
}

func nodeDetail() board {
	sel := `{node=~"$node"}`
	return board{
		file: "node-detail", uid: "tunnelmesh-node", title: "TunnelMesh / Node detail",
		desc: "One node's agent: peers, traffic, drops, handshakes, netmap and process.",
		vars: []variable{nodeVar},
		rows: []row{
			{title: "Data plane", panels: []panel{
				ts("Peers", "none", "Peers in the node's data plane configuration.", q("tunnelmesh_agent_peers"+sel, "{{node}}")),
				ts("Paths by kind", "none", "The node's peers by the transport that carries their packets now.",
					q(`sum by (node, transport) (tunnelmesh_agent_peer_path`+sel+`)`, "{{node}} {{transport}}")),
				ts("Traffic", "Bps", "Transport bytes per second (wire size).",
					q("rate(tunnelmesh_agent_rx_bytes_total"+sel+rate+")", "{{node}} rx"),
					q("rate(tunnelmesh_agent_tx_bytes_total"+sel+rate+")", "{{node}} tx")),
				ts("Packets", "pps", "Transport packets per second.",
					q("rate(tunnelmesh_agent_rx_packets_total"+sel+rate+")", "{{node}} rx"),
					q("rate(tunnelmesh_agent_tx_packets_total"+sel+rate+")", "{{node}} tx")),
				ts("Drops by reason", "pps", "Packets dropped by the data plane, by reason.",
					q("rate(tunnelmesh_agent_drops_total"+sel+rate+") > 0", "{{node}} {{reason}}")),
				ts("Handshakes", "ops", "Sessions established and initiations sent per second.",
					q("rate(tunnelmesh_agent_handshakes_total"+sel+rate+")", "{{node}} completed"),
					q("rate(tunnelmesh_agent_handshake_initiations_total"+sel+rate+")", "{{node}} initiated")),
			}},
			{title: "Control", panels: []panel{
				ts("Netmap version", "none", "Version of the netmap the node runs, next to the registry's.",
					q("tunnelmesh_agent_netmap_version"+sel, "{{node}}"),
					q("max(tunnelmesh_registry_netmap_version)", "registry")),
				ts("Reconfigurations", "ops", "Netmaps applied to the data plane and refused by it, per second.",
					q("rate(tunnelmesh_agent_reconfigs_total"+sel+rate+")", "{{node}} applied"),
					q("rate(tunnelmesh_agent_reconfig_errors_total"+sel+rate+")", "{{node}} refused")),
				ts("Registry errors", "ops", "Failed calls to the registry per second.",
					q("rate(tunnelmesh_agent_registry_errors_total"+sel+rate+")", "{{node}}")),
				ts("Scrape up", "none", "1 when the node's agent answered the last scrape.", q(`up{service="agent",node=~"$node"}`, "{{node}}")),
			}},
			{title: "Process", panels: []panel{
				ts("CPU", "percentunit", "CPU time used by the agent process.",
					q(`rate(process_cpu_seconds_total{service="agent",node=~"$node"}`+rate+")", "{{node}}")),
				ts("Memory", "bytes", "Resident memory of the agent process.",
					q(`process_resident_memory_bytes{service="agent",node=~"$node"}`, "{{node}}")),
				ts("Goroutines", "none", "Goroutines of the agent process.",
					q(`go_goroutines{service="agent",node=~"$node"}`, "{{node}}")),
				ts("Open file descriptors", "none", "File descriptors the agent process holds.",
					q(`process_open_fds{service="agent",node=~"$node"}`, "{{node}}")),
			}},
		},
	}
}

func peerPaths() board {
	sel := `{node=~"$node",peer=~"$peer"}`
	return board{
		file: "peer-paths", uid: "tunnelmesh-peers", title: "TunnelMesh / Peer paths",
		desc: "Every node-to-peer path: its transport, traffic, round trip times, probe loss, handshake age and TCP handshake times.",
		vars: []variable{nodeVar, peerVar},
		rows: []row{
			{title: "Paths", panels: []panel{
				tbl("Current paths", "The transport and path of each peer as `tunnelmesh status` shows it.",
					q("tunnelmesh_agent_peer_path"+sel+" == 1", "")),
				ts("Path transport over time", "none", "The transport carrying each peer path (1 while in use).",
					q("tunnelmesh_agent_peer_path"+sel, "{{node}} → {{peer}} {{transport}}")),
				ts("Round trip time p50/p90/p99", "s", "Percentiles of the probe round trip times on the path that carries the peer's packets.",
					q("histogram_quantile(0.5, sum by (node, peer, le) (rate(tunnelmesh_agent_peer_path_rtt_seconds_bucket"+sel+rate+")))", "{{node}} → {{peer}} p50"),
					q("histogram_quantile(0.9, sum by (node, peer, le) (rate(tunnelmesh_agent_peer_path_rtt_seconds_bucket"+sel+rate+")))", "{{node}} → {{peer}} p90"),
					q("histogram_quantile(0.99, sum by (node, peer, le) (rate(tunnelmesh_agent_peer_path_rtt_seconds_bucket"+sel+rate+")))", "{{node}} → {{peer}} p99")),
				ts("Probe loss", "percentunit", "Share of the probes on the peer's current path that went unanswered.",
					q(peerLoss(sel), "{{node}} → {{peer}}")),
				ts("Time since last handshake", "s", "Seconds since the last completed handshake with the peer (sessions rekey every two minutes while in use).",
					q("time() - tunnelmesh_agent_peer_last_handshake_timestamp_seconds"+sel, "{{node}} → {{peer}}")),
			}},
			{title: "TCP connections", panels: []panel{
				ts("TCP handshake p90 by port", "s", "90th percentile of SYN to SYN-ACK for the connections the node opens to the peer, by destination port (other: ports no policy rule names and not among the busiest; peer other: pairs beyond the agent's bound).",
					q("histogram_quantile(0.9, sum by (node, peer, port, le) (rate(tunnelmesh_agent_peer_tcp_handshake_seconds_bucket"+sel+rate+")))", "{{node}} → {{peer}}:{{port}}")),
				ts("TCP handshakes by port", "ops", "Connections the node opened to the peer per second (SYN-ACK received), by destination port.",
					q("sum by (node, peer, port) (rate(tunnelmesh_agent_peer_tcp_handshake_seconds_count"+sel+rate+"))", "{{node}} → {{peer}}:{{port}}")),
			}},
			{title: "Traffic", panels: []panel{
				ts("Bytes", "Bps", "Bytes per second to and from the peer.",
					q("rate(tunnelmesh_agent_peer_rx_bytes_total"+sel+rate+")", "{{node}} ← {{peer}}"),
					q("rate(tunnelmesh_agent_peer_tx_bytes_total"+sel+rate+")", "{{node}} → {{peer}}")),
				ts("Packets", "pps", "Packets per second to and from the peer.",
					q("rate(tunnelmesh_agent_peer_rx_packets_total"+sel+rate+")", "{{node}} ← {{peer}}"),
					q("rate(tunnelmesh_agent_peer_tx_packets_total"+sel+rate+")", "{{node}} → {{peer}}")),
			}},
		},
	}
}

func relay() board {
	return board{
		file: "relay", uid: "tunnelmesh-relay", title: "TunnelMesh / Relay",
		desc: "WebSocket relays (the coordinator's and standalone ones): connections, forwarding, drops, and who depends on them.",
		rows: []row{
			{title: "Relay", panels: []panel{
				ts("Connected nodes", "none", "Nodes connected to each relay.", q("tunnelmesh_relay_connections", "{{instance}}")),
				ts("Connection handshakes by result", "ops", "Relay connection handshakes per second, by result.",
					q("sum by (instance, result) (rate(tunnelmesh_relay_handshakes_total"+rate+")) > 0", "{{instance}} {{result}}")),
				ts("Forwarded frames", "pps", "Frames written to their destination node per second.",
					q("rate(tunnelmesh_relay_frames_forwarded_total"+rate+")", "{{instance}}")),
				ts("Forwarded bytes", "Bps", "Payload bytes written to their destination node per second.",
					q("rate(tunnelmesh_relay_bytes_forwarded_total"+rate+")", "{{instance}}")),
				ts("Drops by reason", "pps", "Frames the relay dropped per second, by reason.",
					q("sum by (instance, reason) (rate(tunnelmesh_relay_drops_total"+rate+")) > 0", "{{instance}} {{reason}}")),
				ts("Peer paths on a relay", "none", "Peer paths the agents report as carried by a relay, by node.",
					q(`sum by (node) (tunnelmesh_agent_peer_path{transport="relay"})`, "{{node}}")),
			}},
		},
	}
}

func registry() board {
	return board{
		file: "registry", uid: "tunnelmesh-registry", title: "TunnelMesh / Registry",
		desc: "The coordinator's control plane: nodes, joins, netmap watchers, API latency, authentication failures, STUN.",
		rows: []row{
			{title: "Nodes and joins", panels: []panel{
				st("Registered nodes", "none", "Nodes in the registry.", q("sum(tunnelmesh_registry_nodes)", "")),
				st("Online nodes", "none", "Nodes heard from within the online timeout.", q("sum(tunnelmesh_registry_nodes_online)", "")),
				st("Netmap watchers", "none", "Netmap long-poll requests waiting now.", q("sum(tunnelmesh_registry_watchers)", "")),
				st("Netmap version", "none", "The mesh's netmap change counter.", q("max(tunnelmesh_registry_netmap_version)", "")),
				ts("Nodes", "none", "Registered and online nodes.",
					q("tunnelmesh_registry_nodes", "registered"),
					q("tunnelmesh_registry_nodes_online", "online")),
				ts("Joins by result", "ops", "Join attempts per second, by result.",
					q("sum by (result) (rate(tunnelmesh_registry_joins_total"+rate+")) > 0", "{{result}}")),
				ts("Netmap watchers", "none", "Netmap long-poll requests waiting (one per watching node and meshdns).",
					q("tunnelmesh_registry_watchers", "{{instance}}")),
				ts("Authentication failures", "ops", "Refused node or admin authentications per second, by kind.",
					q("sum by (kind) (rate(tunnelmesh_registry_auth_failures_total"+rate+")) > 0", "{{kind}}")),
			}},
			{title: "API", panels: []panel{
				ts("Requests by route", "reqps", "API requests per second by route and status code.",
					q("sum by (route, code) (rate(tunnelmesh_registry_request_duration_seconds_count"+rate+"))", "{{route}} {{code}}")),
				ts("Latency p99 by route (watches excluded)", "s", "99th percentile of request latency; netmap watches are left out because they include their long-poll wait.",
					q(`histogram_quantile(0.99, sum by (route, le) (rate(tunnelmesh_registry_request_duration_seconds_bucket{route!="netmap"}`+rate+")))", "{{route}}")),
				hm("Join latency", "s", "Distribution of join request latency.",
					q(`sum by (le) (rate(tunnelmesh_registry_request_duration_seconds_bucket{route="join"}`+rate+"))", "{{le}}")),
				hm("Netmap watch duration", "s", "How long netmap watches were held before the registry answered: short ones answer a change (fan-out), the long tail is the idle long-poll timeout.",
					q(`sum by (le) (rate(tunnelmesh_registry_request_duration_seconds_bucket{route="netmap"}`+rate+"))", "{{le}}")),
				ts("STUN requests by result", "pps", "STUN packets per second, by result.",
					q("sum by (result) (rate(tunnelmesh_registry_stun_requests_total"+rate+"))", "{{result}}")),
				ts("Scrape up", "none", "1 when the registry answered the last scrape.", q(`up{service="registry"}`, "{{instance}}")),
			}},
			{title: "Expiry", panels: []panel{
				st("TLS certificate expires in", "s", "Time left on the registry's TLS certificate.",
					q("min(tunnelmesh_registry_tls_cert_expiry_timestamp_seconds) - time()", "")),
				st("First scrape token expiry", "s", "Time left on the scrape token that expires first (none: no token expires).",
					q("min(tunnelmesh_registry_scrape_token_expiry_timestamp_seconds) - time()", "")),
				tbl("Expiring scrape tokens", "Seconds left on each scrape token that has an expiry.",
					q("tunnelmesh_registry_scrape_token_expiry_timestamp_seconds - time()", "")),
			}},
		},
	}
}

func dns() board {
	return board{
		file: "dns", uid: "tunnelmesh-dns", title: "TunnelMesh / DNS",
		desc: "Mesh DNS servers (the meshdns CoreDNS plugin): queries by result, the netmap they answer from, their registry connection.",
		rows: []row{
			{title: "meshdns", panels: []panel{
				ts("Queries by result", "reqps", "Queries for mesh names per second, by result (answer, nodata, nxdomain, fallthrough, no_netmap).",
					q("sum by (node, result) (rate(tunnelmesh_meshdns_queries_total"+rate+"))", "{{node}} {{result}}")),
				ts("Names in the netmap", "none", "Nodes with a name in the netmap each server answers from.",
					q("tunnelmesh_meshdns_netmap_nodes", "{{node}} {{origin}}")),
				ts("Netmap version", "none", "Version of the netmap each server answers from, next to the registry's.",
					q("tunnelmesh_meshdns_netmap_version", "{{node}} {{origin}}"),
					q("max(tunnelmesh_registry_netmap_version)", "registry")),
				ts("Registry reachable", "none", "1 when the server's last netmap watch succeeded.",
					q("tunnelmesh_meshdns_registry_reachable", "{{node}} {{origin}}")),
				ts("Netmap updates", "ops", "Netmaps received from the registry per second.",
					q("rate(tunnelmesh_meshdns_netmap_updates_total"+rate+")", "{{node}} {{origin}}")),
				ts("Registry errors", "ops", "Failed netmap watch requests per second.",
					q("rate(tunnelmesh_meshdns_registry_errors_total"+rate+")", "{{node}} {{origin}}")),
			}},
		},
	}
}

func filter() board {
	sel := `{node=~"$node"}`
	return board{
		file: "filter", uid: "tunnelmesh-filter", title: "TunnelMesh / Packet filter",
		desc: "Each node's inbound packet filter: drops by reason, accepts by policy rule, connection table, policy version.",
		vars: []variable{nodeVar},
		rows: []row{
			{title: "Filter", panels: []panel{
				ts("Drops by reason", "pps", "Packets refused by the filter per second, by reason (no_rule: default deny; malformed, ipv6, fragment).",
					q(`sum by (node, reason) (rate(tunnelmesh_agent_drops_total{node=~"$node",reason=~"filter_.+"}`+rate+")) > 0", "{{node}} {{reason}}")),
				ts("Accepts by rule", "pps", "New packets from the mesh accepted per second, by policy rule.",
					q("sum by (node, rule) (rate(tunnelmesh_agent_filter_accepts_total"+sel+rate+")) > 0", "{{node}} {{rule}}")),
				ts("Tracked flows", "none", "Flows in the filter's connection table.",
					q("tunnelmesh_agent_filter_flows"+sel, "{{node}}")),
				ts("Policy version", "none", "Version of the policy each node's filter enforces (0: no policy, nothing new accepted).",
					q("tunnelmesh_agent_filter_policy_version"+sel, "{{node}}")),
				tbl("Accepts by rule (total)", "Packets accepted by each rule since the agent started.",
					q("sum by (node, rule) (tunnelmesh_agent_filter_accepts_total"+sel+")", "")),
			}},
		},
	}
}

func storage() board {
	return board{
		file: "storage", uid: "tunnelmesh-storage", title: "TunnelMesh / Storage",
		desc: "tunnelmesh-storage (S3 on SeaweedFS) on the nodes that publish metrics-storage: per-node S3 credentials issued, refused and revoked, SeaweedFS restarts.",
		rows: []row{
			{title: "Storage", panels: []panel{
				st("Storage servers up", "none", "tunnelmesh-storage servers whose /metrics answered the last scrape.", q(`sum(up{service="storage"})`, "")),
				st("Credentials issued (1 h)", "none", "S3 credential requests answered in the last hour, all servers.",
					q("sum(increase(tunnelmesh_storage_credentials_issued_total[1h]))", "")),
				st("Credentials refused (1 h)", "none", "Credential requests refused in the last hour, all servers.",
					q("sum(increase(tunnelmesh_storage_credentials_refused_total[1h])) or vector(0)", "")),
				st("SeaweedFS restarts (1 h)", "none", "SeaweedFS exits followed by a restart in the last hour, all servers.",
					q("sum(increase(tunnelmesh_storage_weed_restarts_total[1h]))", "")),
				ts("Credentials issued", "ops", "Credential requests answered with a node's S3 credentials per second.",
					q("sum by (node) (rate(tunnelmesh_storage_credentials_issued_total"+rate+"))", "{{node}}")),
				ts("Credentials refused by reason", "ops", "Credential requests refused per second, by reason (malformed, not_member, bad_signature, stale, replayed): a node outside the mesh or a forged or replayed request.",
					q("sum by (node, reason) (rate(tunnelmesh_storage_credentials_refused_total"+rate+")) > 0", "{{node}} {{reason}}")),
				ts("Credentials revoked", "ops", "Node credentials revoked per second because the node left the netmap or changed key.",
					q("sum by (node) (rate(tunnelmesh_storage_credentials_revoked_total"+rate+"))", "{{node}}")),
				ts("SeaweedFS restarts", "none", "SeaweedFS exits followed by a restart, per 5 minutes.",
					q("sum by (node) (increase(tunnelmesh_storage_weed_restarts_total[5m]))", "{{node}}")),
				ts("Scrape up", "none", "1 when the node's tunnelmesh-storage answered the last scrape.", q(`up{service="storage"}`, "{{node}}")),
				ts("Memory", "bytes", "Resident memory of tunnelmesh-storage (SeaweedFS is a child process, not counted).",
					q(`process_resident_memory_bytes{service="storage"}`, "{{node}}")),
			}},
		},
	}
}

func nfs() board {
	return board{
		file: "nfs", uid: "tunnelmesh-nfs", title: "TunnelMesh / NFS",
		desc: "tunnelmesh-nfsd on the nodes that publish metrics-nfsd: mounts and refusals, NFS operations, traffic.",
		rows: []row{
			{title: "Access", panels: []panel{
				st("NFS servers up", "none", "tunnelmesh-nfsd servers whose /metrics answered the last scrape.", q(`sum(up{service="nfsd"})`, "")),
				st("Mounts (1 h)", "none", "MOUNT requests granted in the last hour, all servers.",
					q(`sum(increase(tunnelmesh_nfsd_mounts_total{result="ok"}[1h])) or vector(0)`, "")),
				st("Refused mounts (1 h)", "none", "MOUNT requests refused (no grant, not a node) in the last hour, all servers.",
					q(`sum(increase(tunnelmesh_nfsd_mounts_total{result="refused"}[1h])) or vector(0)`, "")),
				st("Refused connections (1 h)", "none", "Connections refused or closed by the identity check in the last hour, all servers.",
					q("sum(increase(tunnelmesh_nfsd_refused_connections_total[1h])) or vector(0)", "")),
				ts("MOUNT requests by result", "ops", "MOUNT requests per second, by result (ok, refused, no_such_export).",
					q("sum by (node, result) (rate(tunnelmesh_nfsd_mounts_total"+rate+")) > 0", "{{node}} {{result}}")),
				ts("Refused connections by reason", "ops", "Connections refused or closed by the identity check per second, by reason (outside_mesh, unknown_node, no_netmap, removed).",
					q("sum by (node, reason) (rate(tunnelmesh_nfsd_refused_connections_total"+rate+")) > 0", "{{node}} {{reason}}")),
			}},
			{title: "Operations", panels: []panel{
				ts("Operations by type", "ops", "RPC requests answered per second, by operation (nfs.read, nfs.write, mount.mnt, ...).",
					q("sum by (node, op) (rate(tunnelmesh_nfsd_ops_total"+rate+")) > 0", "{{node}} {{op}}")),
				ts("Operations not ok", "ops", "RPC requests answered with another result than ok per second, by operation and result (an NFS status such as acces, rofs, stale, noent; error, rpc_error, denied).",
					q(`sum by (node, op, result) (rate(tunnelmesh_nfsd_ops_total{result!="ok"}`+rate+")) > 0", "{{node}} {{op}} {{result}}")),
				ts("Traffic", "Bps", "Bytes received from (in) and sent to (out) NFS clients per second (RPC records).",
					q("sum by (node, direction) (rate(tunnelmesh_nfsd_bytes_total"+rate+"))", "{{node}} {{direction}}")),
				ts("Export lists", "ops", "MOUNT EXPORT requests answered per second.",
					q("sum by (node) (rate(tunnelmesh_nfsd_export_lists_total"+rate+"))", "{{node}}")),
			}},
		},
	}
}

func docker() board {
	return board{
		file: "docker", uid: "tunnelmesh-docker", title: "TunnelMesh / Docker",
		desc: "tunnelmesh-dockerwatch on the nodes that publish metrics-dockerwatch: containers exposed to the mesh, the engine's event stream, resyncs and their failures.",
		rows: []row{
			{title: "Containers", panels: []panel{
				st("dockerwatch up", "none", "dockerwatch instances whose /metrics answered the last scrape.", q(`sum(up{service="dockerwatch"})`, "")),
				st("Services exposed", "none", "Container ports forwarded from the mesh now, all nodes.", q("sum(tunnelmesh_dockerwatch_services_exposed)", "")),
				st("Containers skipped", "none", "Containers that asked to be exposed and are not (dockerwatch's log says why), all nodes.",
					q("sum(tunnelmesh_dockerwatch_containers_skipped)", "")),
				st("Event streams down", "none", "dockerwatch instances whose event stream from the engine is closed.",
					q("count(tunnelmesh_dockerwatch_event_stream_up == 0) or vector(0)", "")),
				ts("Services exposed by node", "none", "Container ports each node forwards from the mesh.",
					q("tunnelmesh_dockerwatch_services_exposed", "{{node}}")),
				ts("Containers skipped by node", "none", "Containers that asked to be exposed and are not.",
					q("tunnelmesh_dockerwatch_containers_skipped", "{{node}}")),
			}},
			{title: "Reconciling", panels: []panel{
				ts("Container events by action", "ops", "Container events received from the engine per second, by action.",
					q("sum by (node, action) (rate(tunnelmesh_dockerwatch_events_total"+rate+")) > 0", "{{node}} {{action}}")),
				ts("Resyncs", "ops", "Full resyncs from the container list per second (events, the resync timer, retries).",
					q("sum by (node) (rate(tunnelmesh_dockerwatch_reconciles_total"+rate+"))", "{{node}}")),
				ts("Resync errors by stage", "ops", "Failed resyncs per second, by stage: list (engine), agent (status), forward (nft), publish (agent's services).",
					q("sum by (node, stage) (rate(tunnelmesh_dockerwatch_reconcile_errors_total"+rate+")) > 0", "{{node}} {{stage}}")),
				ts("Event stream up", "none", "1 while the engine's event stream is open.",
					q("tunnelmesh_dockerwatch_event_stream_up", "{{node}}")),
			}},
		},
	}
}
