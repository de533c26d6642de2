package policy

import (
	"net/netip"
	"os"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// TestComposeDockerSection: the compose demo's docker section lets node2,
// and only node2 (the web container's tunnelmesh.allow), reach node1's web
// container on 8080, and opens nothing beyond its ceiling.
func TestComposeDockerSection(t *testing.T) {
	const file = "../../compose/config/policy.yaml"
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := Parse(file, data)
	if err != nil {
		t.Fatalf("Parse(%s): %v", file, err)
	}
	node := func(name, ip string, svcs ...api.Service) api.Node {
		return api.Node{Name: name, IP: netip.MustParseAddr(ip), Services: svcs}
	}
	web := api.Service{Name: "web", Protocol: ProtoTCP, Port: 8080, Owner: api.ServiceOwnerDocker, Allow: "node2"}
	open := api.Service{Name: "open", Protocol: ProtoTCP, Port: 8081, Owner: api.ServiceOwnerDocker}
	high := api.Service{Name: "high", Protocol: ProtoTCP, Port: 9090, Owner: api.ServiceOwnerDocker}
	node1 := node("node1", "100.64.0.1", web, open, high)
	node2 := node("node2", "100.64.0.2", web)
	node3 := node("node3", "100.64.0.3")
	dns := node("dns", "100.64.0.4")
	dns.Tags = []string{"dns"}
	tests := []struct {
		name     string
		src, dst api.Node
		port     uint16
		want     bool
	}{
		{"node2 reaches web", node2, node1, 8080, true},
		{"node3 is not in web's allow", node3, node1, 8080, false},
		{"dns is outside the ceiling", dns, node1, 8080, false},
		{"no label: the ceiling", node3, node1, 8081, true},
		{"no label: not beyond the ceiling", dns, node1, 8081, false},
		{"port outside the ceiling", node2, node1, 9090, false},
		{"a node outside to", node3, node2, 8080, false},
		{"a port no container has", node2, node1, 8082, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rule, got := pol.Allowed(tc.src, tc.dst, ProtoTCP, tc.port)
			if got != tc.want {
				t.Errorf("Allowed(%s, %s, tcp, %d) = %q %v, want %v", tc.src.Name, tc.dst.Name, tc.port, rule, got, tc.want)
			}
		})
	}
}
