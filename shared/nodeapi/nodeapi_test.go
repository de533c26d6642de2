package nodeapi

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// TestRecordedBodies decodes bodies recorded from the agent's local API
// (testdata/, as the agent and dockerwatch put them on the wire), refusing
// unknown fields, and encodes them again: the bytes must not change.
func TestRecordedBodies(t *testing.T) {
	for _, tt := range []struct {
		file string
		v    func() any
	}{
		{"status.json", func() any { return new(Status) }},
		{"status_minimal.json", func() any { return new(Status) }},
		{"services_request.json", func() any { return new(ServicesRequest) }},
		{"services_request_empty.json", func() any { return new(ServicesRequest) }},
		{"ping.json", func() any { return new(PingResult) }},
		{"error.json", func() any { return new(Error) }},
	} {
		t.Run(tt.file, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			v := tt.v()
			dec := json.NewDecoder(bytes.NewReader(want))
			dec.DisallowUnknownFields()
			if err := dec.Decode(v); err != nil {
				t.Fatalf("decode %s: %v", tt.file, err)
			}
			var got bytes.Buffer
			if err := json.NewEncoder(&got).Encode(v); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("encode(decode(%s)) =\n%s\nwant\n%s", tt.file, got.Bytes(), want)
			}
		})
	}
}

// TestRecordedStatus pins what the recorded status decodes to, so that a
// renamed tag cannot pass the byte comparison by dropping a field on both
// sides.
func TestRecordedStatus(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "status.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 12, 7, 17, 0, 0, 123000000, time.UTC)
	switch {
	case st.Name != "node1" || st.IP != netip.MustParseAddr("100.64.0.5") || !st.Removed || st.NetmapVersion != 42:
		t.Errorf("status = %s %v removed=%v netmap %d, want node1 100.64.0.5 removed=true netmap 42", st.Name, st.IP, st.Removed, st.NetmapVersion)
	case st.MeshCIDR != netip.MustParsePrefix("100.64.0.0/10") || st.MTU != 1280 || st.ListenPort != 41641:
		t.Errorf("status mesh %v mtu %d port %d, want 100.64.0.0/10 1280 41641", st.MeshCIDR, st.MTU, st.ListenPort)
	case !st.Coordinator.LastOK.Equal(ts) || !st.Coordinator.Reachable:
		t.Errorf("coordinator = %+v, want reachable, last ok %v", st.Coordinator, ts)
	case len(st.Peers) != 2 || st.Peers[0].RTT != 1500*time.Microsecond || st.Peers[0].Loss != 0.25 || st.Peers[0].ProbesAnswered != 7:
		t.Errorf("peers = %+v, want node2 with rtt 1.5ms, loss 0.25, 7 probes answered, and node3", st.Peers)
	case len(st.Services) != 2 || st.Services[1] != (api.Service{Name: "web", Protocol: "tcp", Port: 8080, Owner: "dockerwatch", Allow: "node2,tag:web"}):
		t.Errorf("services = %+v, want dns and web", st.Services)
	case st.Drops["filter"] != 3:
		t.Errorf("drops = %v, want filter 3", st.Drops)
	}
}
