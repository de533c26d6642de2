package catalog

import (
	"slices"
	"testing"
)

func TestReadFindsEveryModule(t *testing.T) {
	root, err := RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	names, err := Read(root)
	if err != nil {
		t.Fatal(err)
	}
	// One metric of each kind of definition in each source file.
	for _, want := range []string{
		"tunnelmesh_agent_reconfigs_total",                    // c("...")
		"tunnelmesh_agent_netmap_version",                     // Name: "..."
		"tunnelmesh_agent_peer_path",                          // desc("...")
		"tunnelmesh_registry_watchers",                        // Name: "..."
		"tunnelmesh_registry_request_duration_seconds_bucket", // histogram series
		"tunnelmesh_agent_peer_path_rtt_seconds_count",        // histDesc("...")
		"tunnelmesh_agent_peer_tcp_handshake_seconds_bucket",  // histDesc("...")
		"tunnelmesh_relay_frames_forwarded_total",             // opts("...")
		"tunnelmesh_meshdns_queries_total",                    // Name: "..."
		"tunnelmesh_storage_credentials_refused_total",        // Name: "..."
		"tunnelmesh_storage_weed_restarts_total",              // Name: "..." in the server
		"tunnelmesh_nfsd_mounts_total",                        // Name: "..."
		"tunnelmesh_dockerwatch_reconcile_errors_total",       // o("...")
		"up",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("Read() lacks %s; got:\n%s", want, Describe(names))
		}
	}
	// A histogram has no series of its own name.
	if slices.Contains(names, "tunnelmesh_agent_peer_path_rtt_seconds") {
		t.Errorf("Read() lists the histogram tunnelmesh_agent_peer_path_rtt_seconds as a series")
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"rate", `sum by (reason) (rate(tunnelmesh_agent_drops_total{reason=~"filter_.+"}[5m]))`, []string{"tunnelmesh_agent_drops_total"}},
		{"label value is not a name", `up{service="tunnelmesh_agent_x"}`, []string{"up"}},
		{"two", `max(tunnelmesh_registry_netmap_version) - tunnelmesh_agent_netmap_version`, []string{"tunnelmesh_registry_netmap_version", "tunnelmesh_agent_netmap_version"}},
		{"process", `rate(process_cpu_seconds_total[1m])`, []string{"process_cpu_seconds_total"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Names(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("Names(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestMissing(t *testing.T) {
	known := []string{"up", "tunnelmesh_agent_peers"}
	if got := Missing(known, `tunnelmesh_agent_peer + up`); !slices.Equal(got, []string{"tunnelmesh_agent_peer"}) {
		t.Errorf("Missing = %v, want [tunnelmesh_agent_peer]", got)
	}
}
